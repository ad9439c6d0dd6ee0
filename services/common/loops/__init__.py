"""Reaching an event loop from outside: one module per loop, the same three things in each.

``twisted.py`` (the reactor), ``asyncio.py`` (asyncio's loop or uvloop's) and ``gevent.py``
(the hub) each hold:

- a **lag timer**: a periodic timer ON the loop that ticks a ``LagMonitor`` with how late it
  fired (``polyloop_event_loop_lag_seconds``); the monitor's last tick also gives "blocked
  now" (``polyloop_event_loop_blocked_seconds``), computed off the loop at scrape time;
- the loop's **fault hooks** (``LoopHooks``): how ``services.common.faults.Faults``, set from
  the control port's thread, runs a block or a delay ON that loop;
- one ``start(...)`` that a service's ``__main__`` calls once: the timer, the hooks and the
  control port (``services.common.control``), returning a ``Watch``.

The hot paths never call into any of this: a service counts with plain attributes, and its
collector reads them when the control port is scraped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from services.common.config import ServiceConfig
from services.common.control import DEFAULT_LAG_INTERVAL, ControlServer, new_registry, serve
from services.common.faults import Faults, LoopHooks

LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

__all__ = ["LAG_BUCKETS", "LagMonitor", "LoopHooks", "Watch", "watch"]


class LagMonitor:
    """How late the loop runs its timer: a histogram of lags, and "blocked now".

    ``tick(lag)`` is called ON the loop by its timer, every ``interval`` seconds;
    ``collect()`` runs on the control port's thread. No lock: the loop thread only adds to
    plain integers and floats (atomic under the GIL), and a scrape derives the count from
    the bucket counts it copied, so the histogram it exposes is always coherent.
    """

    def __init__(
        self, interval: float = DEFAULT_LAG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.last_tick = clock()
        self.ticks = 0
        self._bounds = LAG_BUCKETS
        self._counts = [0] * (len(LAG_BUCKETS) + 1)  # the last one is +Inf
        self._sum = 0.0

    def tick(self, lag: float) -> None:
        """Record one firing of the timer, ``lag`` seconds after it was due."""
        self.last_tick = self.clock()
        lag = max(0.0, lag)
        index = 0
        for bound in self._bounds:
            if lag <= bound:
                break
            index += 1
        self._counts[index] += 1
        self._sum += lag
        self.ticks += 1

    def blocked_seconds(self, now: float | None = None) -> float:
        """How long the loop has gone without a tick beyond one interval (0 when on time)."""
        now = self.clock() if now is None else now
        return max(0.0, now - self.last_tick - self.interval)

    def collect(self) -> Iterator[Metric]:
        counts = list(self._counts)
        total = self._sum
        buckets, cumulative = [], 0
        for bound, count in zip((*self._bounds, float("inf")), counts):
            cumulative += count
            buckets.append((_bucket_label(bound), cumulative))
        yield HistogramMetricFamily(
            "polyloop_event_loop_lag_seconds",
            "How late the loop's periodic timer fired (seconds after it was due).",
            buckets=buckets,
            sum_value=total,
        )
        yield GaugeMetricFamily(
            "polyloop_event_loop_blocked_seconds",
            "How long the loop has now gone without its timer firing, beyond one interval.",
            value=self.blocked_seconds(),
        )


def _bucket_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


@dataclass
class Watch:
    """What a loop's ``start`` started: the monitor, its timer, the control port (if any)."""

    monitor: LagMonitor
    timer: Any  # each loop's lag timer: it has stop()
    server: ControlServer | None

    def stop(self) -> None:
        """Stop the lag timer (the serving thread is a daemon: it ends with the process)."""
        self.timer.stop()


def watch(
    monitor: LagMonitor,
    timer: Any,
    hooks: LoopHooks,
    config: ServiceConfig,
    collectors: tuple[Any, ...],
    *,
    serve_port: bool = True,
    faults: Faults | None = None,
    registry: CollectorRegistry | None = None,
    start_thread: Callable[[Callable[[], None]], object] | None = None,
) -> Watch | None:
    """The part of every loop's ``start`` that does not depend on the loop: the monitor and
    ``collectors`` in a registry (a new one with the process collector, or ``registry``),
    the hooks handed to ``faults``, and the control port on the service's listen host and
    metrics port (``serve_port`` False: no port, for an app tested in-process). None, with
    nothing started, when POLYLOOP_METRICS=0 (the faults still get their hooks). Raises
    ``OSError`` when the port cannot be bound.
    """
    if faults is not None:
        faults.hooks = hooks
    settings = config.metrics
    if not settings.enabled:
        return None
    if registry is None:
        registry = new_registry(monitor, *collectors)
    else:
        for collector in (monitor, *collectors):
            registry.register(collector)
    server = None
    if serve_port:
        server = serve(
            settings,
            config.listen_host,
            config.metrics_port,
            registry,
            faults=faults,
            start_thread=start_thread,
        )
    return Watch(monitor, timer.start(), server)
