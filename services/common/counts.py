"""Counting on a hot path with plain integers, turned into Prometheus samples when scraped.

prometheus-client's ``Counter`` and ``Histogram`` take a lock and check their state on every
``inc()`` and ``observe()``; on a request path that cost several times the increment itself
(the front and the resolver measured it with ``python -m bench``). The services count with
plain integers instead (one event loop thread writes them; the control port's thread only
reads, at scrape time) and their collectors turn them into samples, as ``LagMonitor`` does.

``Timings`` is one histogram of durations in plain integers; ``LabelledCounts`` a counter by
label values (every label from a closed set, so the table stays small).
Runs on PyPy 3.9 too (no 3.10+ syntax at run time).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Timings:
    """Durations as a Prometheus histogram over ``bounds``, in plain integers:
    ``counts[i]`` observations fell in bucket ``i`` alone (the last: above every bound)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(le, count)`` pairs, +Inf last, as a histogram family takes them."""
        cumulative, out = 0, []
        labels = [repr(float(bound)) for bound in self.bounds] + ["+Inf"]
        for label, count in zip(labels, list(self.counts)):
            cumulative += count
            out.append((label, cumulative))
        return out


def counter_family(
    name: str, documentation: str, labels: Sequence[str], counts: dict[tuple[str, ...], int]
) -> CounterMetricFamily:
    """A counter family from a dict of plain counts keyed by label values."""
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    for values, count in sorted(dict(counts).items()):
        family.add_metric(list(values), count)
    return family


def histogram_family(
    name: str,
    documentation: str,
    labels: Sequence[str],
    timings: Iterable[tuple[tuple[str, ...], Timings]],
) -> HistogramMetricFamily:
    """A histogram family from ``Timings`` keyed by label values."""
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for values, timing in sorted(timings, key=lambda item: item[0]):
        family.add_metric(list(values), timing.buckets(), timing.total)
    return family
