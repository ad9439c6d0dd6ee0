"""The stall watchdog and the lag monitor's stall accounting (services/common/loops), driven
by a simulated loop: a fake clock, a lag timer that ticks every interval unless the test
blocks it, and the watchdog's sleeps advancing that clock. No thread, no real time.

What must hold: an idle loop wakes the watchdog about twice per threshold and records
nothing; a block gives ONE event, timed by the tick that ends it, with the stack sampled
during it; 1,000 stalls leave the ring at its bound and /metrics at its size; "blocked
max" covers any reader's last read.
"""

from __future__ import annotations

import sys
from types import FrameType

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from services.common.loops import LagMonitor
from services.common.loops.stalls import (
    LOOK_EARLY,
    MAX_FRAMES,
    MAX_SAMPLE_EVERY,
    StallLog,
    Watchdog,
    describe,
    format_stack,
)

INTERVAL = 0.05
THRESHOLD = 0.1
LOOP_THREAD = 7  # the simulated loop's thread ident
WALL = 1_700_000_000.0  # wall time at the simulation's zero


def culprit_frame() -> FrameType:
    """A real frame that names a culprit (what the simulated loop is "running")."""
    return sys._getframe()


class SimulatedLoop:
    """A clock, a lag timer ticking a LagMonitor every INTERVAL, blocks set by the test,
    and a watchdog whose sleeps advance the clock (ticking whatever falls due)."""

    def __init__(self, events: int = 50, threshold: float = THRESHOLD) -> None:
        self.now = 0.0
        self.blocked_until = -1.0
        self.due = INTERVAL
        self.frame: FrameType | None = culprit_frame()
        self.monitor = LagMonitor(
            INTERVAL, self.clock, stall_threshold=threshold, get_ident=lambda: LOOP_THREAD
        )
        self.log = StallLog(events)
        self.watchdog = Watchdog(
            self.monitor,
            self.log,
            sleep=self.advance,
            clock=self.clock,
            wall=lambda: WALL + self.now,
            frames=self.frames,
        )
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def frames(self) -> dict[int, FrameType]:
        return {} if self.frame is None else {LOOP_THREAD: self.frame}

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: the timer ticks whenever it is due and the loop is free."""
        self.sleeps.append(seconds)
        end = self.now + seconds
        while True:
            tick_at = max(self.due, self.blocked_until)
            if tick_at > end:
                break
            self.now = tick_at
            self.monitor.tick(self.now - self.due)
            self.due = self.now + INTERVAL  # asyncio's way: re-armed from the tick
        self.now = end

    def block(self, seconds: float) -> None:
        """The loop is busy from now for ``seconds`` (its timer cannot fire meanwhile)."""
        self.blocked_until = self.now + seconds

    def run(self, seconds: float) -> None:
        """The watchdog's thread for ``seconds`` of simulated time."""
        end = self.now + seconds
        while self.now < end:
            self.advance(self.watchdog.step())
            self.watchdog.wakeups += 1


def test_an_idle_loop_wakes_the_watchdog_about_twice_per_threshold_and_records_nothing() -> None:
    sim = SimulatedLoop()
    sim.advance(INTERVAL)  # the first tick: the loop runs
    sim.run(10.0)
    assert sim.log.events() == []
    assert sim.monitor.stalls == 0
    # never a fast poll: each sleep lasts until the loop could be late by half a threshold
    assert min(sim.sleeps[1:]) >= THRESHOLD * LOOK_EARLY
    assert sim.watchdog.wakeups <= 10.0 / (THRESHOLD * LOOK_EARLY)


def test_nothing_is_watched_before_the_loop_first_ticks() -> None:
    sim = SimulatedLoop()
    sim.due = 5.0  # a loop that starts late (e.g. a reactor not run yet)
    sim.run(4.9)
    assert sim.monitor.ticks == 0 and sim.log.events() == []
    sim.run(1.0)
    assert sim.monitor.thread_ident == LOOP_THREAD
    assert sim.monitor.stalls == 0  # the wait before the first tick is not a stall


