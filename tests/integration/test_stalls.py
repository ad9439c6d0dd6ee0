"""Where each loop blocked, against the running stack, through the front only.

Needs the running stack (`make up`, containers or local processes; `make up` made the
token). A block fault of each kind is set with ``PUT /api/faults/{service}`` on the front;
``GET /api/stalls`` (the front gathering every service's ``GET /stalls``) must show ONE
new stall of 250-450 ms within 2 s whose stack names the kind's function; a stall in
progress is answered while it lasts; ten idle seconds add no stall; ``/ws/live`` carries
them; and "blocked now" (``/api/live``'s ``blocked_ms``) reads about the block at any
phase of a block every second. Each test clears what it set, whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from services.common.catalogue import NAMES, service
from tests.integration.test_runtime_faults import call
from tests.stack import ROOT, Stack, compose_env, stack_mode

BLOCK_MS = 300
KINDS = [(name, kind) for name in NAMES for kind in service(name).block_kinds]


@pytest.fixture
def block(stack: Stack) -> Iterator[Callable[..., dict]]:
    """``block(service, **spec)`` through the front; every service cleared afterwards."""
    status, listed = call(stack, "GET", "/api/faults")
    assert status == 200
    if not listed["enabled"]:
        pytest.skip("the front's fault API is off here (POLYLOOP_BIND beyond loopback)")
    touched: set[str] = set()

    def set_block(name: str, **spec: Any) -> dict:
        touched.add(name)
        status, body = call(stack, "PUT", f"/api/faults/{name}", {"duration_s": 30, **spec})
        assert status == 200, body
        return body

    try:
        yield set_block
    finally:
        for name in touched:
            call(stack, "DELETE", f"/api/faults/{name}")


def stalls(stack: Stack) -> dict[str, Any]:
    """Every service's ``GET /stalls``, through the front; each must have answered."""
    status, body = call(stack, "GET", "/api/stalls")
    assert status == 200, body
    down = {name: s for name, s in body["services"].items() if "stalls_total" not in s}
    assert not down, f"the front could not read their stalls: {down}"
    return body["services"]


def new_stalls(stack: Stack, name: str, before: int, within: float) -> dict[str, Any]:
    """The service's stalls once its counter passed ``before`` (polled until ``within``)."""
    deadline = time.monotonic() + within
    while True:
        mine = stalls(stack)[name]
        if mine["stalls_total"] > before:
            return mine
        assert time.monotonic() < deadline, f"no new stall of {name} within {within} s: {mine}"
        time.sleep(0.05)  # polling with a deadline


@pytest.mark.parametrize(("name", "kind"), KINDS)
def test_a_block_is_one_stall_whose_stack_names_its_kind(
    stack: Stack, block, name: str, kind: str
) -> None:
    before = stalls(stack)[name]["stalls_total"]
    block(name, block_ms=BLOCK_MS, block_kind=kind)
    mine = new_stalls(stack, name, before, within=2.0)
    assert mine["stalls_total"] == before + 1  # one stall, not one per sample
    event = mine["events"][-1]
    assert 250 <= event["duration_ms"] <= 450, event
    assert any(f"block_with_{kind}" in line for line in event["stack"]), event["stack"]
    assert mine["service"] == name


def test_a_stall_in_progress_is_answered_while_it_lasts(stack: Stack, block) -> None:
    for name in NAMES:
        if name == "web":
            continue  # the front's own /api/stalls waits for its loop: see the next test
        block(name, block_ms=1500)
        deadline = time.monotonic() + 1.4
        while True:
            now = stalls(stack)[name]["stalled_now"]
            if now is not None:
                break
            assert time.monotonic() < deadline, f"{name}: never seen stalled while blocked"
            time.sleep(0.02)
        assert now["stack"][-1].endswith("in block_with_sleep"), (name, now)
        assert now["since_ms"] >= 200


# polls a control port's GET /stalls until it shows a stall in progress; prints "ready"
# first, then that stall as one JSON line (or nothing, past its deadline)
POLL_STALLED = """
import json, sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
print("ready", flush=True)
while time.monotonic() < deadline:
    with urllib.request.urlopen(sys.argv[1], timeout=1) as response:
        now = json.load(response)["stalled_now"]
    if now is not None:
        print(json.dumps(now), flush=True)
        break
    time.sleep(0.02)
"""


