"""The lag timer in a gevent hub: a greenlet that ``gevent.sleep``s one interval.

How much longer than the interval the sleep took is the hub's lag. The "blocked now"
gauge needs no greenlet: the metrics server's real OS thread computes it at scrape time
from the last tick, while the hub itself may be stuck (gevent's own ``monitor_thread``
reports a block too, but only as events of its threshold, not the block's length).
Also ``start_os_thread``: how the resolver starts its metrics server on a real thread
even after ``monkey.patch_all()`` (where ``threading.Thread`` would be a greenlet).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent import monkey

from services.common.faults import LoopHooks
from services.common.metrics import LagMonitor


class GeventLagTimer:
    """Tick ``monitor`` every ``monitor.interval`` seconds from a greenlet of the hub."""

    def __init__(self, monitor: LagMonitor) -> None:
        self.monitor = monitor
        self.greenlet: gevent.Greenlet | None = None

    def start(self) -> GeventLagTimer:
        self.greenlet = gevent.spawn(self._run)
        return self

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None

    def _run(self) -> None:
        interval = self.monitor.interval
        while True:
            # time.monotonic is never patched: a real clock, not the hub's cached one
            due = time.monotonic() + interval
            gevent.sleep(interval)
            self.monitor.tick(time.monotonic() - due)


def start_os_thread(target: Callable[[], None]) -> int:
    """Run ``target`` on a new real OS thread (the unpatched ``_thread.start_new_thread``).

    Whatever gevent-patched I/O it does runs on that thread's own hub, so it keeps going
    while the main hub is blocked.
    """
    start_new_thread = monkey.get_original("_thread", "start_new_thread")
    return start_new_thread(target, ())


def gevent_fault_hooks(hub: Any = None) -> LoopHooks:
    """The hub's ways for ``Faults`` (call it in the main thread, or pass its hub).

    From the metrics OS thread, ``run_callback_threadsafe`` runs the block in the hub
    itself; the block is the ORIGINAL ``time.sleep`` (the patched one would only yield
    to the hub, blocking nothing). A repeat is a greenlet started ``gevent.spawn_later``.
    """
    hub = hub or gevent.get_hub()
    sleep = monkey.get_original("time", "sleep")
    return LoopHooks(hub.loop.run_callback_threadsafe, gevent.spawn_later, sleep)
