"""Where did it block? A watchdog outside the loop that records each stall with its stack.

A **stall** is a stretch of at least ``POLYLOOP_STALL_THRESHOLD`` seconds (default 0.2)
during which the loop's lag timer did not fire, beyond its one interval: the loop ran
something that did not give it back. The lag timer itself (``LagMonitor.tick``, ON the
loop) counts and times every stall when it ends: it is the one that knows.

The ``Watchdog`` is a thread OUTSIDE the loop (a real OS thread in the gevent hub, sleeping
with the original ``time.sleep``). It watches the timer's heartbeat, ``LagMonitor.last_tick``,
and sleeps until the loop is late by half the threshold (the last tick + one interval +
``LOOK_EARLY`` x the threshold): at idle it wakes about twice per threshold, never per
request. From then on it samples the loop thread's stack (``sys._current_frames()``) every
``threshold / 2`` while the loop stays late, so that even a stall just over the threshold,
on a loaded machine where the thread wakes late, has its stack; when the timer fires again
it records ONE event if the loop was late by the threshold (a shorter lateness is
forgotten): when the stall began (wall time), how long it lasted (the timer's measure), and
the stack seen most often (``path:line in function``, innermost last, at most
``MAX_FRAMES``, paths relative to the repo or to their ``sys.path`` entry). Events live
in a ring of ``POLYLOOP_STALL_EVENTS`` (default 50); equal stacks are stored once.

What a stack cannot show: a C call that holds the GIL the whole time (a long regex, a big
``json.dumps``) keeps the watchdog from running until it returns; if the stall ends with
it, the event has an empty stack (it is still counted and timed). A stall shorter than
the threshold is never recorded (the lag histogram still has it).

``StallLog.describe()`` is what ``GET /stalls`` answers on the control port (see
``services.common.control``)::

    {"service": "resolver", "loop": "gevent", "threshold_ms": 200.0,
     "watchdog": {"wakeups": 812, "unsampled": 0} | null (POLYLOOP_STALL_WATCHDOG=0),
     "stalls_total": 3, "stalled_seconds_total": 0.912,
     "stalled_now": null | {"since_ms": 212.0, "stack": [...]},
     "events": [{"at": 1767000000.123, "duration_ms": 301.5, "stack": [...]}, ...]}

Runs on PyPy 3.9 too (no 3.10+ syntax at run time).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["MAX_FRAMES", "Stack", "StallLog", "Watchdog", "format_stack"]

MAX_FRAMES = 30  # innermost frames kept per stack: the culprit is at that end
MAX_DISTINCT = 8  # distinct stacks counted during one stall (beyond: not counted)
MIN_SAMPLE_EVERY = 0.02  # seconds between two samples of one stall, at least
# the share of the threshold the loop may be late before sampling begins: a stall is known
# only when it ends, and its stack must be taken while it lasts
LOOK_EARLY = 0.5
# a stall that outlasts this many samples is sampled half as often each time, down to once
# a second (a loop stopped for good, e.g. a test's reactor, costs next to nothing)
SAMPLES_AT_FULL_RATE = 32
MAX_SAMPLE_EVERY = 1.0

Stack = tuple[str, ...]

_ROOT = str(Path(__file__).resolve().parents[3])


@functools.lru_cache(maxsize=2048)
def _where(filename: str) -> str:
    """``filename`` relative to the repo, or to the ``sys.path`` entry holding it (the
    longest: a venv's site-packages wins over a repo that contains it)."""
    best = ""
    for entry in (_ROOT, *sys.path):
        entry = os.path.abspath(entry or os.curdir)
        if len(entry) > len(best) and filename.startswith(entry + os.sep):
            best = entry
    return filename[len(best) + 1 :] if best else filename


def format_stack(frame: FrameType | None, limit: int = MAX_FRAMES) -> Stack:
    """``path:line in function`` for ``frame`` and its callers, innermost LAST, at most
    ``limit`` of them (the innermost ones)."""
    lines: list[str] = []
    while frame is not None and len(lines) < limit:
        code = frame.f_code
        name = getattr(code, "co_qualname", code.co_name)  # 3.11+; PyPy 3.9 has co_name
        lines.append(f"{_where(code.co_filename)}:{frame.f_lineno} in {name}")
        frame = frame.f_back
    lines.reverse()
    return tuple(lines)


class StallLog:
    """The last ``size`` stall events, each ``(at, duration, stack)``; stacks interned."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._events: deque[tuple[float, float, Stack]] = deque(maxlen=size)
        self._stacks: dict[Stack, Stack] = {}
        self._lines: dict[str, str] = {}

    def add(self, at: float, duration: float, stack: Stack) -> None:
        """Record one stall (called by the watchdog's thread only)."""
        self._events.append((at, duration, self._intern(stack)))
        if len(self._stacks) > 2 * self.size:
            # keep only what the ring still holds: the tables stay bounded by it
            kept = {stack for _, _, stack in self._events}
            self._stacks = {stack: stack for stack in kept}
            self._lines = {line: line for stack in kept for line in stack}

    def _intern(self, stack: Stack) -> Stack:
        known = self._stacks.get(stack)
        if known is None:
            known = tuple(self._lines.setdefault(line, line) for line in stack)
            self._stacks[known] = known
        return known

    def events(self) -> list[tuple[float, float, Stack]]:
        """A copy, oldest first (safe from any thread: the copy is one C-level call)."""
        return list(self._events)

    @property
    def distinct_stacks(self) -> int:
        return len(self._stacks)


class Watchdog:
    """The thread that samples the loop's stack while ``monitor``'s timer is late.

    ``step()`` is one wake-up of the thread (the tests drive it with a fake clock and
    sleep); ``run()`` loops on it until ``stop()``. ``sleep`` must really sleep the
    thread (the original ``time.sleep`` under gevent), ``frames`` is
    ``sys._current_frames``.
    """

    def __init__(
        self,
        monitor: Any,  # a LagMonitor (loops/__init__.py imports this module)
        log: StallLog,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        frames: Callable[[], dict[int, FrameType]] = sys._current_frames,
    ) -> None:
        self.monitor = monitor
        self.log = log
        self.threshold = monitor.stall_threshold
        self.sample_every = max(MIN_SAMPLE_EVERY, self.threshold / 2)
        self._sleep = sleep
        self._clock = clock
        self._wall = wall
        self._frames = frames
        self.wakeups = 0  # times the thread woke up (the idle cost, read by tests and bench)
        self.unsampled = 0  # stalls that ended before the thread could sample them
        self._seen = 0  # the monitor's stalls accounted for (sampled or not)
        self._stall_tick: float | None = None  # the last tick before the stall being sampled
        self._samples: dict[Stack, int] = {}
        self._sampled = 0  # samples taken of the stall in progress
        self._stopped = False

    def start(self, start_thread: Callable[[Callable[[], None]], object]) -> Watchdog:
        start_thread(self.run)
        return self

    def stop(self) -> None:
        """The thread ends at its next wake-up (at most a threshold later)."""
        self._stopped = True

    @property
    def running(self) -> bool:
        return not self._stopped

    @property
    def accounted(self) -> int:
        """The monitor's stalls this watchdog has recorded (as events) so far: the tick
        counts a stall the moment it ends, the watchdog at its next wake-up."""
        return self._seen

    def run(self) -> None:
        while not self._stopped:
            self._sleep(self.step())
            self.wakeups += 1

    def sample(self) -> Stack:
        """The loop thread's stack now; the watchdog stops when that thread has ended."""
        frame = self._frames().get(self.monitor.thread_ident)
        if frame is None:  # the loop's thread is gone: nothing left to watch
            self._stopped = True
            return ()
        return format_stack(frame)

    def step(self) -> float:
        """Look at the heartbeat once; returns how long to sleep before the next look."""
        m = self.monitor
        if m.ticks == 0:  # the loop has not run its timer yet: nothing to compare with
            return max(m.interval, self.threshold)
        if self._stall_tick is not None:
            if m.last_tick == self._stall_tick:  # still stalled: one more sample
                self._count(self.sample())
                return self._next_sample()
            self._finish()
        if m.stalls > self._seen:  # stalls the thread slept through (it was starved)
            self._unsampled()
        late = self._clock() - m.last_tick - m.interval
        if late >= self.threshold * LOOK_EARLY:
            self._stall_tick = m.last_tick
            self._samples = {}
            self._sampled = 0
            self._count(self.sample())
            return self._next_sample()
        # until this stretch without a tick is worth sampling (1 ms at least: a clock read
        # a hair before must not turn into a busy loop)
        return max(0.001, self.threshold * LOOK_EARLY - late)

    def _next_sample(self) -> float:
        self._sampled += 1
        slower = max(0, self._sampled - SAMPLES_AT_FULL_RATE)
        return min(MAX_SAMPLE_EVERY, self.sample_every * 2 ** min(slower, 8))

    def _count(self, stack: Stack) -> None:
        if stack in self._samples or len(self._samples) < MAX_DISTINCT:
            self._samples[stack] = self._samples.get(stack, 0) + 1

    def _finish(self) -> None:
        """The timer fired again: record the stall with its most seen stack (the tick counts
        a stall first: a lateness under the threshold was no stall, and is forgotten)."""
        m = self.monitor
        begun = self._stall_tick
        self._stall_tick = None
        if m.stalls == self._seen:
            self._samples = {}
            return
        self._seen = m.stalls
        _, duration = m.last_stall
        stack = max(self._samples.items(), key=lambda item: item[1])[0] if self._samples else ()
        self._samples = {}
        at = self._wall() - (self._clock() - (begun + m.interval))
        self.log.add(at, duration, stack)

    def _unsampled(self) -> None:
        m = self.monitor
        self.unsampled += m.stalls - self._seen
        self._seen = m.stalls
        ended, duration = m.last_stall
        self.log.add(self._wall() - (self._clock() - (ended - duration)), duration, ())


def describe(
    monitor: Any,
    log: StallLog,
    watchdog: Watchdog | None,
    *,
    service: str | None,
    loop: str,
    frames: Callable[[], dict[int, FrameType]] = sys._current_frames,
) -> dict[str, Any]:
    """What ``GET /stalls`` answers (see the module's docstring)."""
    blocked = monitor.blocked_seconds()
    stalled_now = None
    if monitor.ticks and blocked >= monitor.stall_threshold:
        frame = frames().get(monitor.thread_ident)
        stalled_now = {
            "since_ms": round(blocked * 1000, 1),
            "stack": list(format_stack(frame)) if frame is not None else [],
        }
    return {
        "service": service,
        "loop": loop,
        "threshold_ms": round(monitor.stall_threshold * 1000, 3),
        "watchdog": None
        if watchdog is None
        else {"wakeups": watchdog.wakeups, "unsampled": watchdog.unsampled},
        # the stalls the events account for: a reader that compares it with the
        # polyloop_event_loop_stalls_total it scraped knows when to read again
        "stalls_total": monitor.stalls if watchdog is None else watchdog.accounted,
        "stalled_seconds_total": round(monitor.stalled_seconds, 6),
        "stalled_now": stalled_now,
        "events": [
            {"at": round(at, 3), "duration_ms": round(duration * 1000, 1), "stack": list(stack)}
            for at, duration, stack in log.events()
        ],
    }
