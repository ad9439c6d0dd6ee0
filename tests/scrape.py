"""Reading a service's Prometheus text: one scrape, as a {(name, labels): value} map."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by name and sorted labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def names(text: str) -> set[str]:
    """Every sample name in ``text``, and every family name (a family may have no sample
    yet, e.g. a labelled counter nothing has counted), counters also with ``_total``."""
    found: set[str] = set()
    for family in text_string_to_metric_families(text):
        found.add(family.name)
        if family.type == "counter":
            found.add(family.name + "_total")
        found |= {sample.name for sample in family.samples}
    return found


def scrape(url: str, timeout: float = 2.0) -> Samples:
    """GET ``url`` (a /metrics endpoint) within ``timeout`` seconds and parse it."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse(response.read().decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (KeyError naming it when absent)."""
    return samples[name, tuple(sorted(labels.items()))]


def lag_over(samples: Samples, bound: str) -> float:
    """How many lag observations were above ``bound`` seconds (a bucket's ``le``)."""
    total = value(samples, "polyloop_event_loop_lag_seconds_count")
    return total - value(samples, "polyloop_event_loop_lag_seconds_bucket", le=bound)
