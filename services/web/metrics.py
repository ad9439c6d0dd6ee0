"""Prometheus metrics of the front, in a registry of its own (one per app, so tests
building many apps never collide in the global registry).

``GET /metrics`` serves them; names:
``polyloop_web_requests_total{route,method,status}`` (method: GET, HEAD, POST, PUT, DELETE,
PATCH, OPTIONS or other), ``polyloop_web_request_seconds``,
``polyloop_web_requests_in_flight``, ``polyloop_web_backend_calls_total{backend,outcome}``,
``polyloop_web_backend_call_seconds{backend}``, ``polyloop_web_backend_errors_total{backend,kind}``,
``polyloop_web_backend_probes_total{backend,outcome}``, ``polyloop_web_backend_in_flight{backend}``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, Metric

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # CPU, RSS, open fds, as in every service
        self.requests = Counter(
            "polyloop_web_requests",
            "HTTP requests answered by the front",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "polyloop_web_request_seconds",
            "Time to answer an HTTP request",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests_in_flight = Gauge(
            "polyloop_web_requests_in_flight",
            "HTTP requests being answered",
            registry=self.registry,
        )
        self.backend_calls = Counter(
            "polyloop_web_backend_calls",
            "Calls from the front to a backend",
            ["backend", "outcome"],
            registry=self.registry,
        )
        self.backend_seconds = Histogram(
            "polyloop_web_backend_call_seconds",
            "Duration of one backend call, failures included",
            ["backend"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "polyloop_web_backend_errors",
            "Failed backend calls by kind (unavailable, timeout, bad_reply)",
            ["backend", "kind"],
            registry=self.registry,
        )
        self.backend_probes = Counter(
            "polyloop_web_backend_probes",
            "Readiness probes of a backend (/readyz, the dashboard's map), not traffic",
            ["backend", "outcome"],
            registry=self.registry,
        )
        self.backend_in_flight = Gauge(
            "polyloop_web_backend_in_flight",
            "Backend calls in progress",
            ["backend"],
            registry=self.registry,
        )


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


# metric children kept by the middleware: one per (route, method, status) seen, at most this
# many (past it, labels() is called each time: slower, never more memory than the metric)
MAX_KEPT_CHILDREN = 1024


def metrics_middleware(metrics: Metrics) -> Middleware:
    # labels() checks its arguments and takes a lock on each call: three times the cost of
    # the increment it serves, twice per request
    children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        metrics.requests_in_flight.inc()
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.requests_in_flight.dec()
            labels = (route_label(request), method_label(request), str(status))
            pair = children.get(labels)
            if pair is None:
                pair = metrics.requests.labels(*labels), metrics.request_seconds.labels(*labels)
                if len(children) < MAX_KEPT_CHILDREN:
                    children[labels] = pair
            pair[0].inc()
            pair[1].observe(time.perf_counter() - start)

    return middleware


# what the front serves its clients: the demo's routes. The dashboard's and an operator's
# reads (/api/live, /api/faults, /api/experiments...) watch the stack; they are not its work
SERVED_PREFIXES = ("/api/echo/", "/api/resolve", "/api/fanout")
# the steady client's route (services.web.steady): the front's own probe, never served
PING = "/api/ping"


class WebCollector:
    """``polyloop_requests_total``: requests to the demo's routes (``SERVED_PREFIXES``), and
    ``polyloop_probes_total``: the steady client's pings, summed at scrape time from the
    front's own per-route counter (the middleware already counts every request)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        served = probes = 0.0
        for family in self.metrics.requests.collect():
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                route = sample.labels["route"]
                if route.startswith(SERVED_PREFIXES):
                    served += sample.value
                elif route == PING:
                    probes += sample.value
        yield CounterMetricFamily(
            "polyloop_requests", "Requests to the demo's routes (echo, resolve, fan-out).", served
        )
        yield CounterMetricFamily(
            "polyloop_probes", "GET /api/ping: the front's steady client, not served.", probes
        )
