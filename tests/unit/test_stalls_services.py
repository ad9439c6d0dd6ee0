"""Where each loop blocked, in-process: tcp-echo and dns (Twisted reactors), udp-echo and the
front (asyncio loops), each run by a thread of the test with its control port, as its
``__main__`` starts it. A fault blocks the loop (``PUT /faults``, each ``block_kind``); the
test reads ``GET /stalls`` from outside meanwhile and after:

- a 300 ms block of each kind is ONE event of 250-450 ms within 2 s, whose stack names the
  kind's function (``block_with_sleep``, ``block_with_cpu``);
- ``/stalls`` answers while the loop is blocked, with the culprit in ``stalled_now``;
- 10 s of idle loops record no stall;
- "every second" is one second start to start, and "blocked max" reads about the block at
  any phase of the read (500 ms every second: 400-600 ms at 10 random phases);
- many short stalls (a 10 ms threshold): the ring keeps its bound and /metrics its size
  (a thousand of them, simulated, in tests/unit/test_stalls.py).
(The gevent resolver, with ``sync_dns``: tests/gevent/test_resolver_stalls.py.)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
import urllib.request
from collections.abc import Iterator

import pytest
from twisted.internet import threads

from services.common import catalogue
from services.common.control import ControlSettings
from services.common.faults import FaultSpec
from services.tcp_echo.config import TcpEchoConfig
from services.tcp_echo.protocol import Echo, EchoFactory
from services.udp_echo.config import UdpEchoConfig
from services.udp_echo.protocol import ServerUdpEchoProtocol
from services.web.config import WebConfig
from services.web.keys import FAULTS
from tests.scrape import scrape, value
from tests.unit.test_faults_services import (  # noqa: F401 - fixtures
    CONTROL,
    TOKEN,
    Running,
    dns_server,
    tcp_echo,
    udp_echo,
)
from tests.unit.test_loop_lag_services import (
    front_in_a_thread,
    loop_in_a_thread,
    reactor_in_a_thread,
)
from tests.unit.watched import start_metrics

BLOCK_MS = 300
KINDS = ("sleep", "cpu")


def stalls(running: Running, timeout: float = 2.0) -> dict:
    url = f"http://127.0.0.1:{running.metrics_port}/stalls"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.headers["Content-Type"] == "application/json"
        return json.load(response)


@pytest.fixture
def front() -> Iterator[Running]:
    """The front in-process, with its control port (WEB_METRICS_PORT=0)."""
    # its backends on ports nothing listens on: only its own loop matters here
    config = WebConfig(metrics_port=0, metrics=CONTROL)
    with front_in_a_thread(config) as (_, app, port, control_port):
        yield Running(port, control_port, app[FAULTS])


SERVICES = ("tcp_echo", "udp_echo", "dns_server", "front")


def ticking(running: Running) -> Running:
    """``running`` once its lag timer has ticked: a stall is timed from a first tick."""
    url = f"http://127.0.0.1:{running.metrics_port}/metrics"
    deadline = time.monotonic() + 5
    while value(scrape(url), "polyloop_event_loop_lag_seconds_count") < 1:
        assert time.monotonic() < deadline, "the lag timer never ticked"
        time.sleep(0.01)
    return running


@pytest.fixture(params=SERVICES)
def service(request: pytest.FixtureRequest) -> Running:
    return ticking(request.getfixturevalue(request.param))


def wait_for_events(running: Running, count: int, within: float) -> dict:
    deadline = time.monotonic() + within
    while True:
        answer = stalls(running)
        if len(answer["events"]) >= count:
            return answer
        assert time.monotonic() < deadline, f"{count} event(s) expected: {answer}"
        time.sleep(0.05)  # polling with a deadline


@pytest.mark.parametrize(
    ("fixture", "name"),
    [("tcp_echo", "tcp-echo"), ("udp_echo", "udp-echo"), ("dns_server", "dns"), ("front", "web")],
)
def test_each_service_takes_the_block_kinds_the_catalogue_gives_it(
    request: pytest.FixtureRequest, fixture: str, name: str
) -> None:
    # the front validates a fault with the catalogue's kinds, the service with its own
    running: Running = request.getfixturevalue(fixture)
    assert running.faults.kinds == catalogue.service(name).block_kinds


@pytest.mark.parametrize("kind", KINDS)
def test_a_block_is_one_event_whose_stack_names_its_kind(service: Running, kind: str) -> None:
    assert stalls(service)["events"] == []
    service.put(block_ms=BLOCK_MS, block_kind=kind)
    answer = wait_for_events(service, 1, within=2.0)
    [event] = answer["events"]
    assert 250 <= event["duration_ms"] <= 450, event
    assert any(f"in block_with_{kind}" in line for line in event["stack"]), event["stack"]
    assert any("in Faults._block_step" in line for line in event["stack"])
    assert event["stack"][-1].startswith("services/common/faults.py:")
    assert abs(event["at"] - time.time()) < 5
    assert answer["stalls_total"] == 1
    assert answer["threshold_ms"] == 200.0 and answer["watchdog"]["unsampled"] == 0
    samples = scrape(f"http://127.0.0.1:{service.metrics_port}/metrics")
    assert value(samples, "polyloop_event_loop_stalls_total") == 1
    assert value(samples, "polyloop_event_loop_stall_seconds_count") == 1
    assert value(samples, "polyloop_event_loop_stalled_seconds_total") == pytest.approx(
        event["duration_ms"] / 1000, abs=0.001
    )


def test_the_stall_endpoint_answers_while_the_loop_is_blocked(service: Running) -> None:
    service.put(block_ms=1500)
    deadline = time.monotonic() + 1.4
    while True:
        now = stalls(service, timeout=1.0)["stalled_now"]
        if now is not None:
            break
        assert time.monotonic() < deadline, "never answered with the stall in progress"
        time.sleep(0.02)
    assert now["since_ms"] >= 200
    assert now["stack"][-1].startswith("services/common/faults.py:")
    assert now["stack"][-1].endswith("in block_with_sleep")


def test_idle_loops_record_no_stall_in_ten_seconds(
    tcp_echo: Running,  # noqa: F811
    udp_echo: Running,  # noqa: F811
    dns_server: Running,  # noqa: F811
    front: Running,
) -> None:
    services = (tcp_echo, udp_echo, dns_server, front)
    idle_until = time.monotonic() + 10
    while time.monotonic() < idle_until:
        for running in services:
            answer = stalls(running)
            assert answer["events"] == [] and answer["stalls_total"] == 0, answer
        time.sleep(1.0)  # the idle period itself, read once a second


def blocked_max_at_random_phases(running: Running, reads: int = 10) -> list[float]:
    url = f"http://127.0.0.1:{running.metrics_port}/metrics"
    seen = []
    for _ in range(reads):
        time.sleep(random.uniform(0.0, 1.0))  # the read's phase in the block's second
        seen.append(value(scrape(url), "polyloop_event_loop_blocked_max_seconds"))
    return seen


@pytest.mark.parametrize("loop", ["tcp_echo", "udp_echo"])  # the reactor, asyncio's loop
def test_every_second_reads_the_block_at_any_phase(
    request: pytest.FixtureRequest, loop: str
) -> None:
    running: Running = ticking(request.getfixturevalue(loop))
    running.put(block_ms=500, block_every_second=True, duration_s=30)
    wait_for_events(running, 1, within=2.0)
    seen = blocked_max_at_random_phases(running)
    assert all(0.4 <= s <= 0.6 for s in seen), seen
    events = wait_for_events(running, 5, within=6.0)["events"]
    starts = [event["at"] for event in events]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # one second start to start, as on every loop (not the block + 1 s)
    assert len(gaps) >= 4 and all(0.9 <= gap <= 1.1 for gap in gaps), gaps


# short stalls on a real loop: 30 ms blocks against a 10 ms threshold and a 5 ms lag timer
SHORT = ControlSettings(
    admin_token=TOKEN, lag_interval=0.005, stall_threshold=0.01, stall_events=10
)
MANY = 100


def block_many_times(running: Running) -> tuple[str, str]:
    """MANY short blocks, one after the other; /metrics after the first ten and at the end."""
    url = f"http://127.0.0.1:{running.metrics_port}/metrics"
    texts = []
    for i in range(MANY):
        running.faults.apply(FaultSpec(block_ms=30))
        deadline = time.monotonic() + 5
        while stalls(running)["stalls_total"] < i + 1:
            assert time.monotonic() < deadline, f"stall {i + 1} never recorded"
            time.sleep(0.005)  # polling with a deadline
        if i + 1 in (10, MANY):
            with urllib.request.urlopen(url, timeout=2) as response:
                texts.append(response.read().decode())
    return texts[0], texts[1]


def assert_bounded(running: Running, first: str, last: str) -> None:
    answer = stalls(running)
    assert answer["stalls_total"] >= MANY  # a loaded host may add its own
    assert len(answer["events"]) == 10  # POLYLOOP_STALL_EVENTS
    assert first.count("\n") == last.count("\n")  # no series per stall, no stack label
    assert "block_with" not in last


def test_many_short_stalls_keep_the_ring_and_metrics_bounded_on_the_reactor() -> None:
    with reactor_in_a_thread() as reactor:

        def setup() -> Running:
            factory = EchoFactory.forProtocol(Echo, clock=reactor)
            started = start_metrics(
                "tcp-echo", reactor, factory, TcpEchoConfig(metrics_port=0, metrics=SHORT)
            )
            return Running(0, started.server.port, factory.faults)

        running = ticking(threads.blockingCallFromThread(reactor, setup))
        assert_bounded(running, *block_many_times(running))


def test_many_short_stalls_keep_the_ring_and_metrics_bounded_on_asyncio() -> None:
    with loop_in_a_thread() as loop:

        async def setup() -> Running:
            _, protocol = await loop.create_datagram_endpoint(
                ServerUdpEchoProtocol, local_addr=("127.0.0.1", 0)
            )
            config = UdpEchoConfig(metrics_port=0, metrics=SHORT)
            started = start_metrics("udp-echo", loop, protocol, config)
            return Running(0, started.server.port, protocol.faults)

        running = ticking(asyncio.run_coroutine_threadsafe(setup(), loop).result(10))
        assert_bounded(running, *block_many_times(running))
