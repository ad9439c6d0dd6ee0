"""The lag timer on a Twisted reactor: ``task.LoopingCall.withCount``.

``withCount`` passes how many intervals elapsed since the last call (a reactor blocked
0.3 s under a 0.05 s interval gives 6). The call was due on LoopingCall's own grid,
``starttime + (intervals so far + 1) * interval``, so its lag is the clock's time minus
that: exact, and driven by ``task.Clock`` in tests.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from services.common.metrics import LagMonitor


class TwistedLagTimer:
    """Tick ``monitor`` every ``monitor.interval`` seconds from ``clock`` (the reactor)."""

    def __init__(self, monitor: LagMonitor, clock: IReactorTime) -> None:
        self.monitor = monitor
        self.intervals = 0
        self.call = task.LoopingCall.withCount(self._tick)
        self.call.clock = clock

    def start(self) -> TwistedLagTimer:
        self.call.start(self.monitor.interval, now=False)
        return self

    def stop(self) -> None:
        if self.call.running:
            self.call.stop()

    def _tick(self, count: int) -> None:
        due = self.call.starttime + (self.intervals + 1) * self.monitor.interval
        self.intervals += count
        self.monitor.tick(self.call.clock.seconds() - due)
