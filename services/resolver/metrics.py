"""Prometheus metrics of one resolver app, in its own registry (tests build many apps).

Scrape with: curl -s localhost:8053/metrics
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SHED_REASONS = ("idle", "slow", "deadline", "full")


class Metrics:
    def __init__(self) -> None:
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
