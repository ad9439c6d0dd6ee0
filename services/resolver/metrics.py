"""Prometheus metrics of one resolver app, in its own registry (tests build many apps).

``Metrics`` are the app's own (HTTP requests, names, durations); ``ResolverCollector`` reads
the app's and the resolver's plain counters at scrape time. The same registry is served by
``GET /metrics`` on the API port (from the hub) and on RESOLVER_METRICS_PORT, the control
port, from a real OS thread that still answers while the hub is blocked.
Scrape with: curl -s localhost:8053/metrics (or :9103/metrics)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import prometheus_client.metrics
import prometheus_client.values
from gevent import monkey
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase

if TYPE_CHECKING:
    from services.resolver.api import ResolverApp
    from services.resolver.resolve import Resolver

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SHED_REASONS = ("idle", "slow", "deadline", "full")

# prometheus_client takes a lock for every increment, observation and labels() call; after
# monkey.patch_all() that is gevent's Lock, which cost 32 of the ~465 µs of CPU a one-name
# POST /resolve takes (python -m bench --only cpu; all the metrics together: 49 µs). Those
# critical sections are a few bytecodes with no I/O: no greenlet can switch while holding
# one, so the thread's own lock is enough, and the right one for a reader on another OS
# thread. Set before any metric exists (each takes its lock when it is made).
prometheus_client.values.Lock = monkey.get_original("threading", "Lock")
prometheus_client.metrics.Lock = prometheus_client.values.Lock


class Metrics:
    def __init__(self) -> None:
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "resolver_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.names = Counter(
            "resolver_names_resolved",
            "Names looked up, by outcome (ok or the result's error).",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "resolver_resolve_duration_seconds",
            "Duration of POST /resolve requests, by mode.",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.connections_shed = Counter(
            "resolver_connections_shed",
            "Connections ended to keep slots free: idle or slow (cut for a new one), "
            "deadline (408), full (503, every slot busy).",
            ["reason"],
            registry=self.registry,
        )
        for reason in SHED_REASONS:  # every series from 0, before the first shed
            self.connections_shed.labels(reason)
        self.in_flight = Gauge(
            "resolver_requests_in_flight",
            "POST /resolve requests being answered.",
            registry=self.registry,
        )

    def child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per label set: ``labels()`` checks its
        arguments and takes a lock (a gevent lock, after ``patch_all``) on every call, which
        cost more than the increment itself. Every label value the resolver uses comes
        from a closed set (routes, methods, statuses, modes, outcomes): this stays small."""
        key = (metric._name, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


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