def test_the_front_s_own_control_port_answers_while_its_loop_is_blocked(
    stack: Stack, block
) -> None:
    """Read from where the control port is reachable: this host in local mode, a
    container on the compose network otherwise (it is never published)."""
    web = service("web")
    if stack_mode() == "local":
        port = int(os.environ.get(web.metrics_port_variable) or web.metrics_port)
        reader = [sys.executable, "-c", POLL_STALLED, f"http://{stack.host}:{port}/stalls"]
    else:
        url = f"http://web:{web.metrics_port}/stalls"
        reader = ["docker", "compose", "exec", "-T", "resolver", "python", "-c", POLL_STALLED, url]
    with subprocess.Popen(
        [*reader, "10"], stdout=subprocess.PIPE, text=True, env=compose_env(), cwd=ROOT
    ) as poller:
        assert poller.stdout is not None
        assert poller.stdout.readline().strip() == "ready"
        block("web", block_ms=1500)
        line = poller.stdout.readline()
        poller.wait(timeout=15)
    assert line, "the front's control port never showed its stall while its loop was blocked"
    assert json.loads(line)["stack"][-1].endswith("in block_with_sleep")


def settled(stack: Stack) -> dict[str, int]:
    """Every service's stall count once none is stalled and the counts held still over three
    reads in a row (1 s): a block an earlier test set may still be running (a blocking call
    cannot be cut short), and a stall is counted when it ends."""
    deadline, previous, quiet = time.monotonic() + 15, None, 0
    while True:
        current = stalls(stack)
        counts = {name: s["stalls_total"] for name, s in current.items()}
        still = counts == previous and all(s["stalled_now"] is None for s in current.values())
        quiet = quiet + 1 if still else 0
        if quiet == 2:
            return counts
        assert time.monotonic() < deadline, f"the stack never settled: {current}"
        previous = counts
        time.sleep(0.5)  # reads a threshold apart, at least


def test_ten_idle_seconds_add_no_stall(stack: Stack) -> None:
    before = settled(stack)
    idle_until = time.monotonic() + 10
    while time.monotonic() < idle_until:
        time.sleep(1.0)  # the idle period itself, read once a second
        current = stalls(stack)
        now = {name: s["stalls_total"] for name, s in current.items()}
        # what stalled, and where: the events of every service whose count moved
        moved = {
            name: (current[name].get("events") or [])[before[name] - now[name] :]
            for name in now
            if now[name] != before[name]
        }
        assert now == before, moved


def test_the_live_feed_carries_the_stall(stack: Stack, block) -> None:
    before = stalls(stack)["resolver"]["stalls_total"]

    async def watch() -> dict[str, Any]:
        url = stack.web_url.replace("http", "ws", 1) + "/ws/live"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            block("resolver", block_ms=BLOCK_MS, block_kind="sync_dns")
            deadline = time.monotonic() + 4
            while True:
                message = await asyncio.wait_for(ws.receive_json(), 5)
                live = message["services"]["resolver"]["stalls"]
                if live is not None and live["stalls_total"] > before:
                    return live
                assert time.monotonic() < deadline, message["services"]["resolver"]

    live = asyncio.run(watch())
    event = live["events"][-1]
    assert 250 <= event["duration_ms"] <= 450
    assert "block_with_sync_dns" in " ".join(event["stack"])
    assert event["frames"] >= len(event["stack"])


@pytest.mark.parametrize("name", NAMES)
def test_blocked_now_reads_the_block_at_any_phase(stack: Stack, block, name: str) -> None:
    block(name, block_ms=500, block_every_second=True)
    deadline = time.monotonic() + 3
    while call(stack, "GET", "/api/live")[1]["services"][name]["blocked_ms"] < 400:
        assert time.monotonic() < deadline, f"{name}: blocked now never showed the block"
        time.sleep(0.1)  # polling the front's once-a-second picture with a deadline
    seen = []
    for _ in range(5):
        time.sleep(random.uniform(0.0, 1.0))  # the read's phase in the block's second
        _, live = call(stack, "GET", "/api/live")
        seen.append(live["services"][name]["blocked_ms"])
    assert all(400 <= ms <= 650 for ms in seen), (name, seen)
