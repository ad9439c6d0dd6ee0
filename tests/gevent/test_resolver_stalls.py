"""Where the gevent hub blocked, in-process: the resolver with its control port, as its
``__main__`` starts it (the watchdog and the port on real OS threads).

A fault blocks the hub (``PUT /faults``, each ``block_kind``, ``sync_dns`` included: a zone
lookup over the un-patched socket module, answered by the real dns service after the
block's length); ``GET /stalls`` is read from outside meanwhile (a real OS thread) and
after:

- a 300 ms block of each kind is ONE event of 250-450 ms within 2 s, whose stack names
  the kind's function;
- ``/stalls`` answers while the hub is blocked, with the culprit in ``stalled_now``;
- 10 s of idle hub record no stall;
- "every second" is one second start to start, and "blocked max" reads about the block at
  any phase of the read (500 ms every second: 400-600 ms at 10 random phases);
- many short stalls (a 10 ms threshold): the ring keeps its bound and /metrics its size.
Run: .venv/bin/pytest -c tests/gevent/pytest.ini tests/gevent
"""

from __future__ import annotations

import itertools
import json
import random
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import pytest
from gevent import monkey

from services.common.catalogue import service
from services.common.faults import FaultSpec
from services.common.loops.gevent import start_os_thread
from services.resolver.api import ResolverApp
from services.resolver.config import ResolverConfig
from services.resolver.resolve import Resolver
from tests.gevent.test_resolver_faults import TOKEN, put
from tests.gevent.test_resolver_lag import watch_resolver
from tests.scrape import parse, value

BLOCK_MS = 300
real_sleep = monkey.get_original("time", "sleep")


@contextmanager
def watched(resolver: Resolver, app: ResolverApp, **env: str) -> Iterator[int]:
    """The resolver's control port (its config from ``env``), once its lag greenlet ticked."""
    gevent.get_hub().resolver  # noqa: B018 - made here: another thread's hub cannot import it
    base = {"POLYLOOP_ADMIN_TOKEN": TOKEN, "RESOLVER_METRICS_PORT": "0"}
    started = watch_resolver(app, resolver, ResolverConfig.from_env({**base, **env}))
    assert started is not None and started.server is not None
    deadline = time.monotonic() + 5
    while started.monitor.ticks < 1:
        assert time.monotonic() < deadline, "the lag greenlet never ticked"
        gevent.sleep(0.01)
    try:
        yield started.server.port
    finally:
        resolver.faults.clear()
        started.stop()


@pytest.fixture
def control_port(resolver: Resolver, app: ResolverApp) -> Iterator[int]:
    with watched(resolver, app) as port:
        yield port


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.read()


def from_a_real_thread(work: Callable[[], Any], within: float = 20.0) -> Any:
    """``work()`` on a new OS thread (its own hub), the main greenlet yielding to the hub
    meanwhile (blocked or not, as the test's faults make it)."""
    box: list = []

    def run() -> None:
        try:
            box.append(work())
        except Exception as exc:  # noqa: BLE001 - raised again in the test's greenlet
            box.append(exc)

    start_os_thread(run)
    deadline = time.monotonic() + within
    while not box:
        assert time.monotonic() < deadline, "the test's thread never finished"
        gevent.sleep(0.01)
    if isinstance(box[0], Exception):
        raise box[0]
    return box[0]


def stalls(port: int) -> dict:
    return json.loads(get(f"http://127.0.0.1:{port}/stalls"))


def wait_for_events(port: int, count: int, within: float) -> dict:
    deadline = time.monotonic() + within
    while True:
        answer = stalls(port)
        if len(answer["events"]) >= count:
            return answer
        assert time.monotonic() < deadline, f"{count} event(s) expected: {answer}"
        gevent.sleep(0.05)  # the hub runs (and blocks) meanwhile