def test_a_block_is_one_event_timed_by_its_tick_with_the_sampled_stack() -> None:
    sim = SimulatedLoop()
    sim.run(1.0)
    started = sim.now
    sim.block(0.3)
    sim.run(1.0)
    [(at, duration, stack)] = sim.log.events()
    # the tick that ends it times it: late by the block, less the part of it that fell
    # in the timer's own wait (at most one interval)
    assert 0.3 - INTERVAL <= duration <= 0.3
    assert duration == sim.monitor.last_stall[1]
    assert at == pytest.approx(WALL + started, abs=INTERVAL)
    assert stack[-1].endswith("in culprit_frame")
    assert stack[-1].startswith("tests/unit/test_stalls.py:")
    assert sim.monitor.stalls == 1
    assert sim.monitor.stalled_seconds == pytest.approx(duration)


def test_a_stall_shorter_than_the_threshold_is_not_an_event() -> None:
    sim = SimulatedLoop()
    sim.run(1.0)
    sim.block(THRESHOLD)  # late by less than the threshold: the interval absorbs part of it
    sim.run(1.0)
    assert sim.log.events() == [] and sim.monitor.stalls == 0
    assert sim.monitor.blocked_max_seconds() > 0  # the lag itself is still seen


def test_a_stall_just_over_the_threshold_has_its_stack_though_the_thread_wakes_late() -> None:
    """On a loaded machine the watchdog's thread wakes late: sampling from half the
    threshold on, it still holds the stack of a stall that ends soon after the threshold."""
    sim = SimulatedLoop()
    starved = sim.advance
    sim.advance = lambda seconds: starved(seconds + 0.06)  # every wake-up 60 ms late
    sim.run(1.0)
    sim.block(THRESHOLD + INTERVAL + 0.02)  # late by the threshold for its last 20 ms
    sim.run(1.0)
    [(_, _, stack)] = sim.log.events()
    assert stack and stack[-1].endswith("in culprit_frame")


def test_the_most_sampled_stack_wins() -> None:
    sim = SimulatedLoop()
    sim.run(1.0)
    other = sys._getframe()
    sim.block(0.5)
    sim.run(0.2)  # two or three samples of the culprit
    sim.frame = other
    sim.run(1.0)  # the rest of the block on another line
    [(_, _, stack)] = sim.log.events()
    assert "in test_the_most_sampled_stack_wins" in stack[-1]


def test_a_stall_the_watchdog_slept_through_is_still_an_event_without_a_stack() -> None:
    sim = SimulatedLoop()
    sim.run(1.0)
    sim.block(0.4)
    sim.advance(1.0)  # the watchdog's thread starved (a C call holding the GIL): no look
    sim.run(0.5)
    [(_, duration, stack)] = sim.log.events()
    assert stack == ()
    assert 0.4 - INTERVAL <= duration <= 0.4
    assert sim.watchdog.unsampled == 1


def test_the_watchdog_stops_when_the_loop_thread_is_gone() -> None:
    sim = SimulatedLoop()
    sim.run(1.0)
    sim.frame = None  # the thread ended: its timer will never fire again
    sim.block(100.0)
    sim.run(1.0)
    assert not sim.watchdog.running


def test_a_loop_stopped_for_good_is_sampled_ever_more_rarely() -> None:
    sim = SimulatedLoop()
    sim.run(1.0)
    sim.block(1000.0)
    sim.run(120.0)
    assert max(sim.sleeps) == MAX_SAMPLE_EVERY
    assert sim.watchdog.wakeups < 200


def test_a_thousand_short_stalls_keep_the_ring_and_metrics_bounded() -> None:
    sim = SimulatedLoop(events=50)
    registry = CollectorRegistry()
    registry.register(sim.monitor)
    # each stall on a stack of its own: a thousand distinct culprits
    culprits = []
    for i in range(1000):
        namespace: dict = {"sys": sys}
        exec(f"def culprit_{i}():\n    return sys._getframe()", namespace)  # noqa: S102
        culprits.append(namespace[f"culprit_{i}"]())
    sim.run(0.5)
    sizes = []
    for i, frame in enumerate(culprits):
        sim.frame = frame
        sim.block(0.2)
        sim.run(0.4)
        if i in (9, 999):
            sizes.append(generate_latest(registry).decode())
    events = sim.log.events()
    assert sim.monitor.stalls == 1000
    assert len(events) == 50
    assert events[-1][2][-1].endswith("in culprit_999")
    assert sim.log.distinct_stacks <= 2 * 50 + 1
    before, after = sizes
    assert before.count("\n") == after.count("\n")  # no series per stall, no stack label
    assert len(after) - len(before) < 100  # only digits grew
    assert "culprit" not in after


