"""The Twisted reactor seen from outside: its lag timer, its fault hooks, ``start``.

The lag timer is ``task.LoopingCall.withCount``. ``withCount`` passes how many intervals
elapsed since the last call (a reactor blocked 0.3 s under a 0.05 s interval gives about 6),
but that count is floored from float seconds and can come one short, so the lag is not
derived from it: each tick knows when LoopingCall scheduled it (the next point of its grid
after the previous run, computed as ``LoopingCall._scheduleFrom`` does) and the lag is the
clock's time minus that. The count is kept as ``missed`` (intervals skipped), and
``task.Clock`` drives it in tests.

    watch = start(reactor, config, TcpEchoCollector(factory), faults=factory.faults)
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from services.common.config import ServiceConfig
from services.common.faults import Faults, LoopHooks
from services.common.loops import LagMonitor, Watch, watch


class TwistedLagTimer:
    """Tick ``monitor`` every ``monitor.interval`` seconds from ``clock`` (the reactor)."""

    def __init__(self, monitor: LagMonitor, clock: IReactorTime) -> None:
        self.monitor = monitor
        self.clock = clock
        self.missed = 0  # intervals that passed without a tick (withCount's count - 1)
        self.call = task.LoopingCall.withCount(self._tick)
        self.call.clock = clock
        self._due = 0.0

    def start(self) -> TwistedLagTimer:
        self.call.start(self.monitor.interval, now=False)
        self._due = self.call.starttime + self.monitor.interval
        return self

    def stop(self) -> None:
        if self.call.running:
            self.call.stop()

    def _tick(self, count: int) -> None:
        now = self.clock.seconds()
        self.monitor.tick(now - self._due)
        self.missed += max(0, count - 1)
        self._due = now + self._until_next(now)

    def _until_next(self, now: float) -> float:
        # LoopingCall reschedules on its grid from starttime: the next point after `now`
        interval = self.monitor.interval
        until = interval - ((now - self.call.starttime) % interval)
        return interval if now == now + until else until


def hooks(reactor: Any) -> LoopHooks:
    """The reactor's ways for ``Faults``: ``callFromThread``, ``callLater``, ``time.sleep``.

    ``time.sleep`` called from a reactor callback is the real block: nothing else on the
    reactor runs until it returns.
    """
    return LoopHooks(reactor.callFromThread, reactor.callLater, time.sleep)


def start(
    reactor: Any, config: ServiceConfig, *collectors: Any, faults: Faults | None = None
) -> Watch | None:
    """The lag timer on ``reactor``, its hooks for ``faults``, the stall watchdog (a daemon
    thread) and the service's control port serving ``collectors`` (None when
    POLYLOOP_METRICS=0). Raises ``OSError`` if the port is taken."""
    monitor = LagMonitor(
        config.metrics.lag_interval, stall_threshold=config.metrics.stall_threshold
    )
    timer = TwistedLagTimer(monitor, reactor)
    return watch(monitor, timer, hooks(reactor), config, collectors, loop="twisted", faults=faults)