@pytest.mark.parametrize("kind", ["sleep", "cpu", "sync_dns"])
def test_a_block_is_one_event_whose_stack_names_its_kind(control_port: int, kind: str) -> None:
    assert stalls(control_port)["events"] == []
    put(control_port, block_ms=BLOCK_MS, block_kind=kind)
    answer = wait_for_events(control_port, 1, within=2.0)
    [event] = answer["events"]
    assert 250 <= event["duration_ms"] <= 450, event
    assert any(f"block_with_{kind}" in line for line in event["stack"]), event["stack"]
    assert event["stack"][0].startswith("gevent/")  # the hub's run, which ran the callback
    if kind == "sync_dns":
        assert "in Resolver.block_with_sync_dns" in event["stack"][-2]
        assert event["stack"][-1].startswith("services/resolver/backends.py:")
    assert answer["service"] == "resolver" and answer["loop"] == "gevent"


def test_sync_dns_is_the_resolver_s_own_kind(control_port: int, resolver: Resolver) -> None:
    assert resolver.faults.kinds == service("resolver").block_kinds  # what the front allows
    assert put(control_port, block_ms=1, block_kind="sync_dns")["faults"]["block"] == {
        "ms": 1,
        "every_second": False,
        "kind": "sync_dns",
    }


def test_the_stall_endpoint_answers_while_the_hub_is_blocked(control_port: int) -> None:
    def watch() -> dict:
        # set from here: the PUT's answer reaches the hub's greenlets only after the block
        put(control_port, block_ms=1500)
        deadline = time.monotonic() + 1.4
        while True:
            now = stalls(control_port)["stalled_now"]
            if now is not None or time.monotonic() > deadline:
                return now
            real_sleep(0.02)

    now = from_a_real_thread(watch)
    assert now is not None, "never answered with the stall in progress"
    assert now["since_ms"] >= 200
    assert now["stack"][-1].endswith("in block_with_sleep")


def test_an_idle_hub_records_no_stall_in_ten_seconds(control_port: int) -> None:
    idle_until = time.monotonic() + 10
    while time.monotonic() < idle_until:
        answer = stalls(control_port)
        assert answer["events"] == [] and answer["stalls_total"] == 0, answer
        gevent.sleep(1.0)  # the idle period itself, read once a second


def test_every_second_reads_the_block_at_any_phase(control_port: int) -> None:
    put(control_port, block_ms=500, block_every_second=True, duration_s=30)
    wait_for_events(control_port, 1, within=2.0)
    url = f"http://127.0.0.1:{control_port}/metrics"

    def read_at_random_phases() -> list[float]:
        seen = []
        for _ in range(10):
            real_sleep(random.uniform(0.0, 1.0))  # the read's phase in the block's second
            seen.append(value(parse(get(url).decode()), "polyloop_event_loop_blocked_max_seconds"))
        return seen

    seen = from_a_real_thread(read_at_random_phases)
    assert all(0.4 <= s <= 0.6 for s in seen), seen
    starts = [event["at"] for event in wait_for_events(control_port, 5, within=6.0)["events"]]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # one second start to start, as on every loop: the hub's cached clock is not trusted
    assert len(gaps) >= 4 and all(0.9 <= gap <= 1.1 for gap in gaps), gaps


def test_many_short_stalls_keep_the_ring_and_metrics_bounded(
    resolver: Resolver, app: ResolverApp
) -> None:
    # 30 ms blocks against a 10 ms threshold and a 5 ms lag timer, a ring of ten
    short = {
        "POLYLOOP_LAG_INTERVAL": "0.005",
        "POLYLOOP_STALL_THRESHOLD": "0.01",
        "POLYLOOP_STALL_EVENTS": "10",
    }
    with watched(resolver, app, **short) as port:
        url = f"http://127.0.0.1:{port}/metrics"
        texts = []
        for i in range(100):
            resolver.faults.apply(FaultSpec(block_ms=30))
            wait_for_stalls_total(port, i + 1, within=5.0)
            if i + 1 in (10, 100):
                texts.append(get(url).decode())
        answer = stalls(port)
    assert answer["stalls_total"] >= 100  # a loaded host may add its own
    assert len(answer["events"]) == 10
    first, last = texts
    assert first.count("\n") == last.count("\n")  # no series per stall, no stack label
    assert "block_with" not in last


def wait_for_stalls_total(port: int, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while stalls(port)["stalls_total"] < count:
        assert time.monotonic() < deadline, f"stall {count} never recorded"
        gevent.sleep(0.005)  # the hub runs (and blocks) meanwhile
