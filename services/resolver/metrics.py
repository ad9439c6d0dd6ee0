"""Prometheus metrics of one resolver app, in its own registry (tests build many apps).

``Metrics`` counts the app's own (HTTP requests, names, durations, shed connections) in
plain integers (``services.common.counts``: prometheus-client's locked ``inc()`` cost the
request more than the increment) and turns them into samples when scraped;
``ResolverCollector`` reads the app's and the resolver's plain counters at scrape time. The
same registry is served by ``GET /metrics`` on the API port (from the hub) and on
RESOLVER_METRICS_PORT, the control port, from a real OS thread that still answers while the
hub is blocked.
Scrape with: curl -s localhost:8053/metrics (or :9103/metrics)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from services.common.counts import Timings, counter_family, histogram_family

if TYPE_CHECKING:
    from services.resolver.api import ResolverApp
    from services.resolver.resolve import Resolver

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SHED_REASONS = ("idle", "slow", "deadline", "full")


class Metrics:
    """The app's counts, every label from a closed set (routes, methods, statuses, modes,
    outcomes, reasons): ``requests`` by (method, route, status), ``names`` by outcome,
    ``latency`` by mode, ``shed`` by reason, ``in_flight``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests: dict[tuple[str, str, str], int] = {}
        self.names: dict[str, int] = {}
        self.latency: dict[str, Timings] = {}
        self.shed = dict.fromkeys(SHED_REASONS, 0)  # every series from 0, before the first
        self.in_flight = 0
        self.registry.register(self)

    def count_request(self, method: str, route: str, status: str) -> None:
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def count_names(self, outcome: str, count: int = 1) -> None:
        self.names[outcome] = self.names.get(outcome, 0) + count

    def time_resolve(self, mode: str, seconds: float) -> None:
        timings = self.latency.get(mode)
        if timings is None:
            timings = self.latency[mode] = Timings(LATENCY_BUCKETS)
        timings.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        yield counter_family(
            "resolver_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            self.requests,
        )
        yield counter_family(
            "resolver_names_resolved",
            "Names looked up, by outcome (ok or the result's error).",
            ["outcome"],
            {(outcome,): count for outcome, count in list(self.names.items())},
        )
        yield histogram_family(
            "resolver_resolve_duration_seconds",
            "Duration of POST /resolve requests, by mode.",
            ["mode"],
            [((mode,), timings) for mode, timings in list(self.latency.items())],
        )
        yield counter_family(
            "resolver_connections_shed",
            "Connections ended to keep slots free: idle or slow (cut for a new one), "
            "deadline (408), full (503, every slot busy).",
            ["reason"],
            {(reason,): count for reason, count in list(self.shed.items())},
        )
        yield GaugeMetricFamily(
            "resolver_requests_in_flight", "POST /resolve requests being answered.", self.in_flight
        )


class ResolverCollector:
    """Samples of the app's and the resolver's plain counters (README "Metrics")."""

    def __init__(self, app: ResolverApp, resolver: Resolver) -> None:
        self.app = app
        self.resolver = resolver

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "polyloop_requests",
            "POST /resolve requests, any client but the stack's own probes.",
            self.app.resolve_requests,
        )
        yield CounterMetricFamily(
            "polyloop_probes",
            "POST /resolve of the stack's probe name alone (the front's steady client).",
            self.app.probe_requests,
        )
        yield GaugeMetricFamily(
            "polyloop_resolver_lookups_in_flight",
            "Name lookups running now, all requests together.",
            self.resolver.lookups_in_flight,
        )
        yield CounterMetricFamily(
            "polyloop_resolver_questions_resent",
            "Zone questions sent again: unanswered for RESOLVER_RETRY_AFTER while a newer one"
            " was answered (most likely lost).",
            self.resolver.lookups.heard.resent,
        )
