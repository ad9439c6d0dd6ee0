"""Prometheus metrics of the front, in a registry of its own (one per app, so tests
building many apps never collide in the global registry).

``GET /metrics`` serves them; names:
``polyloop_web_requests_total{route,method,status}`` (method: GET, HEAD, POST, PUT, DELETE,
PATCH, OPTIONS or other), ``polyloop_web_request_seconds``,
``polyloop_web_requests_in_flight``, ``polyloop_web_backend_calls_total{backend,outcome}``,
``polyloop_web_backend_call_seconds{backend}``, ``polyloop_web_backend_errors_total{backend,kind}``,
``polyloop_web_backend_probes_total{backend,outcome}``, ``polyloop_web_backend_in_flight{backend}``.

The request path counts with plain integers, and ``Metrics.collect`` turns them into samples
when ``/metrics`` is read, as every other service of the stack does (its collectors read
plain counters): prometheus-client's own ``Counter`` and ``Histogram`` take a lock and check
their state on every call, which cost the front about 550 bytecodes per proxied request
(``inc`` on each of four metrics, two observations), a twentieth of the whole request.
Every label comes from a closed set (the route table, ``METHODS``, HTTP statuses, the
backends, ``BackendCall``'s outcomes), so the tables stay small.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from services.common.counts import Timings
from services.web.backends import Backend


class BackendCounts:
    """One backend's calls, failures, probes and durations (``BackendCall`` counts here)."""

    __slots__ = ("errors", "failed", "in_flight", "ok", "probes_failed", "probes_ok", "timings")

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.errors: dict[str, int] = {}  # by kind: unavailable, timeout, bad_reply...
        self.probes_ok = 0
        self.probes_failed = 0
        self.in_flight = 0
        self.timings = Timings()


class Metrics:
    """The front's registry: the process collector and this object, which collects the
    plain counts below (``requests``: ``[count, Timings]`` by ``(route, method, status)``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # CPU, RSS, open fds, as in every service
        self.requests: dict[tuple[str, str, str], tuple[list[int], Timings]] = {}
        self.requests_in_flight = 0
        self.backends = {backend: BackendCounts() for backend in Backend}
        self.registry.register(self)

    def record(self, labels: tuple[str, str, str], seconds: float) -> None:
        entry = self.requests.get(labels)
        if entry is None:
            entry = self.requests[labels] = ([0], Timings())
        entry[0][0] += 1
        entry[1].observe(seconds)

    def collect(self) -> Iterator[Metric]:
        requests = list(self.requests.items())  # the loop keeps counting meanwhile
        labels = ["route", "method", "status"]
        counted = CounterMetricFamily(
            "polyloop_web_requests", "HTTP requests answered by the front", labels=labels
        )
        timed = HistogramMetricFamily(
            "polyloop_web_request_seconds", "Time to answer an HTTP request", labels=labels
        )
        for key, (count, timings) in sorted(requests):
            counted.add_metric(list(key), count[0])
            timed.add_metric(list(key), timings.buckets(), timings.total)
        yield counted
        yield timed
        yield GaugeMetricFamily(
            "polyloop_web_requests_in_flight",
            "HTTP requests being answered",
            self.requests_in_flight,
        )
        yield from self._collect_backends()

    def _collect_backends(self) -> Iterable[Metric]:
        calls = CounterMetricFamily(
            "polyloop_web_backend_calls",
            "Calls from the front to a backend",
            labels=["backend", "outcome"],
        )
        seconds = HistogramMetricFamily(
            "polyloop_web_backend_call_seconds",
            "Duration of one backend call, failures included",
            labels=["backend"],
        )
        errors = CounterMetricFamily(
            "polyloop_web_backend_errors",
            "Failed backend calls by kind (unavailable, timeout, bad_reply)",
            labels=["backend", "kind"],
        )
        probes = CounterMetricFamily(
            "polyloop_web_backend_probes",
            "Readiness probes of a backend (/readyz, the dashboard's map), not traffic",
            labels=["backend", "outcome"],
        )
        in_flight = GaugeMetricFamily(
            "polyloop_web_backend_in_flight", "Backend calls in progress", labels=["backend"]
        )
        for backend, counts in self.backends.items():
            name = str(backend)
            calls.add_metric([name, "ok"], counts.ok)
            calls.add_metric([name, "error"], counts.failed)
            seconds.add_metric([name], counts.timings.buckets(), counts.timings.total)
            for kind, count in sorted(dict(counts.errors).items()):
                errors.add_metric([name, kind], count)
            probes.add_metric([name, "ok"], counts.probes_ok)
            probes.add_metric([name, "error"], counts.probes_failed)
            in_flight.add_metric([name], counts.in_flight)
        return calls, seconds, errors, probes, in_flight


def route_label(request: web.Request) -> str:
    """The route's template (``/api/echo/tcp``), never the raw path: bounded label values."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


# the method label's closed set: any other token a client sends is counted as "other" (a
# client choosing label values could grow /metrics and the front's memory without bound)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def method_label(request: web.Request) -> str:
    method = request.method
    return method if method in METHODS else "other"


# what the front serves its clients: the demo's routes. The dashboard's and an operator's
# reads (/api/live, /api/faults, /api/experiments...) watch the stack; they are not its work
SERVED_PREFIXES = ("/api/echo/", "/api/resolve", "/api/fanout")
# the steady client's route (services.web.steady): the front's own probe, never served
PING = "/api/ping"


class WebCollector:
    """``polyloop_requests_total``: requests to the demo's routes (``SERVED_PREFIXES``), and
    ``polyloop_probes_total``: the steady client's pings, summed at scrape time from the
    front's own per-route counts (the middleware already counts every request)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        served = probes = 0
        for (route, _, _), (count, _) in list(self.metrics.requests.items()):
            if route.startswith(SERVED_PREFIXES):
                served += count[0]
            elif route == PING:
                probes += count[0]
        yield CounterMetricFamily(
            "polyloop_requests", "Requests to the demo's routes (echo, resolve, fan-out).", served
        )
        yield CounterMetricFamily(
            "polyloop_probes", "GET /api/ping: the front's steady client, not served.", probes
        )
