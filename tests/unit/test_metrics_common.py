"""services/common/loops and services/common/control.py, in-process: the lag histogram and
the "blocked now" gauge, the lag timers, the control port's routes (its connection rules:
test_control_port.py)."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from twisted.internet import task

from services.common.control import ControlServer, new_registry
from services.common.loops import LagMonitor
from services.common.loops.asyncio import AsyncioLagTimer
from services.common.loops.twisted import TwistedLagTimer
from tests.clock import FakeClock
from tests.scrape import lag_over, parse, scrape, value


def samples_of(monitor: LagMonitor) -> dict:
    from prometheus_client import generate_latest

    return parse(generate_latest(new_registry(monitor)).decode())


def test_each_lag_lands_in_its_bucket_and_the_count_adds_up() -> None:
    monitor = LagMonitor(0.05, clock=FakeClock(100.0))
    for lag in (0.0, 0.0004, 0.003, 0.3, 20.0, -0.001):
        monitor.tick(lag)
    samples = samples_of(monitor)
    assert value(samples, "polyloop_event_loop_lag_seconds_count") == 6
    assert value(samples, "polyloop_event_loop_lag_seconds_bucket", le="0.0005") == 3
    assert value(samples, "polyloop_event_loop_lag_seconds_bucket", le="0.005") == 4
    assert value(samples, "polyloop_event_loop_lag_seconds_bucket", le="0.25") == 4
    assert value(samples, "polyloop_event_loop_lag_seconds_bucket", le="0.5") == 5
    assert value(samples, "polyloop_event_loop_lag_seconds_bucket", le="10.0") == 5
    assert value(samples, "polyloop_event_loop_lag_seconds_bucket", le="+Inf") == 6
    assert value(samples, "polyloop_event_loop_lag_seconds_sum") == pytest.approx(20.3034)


def test_blocked_is_zero_on_time_and_grows_from_the_last_tick() -> None:
    clock = FakeClock(100.0)
    monitor = LagMonitor(0.05, clock=clock)
    monitor.tick(0.0)
    clock.now += 0.05  # the next tick is due now: not blocked
    assert monitor.blocked_seconds() == 0.0
    clock.now += 1.2
    assert monitor.blocked_seconds() == pytest.approx(1.2)
    assert value(samples_of(monitor), "polyloop_event_loop_blocked_seconds") == pytest.approx(1.2)
    monitor.tick(1.2)
    assert monitor.blocked_seconds() == 0.0


def test_the_twisted_timer_measures_how_late_looping_call_fires() -> None:
    # binary-exact times, so LoopingCall's own grid arithmetic has no float residue
    clock = task.Clock()
    monitor = LagMonitor(0.25, clock=FakeClock(100.0))
    timer = TwistedLagTimer(monitor, clock).start()
    clock.advance(0.25)
    assert (monitor.ticks, monitor._sum) == (1, 0.0)
    clock.advance(1.0)  # the reactor was busy: the tick due at 0.5 runs at 1.25
    assert (monitor.ticks, monitor._sum) == (2, 0.75)
    assert timer.missed == 3  # withCount counted 4 intervals since 0.25: 3 ticks never ran
    clock.advance(0.25)  # back on LoopingCall's grid
    assert (monitor.ticks, monitor._sum) == (3, 0.75)


def test_the_asyncio_timer_sees_a_blocking_callback() -> None:
    async def run() -> LagMonitor:
        monitor = LagMonitor(0.02)
        timer = AsyncioLagTimer(monitor, asyncio.get_running_loop()).start()
        await asyncio.sleep(0.01)
        time.sleep(0.3)  # the blocking call on the loop
        deadline = time.monotonic() + 5
        while monitor.ticks < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        timer.stop()
        return monitor

    monitor = asyncio.run(run())
    assert lag_over(samples_of(monitor), "0.25") == 1


@pytest.fixture
def server() -> Iterator[ControlServer]:
    def hello(environ: dict, start_response) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    metrics = ControlServer(
        new_registry(LagMonitor()), "127.0.0.1", 0, max_connections=2, routes={"/hello": hello}
    )
    metrics.start()
    yield metrics
    metrics.close()


def test_the_metrics_port_serves_metrics_a_route_added_and_404_else(server: ControlServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    assert "process_cpu_seconds_total" in {name for name, _ in scrape(f"{base}/metrics")}
    with urllib.request.urlopen(f"{base}/hello", timeout=2) as response:
        assert response.read() == b"hello"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{base}/faults", timeout=2)
    assert missing.value.code == 404
    missing.value.close()
