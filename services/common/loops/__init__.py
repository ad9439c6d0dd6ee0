"""Reaching an event loop from outside: one module per loop, the same three things in each.

``twisted.py`` (the reactor), ``asyncio.py`` (asyncio's loop or uvloop's) and ``gevent.py``
(the hub) each hold:

- a **lag timer**: a periodic timer ON the loop that ticks a ``LagMonitor`` with how late it
  fired (``polyloop_event_loop_lag_seconds``); the monitor's last tick also gives "blocked
  now" (``polyloop_event_loop_blocked_seconds``), computed off the loop at scrape time, and
  each tick times the stretch without a tick it ends: a **stall** when it reached
  ``POLYLOOP_STALL_THRESHOLD`` (counted, timed), and the longest of the last two seconds
  (``polyloop_event_loop_blocked_max_seconds``, "blocked now" whatever the reader's phase);
- the loop's **fault hooks** (``LoopHooks``): how ``services.common.faults.Faults``, set from
  the control port's thread, runs a block or a delay ON that loop;
- one ``start(...)`` that a service's ``__main__`` calls once: the timer, the hooks, the
  stall watchdog (``stalls.py``: a thread that records each stall with the loop's stack)
  and the control port (``services.common.control``), returning a ``Watch``.

The hot paths never call into any of this: a service counts with plain attributes, and its
collector reads them when the control port is scraped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from services.common.config import ServiceConfig
from services.common.control import (
    DEFAULT_LAG_INTERVAL,
    DEFAULT_STALL_THRESHOLD,
    ControlServer,
    new_registry,
    serve,
)
from services.common.faults import Faults, LoopHooks
from services.common.loops.stalls import StallLog, Watchdog, describe

LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10)
STALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30)
# "blocked max" is the longest stretch without a tick that ended in the last WINDOW slots
# of SLOT seconds (1.75 to 2 s, with the one in progress): any reader that reads at least
# every 1.75 s sees every stall, and a reader never takes a value from another one
SLOT = 0.25
WINDOW = 8

__all__ = ["LAG_BUCKETS", "STALL_BUCKETS", "LagMonitor", "LoopHooks", "Watch", "watch"]


class LagMonitor:
    """How late the loop runs its timer: a histogram of lags, "blocked now", and stalls.

    ``tick(lag)`` is called ON the loop by its timer, every ``interval`` seconds;
    ``collect()`` runs on the control port's thread. No lock: the loop thread only adds to
    plain integers and floats (atomic under the GIL), and a scrape derives the count from
    the bucket counts it copied, so the histogram it exposes is always coherent.

    Each tick also times the stretch it ends, beyond one interval (what "blocked now" read
    while it lasted): at ``stall_threshold`` or more it is a stall, counted and timed when
    it ends (``stalls``, ``stalled_seconds``, ``last_stall``); the longest of the last two
    seconds is ``blocked_max_seconds()``. The first tick records the loop's thread
    (``thread_ident``, from ``get_ident``: the original one under gevent, whose patched
    ``get_ident`` names greenlets) and times nothing (before it, the loop was not running).
    """

    def __init__(
        self,
        interval: float = DEFAULT_LAG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        *,
        stall_threshold: float = DEFAULT_STALL_THRESHOLD,
        get_ident: Callable[[], int] = threading.get_ident,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.stall_threshold = stall_threshold
        self.last_tick = clock()
        self.ticks = 0
        self.thread_ident: int | None = None
        self.stalls = 0
        self.stalled_seconds = 0.0
        self.last_stall = (0.0, 0.0)  # (when it ended, how long it lasted), monotonic
        self._get_ident = get_ident
        self._bounds = LAG_BUCKETS
        self._counts = [0] * (len(LAG_BUCKETS) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._stall_counts = [0] * (len(STALL_BUCKETS) + 1)
        self._slots = [-1] * WINDOW  # which SLOT each entry holds the longest stretch of
        self._slot_max = [0.0] * WINDOW

    def tick(self, lag: float) -> None:
        """Record one firing of the timer, ``lag`` seconds after it was due."""
        now = self.clock()
        if self.ticks == 0:
            self.thread_ident = self._get_ident()
        else:
            stretch = now - self.last_tick - self.interval
            if stretch > 0.0:
                self._window(now, stretch)
                if stretch >= self.stall_threshold:
                    self._stall(now, stretch)
        # last: whoever sees this tick sees the stall it ended counted
        self.last_tick = now
        lag = max(0.0, lag)
        index = 0
        for bound in self._bounds:
            if lag <= bound:
                break
            index += 1
        self._counts[index] += 1
        self._sum += lag
        self.ticks += 1

    def _window(self, now: float, stretch: float) -> None:
        slot = int(now / SLOT)
        at = slot % WINDOW
        if self._slots[at] != slot:
            self._slot_max[at] = stretch
            self._slots[at] = slot
        elif stretch > self._slot_max[at]:
            self._slot_max[at] = stretch

    def _stall(self, now: float, stretch: float) -> None:
        index = 0
        for bound in STALL_BUCKETS:
            if stretch <= bound:
                break
            index += 1
        self._stall_counts[index] += 1
        self.stalled_seconds += stretch
        self.last_stall = (now, stretch)
        self.stalls += 1

    def blocked_seconds(self, now: float | None = None) -> float:
        """How long the loop has gone without a tick beyond one interval (0 when on time)."""
        now = self.clock() if now is None else now
        return max(0.0, now - self.last_tick - self.interval)

    def blocked_max_seconds(self, now: float | None = None) -> float:
        """The longest stretch without a tick (beyond one interval) that ended in the last
        1.75 to 2 s, or the one in progress if longer: "blocked now" for any reader."""
        now = self.clock() if now is None else now
        oldest = int(now / SLOT) - WINDOW + 1
        ended = [m for slot, m in zip(list(self._slots), list(self._slot_max)) if slot >= oldest]
        return max([self.blocked_seconds(now), *ended])

    def collect(self) -> Iterator[Metric]:
        counts = list(self._counts)
        total = self._sum
        yield HistogramMetricFamily(
            "polyloop_event_loop_lag_seconds",
            "How late the loop's periodic timer fired (seconds after it was due).",
            buckets=_cumulative(self._bounds, counts),
            sum_value=total,
        )
        yield GaugeMetricFamily(
            "polyloop_event_loop_blocked_seconds",
            "How long the loop has now gone without its timer firing, beyond one interval.",
            value=self.blocked_seconds(),
        )
        yield GaugeMetricFamily(
            "polyloop_event_loop_blocked_max_seconds",
            "The longest the loop went without its timer firing (beyond one interval) in the"
            " last 2 s, the stretch in progress included.",
            value=self.blocked_max_seconds(),
        )
        stall_counts = list(self._stall_counts)
        stalled = self.stalled_seconds
        yield CounterMetricFamily(
            "polyloop_event_loop_stalls",
            "Stalls: the loop's timer did not fire for POLYLOOP_STALL_THRESHOLD beyond its"
            " interval (counted when they end).",
            value=sum(stall_counts),
        )
        yield CounterMetricFamily(
            "polyloop_event_loop_stalled_seconds",
            "Seconds the loop spent in stalls (counted when each ends).",
            value=stalled,
        )
        yield HistogramMetricFamily(
            "polyloop_event_loop_stall_seconds",
            "How long each stall lasted (beyond the timer's interval).",
            buckets=_cumulative(STALL_BUCKETS, stall_counts),
            sum_value=stalled,
        )


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, int]]:
    buckets, cumulative = [], 0
    for bound, count in zip((*bounds, float("inf")), counts):
        cumulative += count
        buckets.append((_bucket_label(bound), cumulative))
    return buckets


def _bucket_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


@dataclass
class Watch:
    """What a loop's ``start`` started: the monitor, its timer, the stall log and its
    watchdog (None when POLYLOOP_STALL_WATCHDOG=0), the control port (if any)."""

    monitor: LagMonitor
    timer: Any  # each loop's lag timer: it has stop()
    server: ControlServer | None
    stalls: StallLog
    watchdog: Watchdog | None = None
    service: str | None = None
    loop: str = ""

    def describe_stalls(self) -> dict[str, Any]:
        """What ``GET /stalls`` answers (``services.common.loops.stalls``)."""
        return describe(
            self.monitor, self.stalls, self.watchdog, service=self.service, loop=self.loop
        )

    def stop(self) -> None:
        """Stop the lag timer and the watchdog (the serving thread is a daemon: it ends
        with the process)."""
        if self.watchdog is not None:
            self.watchdog.stop()
        self.timer.stop()


def watch(
    monitor: LagMonitor,
    timer: Any,
    hooks: LoopHooks,
    config: ServiceConfig,
    collectors: tuple[Any, ...],
    *,
    loop: str,
    serve_port: bool = True,
    faults: Faults | None = None,
    registry: CollectorRegistry | None = None,
    start_thread: Callable[[Callable[[], None]], object] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Watch | None:
    """The part of every loop's ``start`` that does not depend on the loop: the monitor and
    ``collectors`` in a registry (a new one with the process collector, or ``registry``),
    the hooks handed to ``faults``, the stall watchdog on a thread of its own (started by
    ``start_thread``, sleeping with ``sleep``: both must be the real ones under gevent),
    and the control port on the service's listen host and metrics port (``serve_port``
    False: no port, for an app tested in-process), serving ``/metrics``, ``/faults`` and
    ``/stalls`` (which names the service and ``loop``). None, with nothing started, when
    POLYLOOP_METRICS=0 (the faults still get their hooks). Raises ``OSError`` when the port
    cannot be bound.
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
    log = StallLog(settings.stall_events)
    watchdog = Watchdog(monitor, log, sleep=sleep) if settings.stall_watchdog else None
    service = config.service.name if config.service is not None else None
    watched = Watch(monitor, timer, None, log, watchdog, service, loop)
    if serve_port:
        watched.server = serve(
            settings,
            config.listen_host,
            config.metrics_port,
            registry,
            faults=faults,
            stalls=watched.describe_stalls,
            start_thread=start_thread,
        )
    timer.start()
    if watchdog is not None:
        watchdog.start(start_thread or _watchdog_thread)
    return watched


def _watchdog_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name="stall-watchdog", daemon=True)
    thread.start()
    return thread
