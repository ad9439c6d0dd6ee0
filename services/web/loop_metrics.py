"""The front's own loop lag and request count, and its metrics port.

``setup_loop_metrics(app)`` (called by ``create_app``) adds the lag monitor and
``WebCollector`` to the app's registry and runs the lag timer on the app's loop
between startup and cleanup, so ``GET /metrics`` on the web port shows them too.
``serve_loop_metrics(app)`` (called by ``__main__``) serves the same registry on
WEB_METRICS_PORT from a thread, which still answers while the loop is blocked.
Try it: curl -s 127.0.0.1:9105/metrics
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, Metric

from services.common.lag_asyncio import AsyncioLagTimer
from services.common.metrics import LagMonitor, MetricsServer, serve_metrics
from services.web.keys import CONFIG, METRICS
from services.web.metrics import Metrics

LAG_MONITOR = web.AppKey("lag_monitor", LagMonitor)
API_PREFIX = "/api/"


class WebCollector:
    """``polyloop_requests_total``: requests to the API routes, summed at scrape time from
    the front's own per-route counter (the middleware already counts every request)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        total = 0.0
        for family in self.metrics.requests.collect():
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels["route"].startswith(API_PREFIX):
                    total += sample.value
        yield CounterMetricFamily(
            "polyloop_requests", "HTTP requests to the front's API routes, any client.", total
        )


def setup_loop_metrics(app: web.Application) -> None:
    """The lag monitor, request count and process collector in the app's registry; the lag
    timer on the app's loop while it runs."""
    config = app[CONFIG]
    monitor = LagMonitor(config.metrics.lag_interval)
    app[LAG_MONITOR] = monitor
    registry = app[METRICS].registry
    registry.register(monitor)
    registry.register(WebCollector(app[METRICS]))
    ProcessCollector(registry=registry)  # CPU, RSS, open fds, as in every service
    if config.metrics.enabled:
        app.cleanup_ctx.append(_lag_timer_ctx)


async def _lag_timer_ctx(app: web.Application) -> AsyncIterator[None]:
    timer = AsyncioLagTimer(app[LAG_MONITOR], asyncio.get_running_loop()).start()
    yield
    timer.stop()


def serve_loop_metrics(app: web.Application) -> MetricsServer | None:
    """The app's registry on WEB_METRICS_PORT from a thread (None when POLYLOOP_METRICS=0).

    Raises ``OSError`` when the port cannot be bound.
    """
    config = app[CONFIG]
    if not config.metrics.enabled:
        return None
    return serve_metrics(
        config.metrics, config.listen_host, config.metrics_port, registry=app[METRICS].registry
    )
