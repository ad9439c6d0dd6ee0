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

import gevent
from gevent import monkey

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
