"""The steady client, honest SERVED figures and the one-click experiments, on the running
stack (`make up`, containers or local processes; the front's fault API on, as `make up`
leaves it on loopback).

- idle: with the dashboard's feed open (so the front probes every backend every 2 s) and
  /readyz asked meanwhile, every service serves 0.0 requests/s to others, every second
  for 10 s: probes, the steady client and the healthchecks are never SERVED;
- each of the five loops, ``block`` then ``latency``, each run shortened to a few seconds
  (``duration_s``): during the block the steady client's worst round trip on that service
  is >= 400 ms and < 400 ms on every other one; during the latency its median is >= 400 ms
  and the loop's lag p99 stays far below it; each verdict carries the run's own figures;
  after the end, the fault is gone and the steady client is served fast again.

Each test stops whatever experiment it started, whatever happens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from services.common.catalogue import NAMES
from tests.stack import Stack, call

RUN_SECONDS = 4  # under the fault: four blocks of 500 ms, a dozen slow answers
STALL_MS = 400  # what a 500 ms block or latency shows at least, what an idle loop never does
DEADLINE = 60.0  # for a run to end: its baseline, its seconds, and a margin


def live(stack: Stack) -> dict[str, Any]:
    status, body = call(stack, "GET", "/api/live")
    assert status == 200, body
    return body["services"]


@pytest.fixture
def experiments(stack: Stack) -> Iterator[None]:
    """The fault API is on, no experiment runs; whatever runs at the end is stopped."""
    status, listed = call(stack, "GET", "/api/experiments")
    if status == 404:
        pytest.fail("this front has no /api/experiments: is the stack running this code?")
    if not listed["enabled"]:
        pytest.skip("the front's fault API is off here (POLYLOOP_BIND beyond loopback)")
    call(stack, "DELETE", "/api/experiments/current")
    try:
        yield
    finally:
        call(stack, "DELETE", "/api/experiments/current")


def run(stack: Stack, experiment: str, service: str) -> dict[str, Any]:
    """Start `experiment` on `service`, wait for its end; the run as it ended."""
    body = {"experiment": experiment, "service": service, "duration_s": RUN_SECONDS}
    status, started = call(stack, "POST", "/api/experiments", body)
    assert status == 202, started
    deadline = time.monotonic() + DEADLINE
    while True:
        status, current = call(stack, "GET", "/api/experiments/current")
        assert status == 200, current
        assert current["run"] == started["run"]
        if current["state"] != "running":
            assert current["state"] == "done", current
            return current
        assert time.monotonic() < deadline, current
        time.sleep(0.5)


def assert_recovered(stack: Stack, service: str) -> None:
    """The fault is gone, and the steady client's calls of the last second are fast."""
    status, faults = call(stack, "GET", "/api/faults")
    assert status == 200
    assert faults["services"][service]["active"] is False, faults
    deadline = time.monotonic() + 10.0
    while True:
        steady = live(stack)[service]["steady"]
        if steady["calls"] and steady["errors"] == 0 and steady["max_ms"] < STALL_MS:
            return
        assert time.monotonic() < deadline, (service, steady)
        time.sleep(0.5)


async def test_an_idle_stack_serves_nobody(stack: Stack) -> None:
    """Ten seconds of the dashboard's feed: every service's rate is 0.0 in every message,
    while the front probes its backends (the feed's checks, /readyz) and its steady client
    calls each of them a few times a second."""
    # whatever an earlier test sent has left the services first: three quiet reads in a
    # row (a flood's datagrams may still wait in a socket's buffer after a quiet second)
    deadline, quiet = time.monotonic() + 30.0, 0
    while quiet < 3:
        current = live(stack)
        quiet = 0 if any(service["rate"] for service in current.values()) else quiet + 1
        assert time.monotonic() < deadline, current
        await asyncio.sleep(1.0)
    messages: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{stack.web_url.replace('http', 'ws', 1)}/ws/live") as ws,
    ):
        deadline = time.monotonic() + 20.0
        while len(messages) < 10:
            message = await asyncio.wait_for(ws.receive_json(), deadline - time.monotonic())
            messages.append(message["services"])
            async with session.get(f"{stack.web_url}/readyz") as ready:
                assert ready.status == 200
    rates = [{name: services[name]["rate"] for name in NAMES} for services in messages]
    assert rates == [dict.fromkeys(NAMES, 0.0)] * 10
    # ...while the stack's own traffic flowed all along, counted apart
    for services in messages:
        assert all(services[name]["steady"]["calls"] for name in NAMES), services
    probes = {name: live(stack)[name]["metrics"].get("polyloop_probes_total") for name in NAMES}
    assert all(probes.values()), probes


@pytest.mark.parametrize("service", NAMES)
def test_a_block_stalls_that_loop_only(stack: Stack, experiments: None, service: str) -> None:
    ended = run(stack, "block", service)
    during = ended["figures"]["during"]["services"]
    worst = {name: figures["steady_max_ms"] for name, figures in during.items()}
    assert worst[service] >= STALL_MS, worst
    assert all(ms < STALL_MS for name, ms in worst.items() if name != service), worst
    verdict = ended["verdict"]
    assert f"{service} blocked 500 ms every second" in verdict
    assert f"worst round trip on {service} was {worst[service]:.0f} ms" in verdict, verdict
    assert "nobody else's" in verdict, verdict
    assert_recovered(stack, service)


@pytest.mark.parametrize("service", NAMES)
def test_latency_slows_the_answers_not_the_loop(
    stack: Stack, experiments: None, service: str
) -> None:
    ended = run(stack, "latency", service)
    figures = ended["figures"]["during"]["services"][service]
    assert figures["steady_p50_ms"] >= STALL_MS, figures
    assert figures["lag_p99_ms"] is not None and figures["lag_p99_ms"] < STALL_MS / 2, figures
    verdict = ended["verdict"]
    assert f"median round trip on {service} was {figures['steady_p50_ms']:.0f} ms" in verdict
    # the words follow the run's figures: "far below" only when the lag was under a fifth of
    # the 500 ms (a loaded machine's lag may not be)
    far_below = "far below the 500 ms each answer waited" in verdict
    assert far_below == (figures["lag_p99_ms"] < STALL_MS / 5), verdict
    assert_recovered(stack, service)
