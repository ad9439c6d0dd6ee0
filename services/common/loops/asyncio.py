"""An asyncio loop (the stdlib's or uvloop) seen from outside: lag timer, fault hooks, ``start``.

The lag timer is ``loop.call_later``: each tick remembers when the next one is due
(``loop.time()``, monotonic) and re-arms itself; how late it then runs is the loop's lag
(the drift idiom of Ray Serve's ``serve_event_loop_scheduling_latency_ms``).

    watch = start(loop, config, UdpEchoCollector(protocol), faults=protocol.faults)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from services.common.config import ServiceConfig
from services.common.faults import Faults, LoopHooks
from services.common.loops import LagMonitor, Watch, watch


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


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a service runs on, by its setting's name (``UDP_ECHO_LOOP``,
    ``WEB_LOOP``), for ``asyncio.Runner``: None is asyncio's own."""
    if name == "uvloop":
        import uvloop  # only where chosen: the stdlib loop needs no extra package

        return uvloop.new_event_loop
    return None


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"``: whose loop this is, as the settings name it."""
    return "uvloop" if type(loop).__module__.split(".")[0] == "uvloop" else "asyncio"


def hooks(loop: asyncio.AbstractEventLoop) -> LoopHooks:
    """The loop's ways for ``Faults``: ``call_soon_threadsafe``, ``call_later``, ``time.sleep``.

    ``time.sleep`` in a callback of the loop is the real block: no other callback, no
    other coroutine runs until it returns.
    """
    return LoopHooks(loop.call_soon_threadsafe, loop.call_later, time.sleep)


def start(
    loop: asyncio.AbstractEventLoop,
    config: ServiceConfig,
    *collectors: Any,
    faults: Faults | None = None,
    registry: CollectorRegistry | None = None,
    serve_port: bool = True,
) -> Watch | None:
    """The lag timer on ``loop``, its hooks for ``faults``, the stall watchdog (a daemon
    thread) and the service's control port serving ``collectors`` (into ``registry`` when
    given; ``serve_port`` False: no port). None when POLYLOOP_METRICS=0. Raises
    ``OSError`` if the port cannot be bound."""
    monitor = LagMonitor(
        config.metrics.lag_interval, stall_threshold=config.metrics.stall_threshold
    )
    timer = AsyncioLagTimer(monitor, loop)
    return watch(
        monitor,
        timer,
        hooks(loop),
        config,
        collectors,
        loop="asyncio",
        faults=faults,
        registry=registry,
        serve_port=serve_port,
    )
