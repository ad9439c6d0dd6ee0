"""The gevent hub seen from outside: its lag timer, its fault hooks, ``start``.

The lag timer is a greenlet that ``gevent.sleep``s one interval: how much longer than the
interval the sleep took is the hub's lag. The "blocked now" gauge needs no greenlet: the
control port's real OS thread computes it at scrape time from the last tick, while the hub
itself may be stuck (gevent's own ``monitor_thread`` reports a block too, but only as events
of its threshold, not the block's length).

The control port and the stall watchdog run on REAL OS threads (``start_os_thread``):
after ``monkey.patch_all()``, ``threading.Thread`` would be a greenlet of the very hub it
must watch, and a gevent socket belongs to the hub of the thread that made it. The
watchdog sleeps with the original ``time.sleep`` (the patched one would yield to a hub)
and knows the hub's thread by the original ``get_ident`` (the patched one names greenlets).

Why not gevent's own monitor thread (``GEVENT_MONITOR_THREAD_ENABLE``,
``max_blocking_time``, ``gevent.events.EventLoopBlocked``)? Checked on gevent 26.9: it
reports nothing while the hub itself runs the blocking code (a callback of the loop,
which is where ``run_callback_threadsafe`` puts a fault's first block: its tracer
treats time in the hub as waiting for I/O); its ``blocking_time`` is the threshold, not
how long the block lasted (a 0.5 s block is several events of 0.1 s); and it needs
``greenlet.settrace``, a Python call on every greenlet switch (every request), which
another trace function (a debugger, coverage) replaces. The same watchdog as the other
loops sees every block wherever it runs, for the price of a few wake-ups a second.

    watch = start(config, ResolverCollector(app, resolver), faults=resolver.faults,
                  registry=app.metrics.registry)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent import monkey
from prometheus_client import CollectorRegistry

from services.common.config import ServiceConfig
from services.common.faults import Faults, LoopHooks
from services.common.loops import LagMonitor, Watch, watch


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


def hooks(hub: Any = None) -> LoopHooks:
    """The hub's ways for ``Faults`` (call it in the main thread, or pass its hub).

    From the control port's OS thread, ``run_callback_threadsafe`` runs the block in the hub
    itself; the block is the ORIGINAL ``time.sleep`` (the patched one would only yield to
    the hub, blocking nothing). A repeat is a greenlet started ``gevent.spawn_later``, from
    the hub's clock brought up to date first: the hub reads the time once per loop
    iteration, so right after a block its clock is still the block's start, and a timer
    set from it would fire a block's length early.
    """
    hub = hub or gevent.get_hub()
    sleep = monkey.get_original("time", "sleep")

    def spawn_later(delay: float, fn: Callable[[], None]) -> gevent.Greenlet:
        hub.loop.update_now()
        return gevent.spawn_later(delay, fn)

    return LoopHooks(hub.loop.run_callback_threadsafe, spawn_later, sleep)


def start(
    config: ServiceConfig,
    *collectors: Any,
    faults: Faults | None = None,
    registry: CollectorRegistry | None = None,
) -> Watch | None:
    """The lag greenlet in this thread's hub, its hooks for ``faults``, the stall watchdog
    and the service's control port on OS threads serving ``collectors`` (into ``registry``
    when given). None when POLYLOOP_METRICS=0. Raises ``OSError`` if the port cannot be
    bound."""
    monitor = LagMonitor(
        config.metrics.lag_interval,
        stall_threshold=config.metrics.stall_threshold,
        get_ident=monkey.get_original("_thread", "get_ident"),
    )
    timer = GeventLagTimer(monitor)
    return watch(
        monitor,
        timer,
        hooks(),
        config,
        collectors,
        loop="gevent",
        faults=faults,
        registry=registry,
        start_thread=start_os_thread,
        sleep=monkey.get_original("time", "sleep"),
    )
