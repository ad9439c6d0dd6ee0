"""The lag timer on an asyncio loop (the stdlib's or uvloop): ``loop.call_later``.

Each tick remembers when the next one is due (``loop.time()``, monotonic) and re-arms
itself; how late it then runs is the loop's lag (the drift idiom of Ray Serve's
``serve_event_loop_scheduling_latency_ms``).
"""

from __future__ import annotations

import asyncio

from services.common.metrics import LagMonitor


class AsyncioLagTimer:
    """Tick ``monitor`` every ``monitor.interval`` seconds on ``loop``."""

    def __init__(self, monitor: LagMonitor, loop: asyncio.AbstractEventLoop) -> None:
        self.monitor = monitor
        self.loop = loop
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> AsyncioLagTimer:
        self._arm()
        return self

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        self._due = self.loop.time() + self.monitor.interval
        self._handle = self.loop.call_later(self.monitor.interval, self._tick)

    def _tick(self) -> None:
        self.monitor.tick(self.loop.time() - self._due)
        self._arm()