def test_equal_stacks_are_stored_once() -> None:
    log = StallLog(10)
    first = ("a.py:1 in f", "b.py:2 in g")
    log.add(1.0, 0.2, first)
    log.add(2.0, 0.3, tuple(list(first)))
    (_, _, one), (_, _, two) = log.events()
    assert one is two
    assert log.distinct_stacks == 1


def test_blocked_max_covers_every_reader_for_two_seconds() -> None:
    sim = SimulatedLoop()
    sim.run(1.0)
    sim.block(0.5)
    sim.run(0.3)  # in progress: the stretch so far
    assert 0.2 <= sim.monitor.blocked_max_seconds() <= 0.3
    sim.run(0.5)
    end, ended = sim.monitor.last_stall
    # read by one reader, then by another: neither takes it from the other
    assert sim.monitor.blocked_max_seconds() == ended
    assert sim.monitor.blocked_max_seconds() == ended
    sim.advance(end + 1.74 - sim.now)  # a reader that last read 1.74 s ago still sees it
    assert sim.monitor.blocked_max_seconds() == ended
    sim.advance(0.27)  # 2.01 s after it ended: gone
    assert sim.monitor.blocked_max_seconds() < THRESHOLD


def test_what_get_stalls_says() -> None:
    sim = SimulatedLoop()
    sim.run(1.0)
    sim.block(0.3)
    sim.run(0.2)
    during = describe(sim.monitor, sim.log, sim.watchdog, service="x", loop="y", frames=sim.frames)
    assert during["stalled_now"]["since_ms"] >= THRESHOLD * 1000
    assert during["stalled_now"]["stack"][-1].endswith("in culprit_frame")
    assert during["events"] == []
    sim.run(1.0)
    after = describe(sim.monitor, sim.log, sim.watchdog, service="x", loop="y", frames=sim.frames)
    assert after["stalled_now"] is None
    assert after["service"] == "x" and after["loop"] == "y" and after["watchdog"]["wakeups"] > 0
    assert after["threshold_ms"] == 100.0 and after["stalls_total"] == 1
    [event] = after["events"]
    assert set(event) == {"at", "duration_ms", "stack"}
    assert 250 <= event["duration_ms"] <= 300


def test_get_stalls_counts_the_stalls_its_events_account_for() -> None:
    sim = SimulatedLoop()
    sim.run(1.0)
    sim.block(0.3)
    sim.run(0.2)  # the watchdog is sampling; the block ends during its next sleep
    sim.advance(0.15)
    assert sim.monitor.stalls == 1  # the tick counted it the moment it ended
    answer = describe(sim.monitor, sim.log, sim.watchdog, service="x", loop="y")
    assert answer["stalls_total"] == 0 and answer["events"] == []  # not recorded yet
    sim.run(0.1)
    answer = describe(sim.monitor, sim.log, sim.watchdog, service="x", loop="y")
    assert answer["stalls_total"] == 1 and len(answer["events"]) == 1


def recurse(depth: int) -> FrameType:
    return sys._getframe() if depth == 0 else recurse(depth - 1)


def test_a_stack_keeps_its_innermost_frames_with_paths_from_the_repo() -> None:
    stack = format_stack(recurse(50))
    assert len(stack) == MAX_FRAMES
    assert all(line.startswith("tests/unit/test_stalls.py:") for line in stack)
    assert stack[-1].endswith("in recurse")
    # outside the repo: relative to its sys.path entry (the stdlib, site-packages)
    import json.decoder

    where = format_stack(sys._getframe())[0]
    assert not where.startswith("/")
    assert json.decoder.__file__.endswith("json/decoder.py")
