"""The resolver's hub lag, requests and lookups in flight, and its metrics port.

The app's registry (``metrics.py``, also served by ``GET /metrics`` on the API port,
from the hub) gains the lag monitor and ``ResolverCollector``; the same registry is
served on RESOLVER_METRICS_PORT from a real OS thread, so it still answers while the
hub is blocked (by the original ``time.sleep``, say).
Try it: curl -s 127.0.0.1:9103/metrics
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from services.common.lag_gevent import GeventLagTimer, start_os_thread
from services.common.metrics import LagMonitor, LoopMetrics, serve_metrics
from services.resolver.api import ResolverApp
from services.resolver.config import ResolverConfig
from services.resolver.resolve import Resolver


class ResolverCollector:
    """Samples of the app's and the resolver's plain counters (README "Metrics")."""

    def __init__(self, app: ResolverApp, resolver: Resolver) -> None:
        self.app = app
        self.resolver = resolver

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "polyloop_requests", "POST /resolve requests, any client.", self.app.resolve_requests
        )
        yield GaugeMetricFamily(
            "polyloop_resolver_lookups_in_flight",
            "Name lookups running now, all requests together.",
            self.resolver.lookups_in_flight,
        )


def start_metrics(
    app: ResolverApp, resolver: Resolver, config: ResolverConfig
) -> LoopMetrics | None:
    """The lag greenlet in the hub and the metrics port on an OS thread (None when off)."""
    if not config.metrics.enabled:
        return None
    monitor = LagMonitor(config.metrics.lag_interval)
    timer = GeventLagTimer(monitor).start()
    server = serve_metrics(
        config.metrics,
        config.listen_host,
        config.metrics_port,
        monitor,
        ResolverCollector(app, resolver),
        registry=app.metrics.registry,  # the API port's GET /metrics shows them too
        start_thread=start_os_thread,
    )
    return LoopMetrics(monitor, timer, server)
