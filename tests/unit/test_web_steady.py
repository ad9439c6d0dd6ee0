"""The front's steady client (services/web/steady.py) against the in-process fakes: a few
calls a second to every service over its own protocol, each marked as the stack's own,
each bounded; its round trips in /api/live; off with WEB_STEADY=0."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from services.common import probes
from services.common.catalogue import NAMES
from services.web.app import create_app
from services.web.steady import STEADY, Call, summary
from tests.unit.web_fakes import FakeBackends, MakeClient

DEADLINE = 10.0


async def live_until(client: TestClient, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll GET /api/live until `done(services)`, within DEADLINE."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        response = await client.get("/api/live")
        services = (await response.json())["services"]
        if done(services):
            return services
        assert loop.time() < deadline, services
        await asyncio.sleep(0.05)


async def test_every_service_gets_steady_calls_over_its_own_protocol(
    served_front: MakeClient, backends: FakeBackends
) -> None:
    client = await served_front()
    services = await live_until(
        client,
        lambda s: (
            all(s[name]["steady"]["calls"] >= 1 for name in NAMES)
            # the front scrapes itself once a second: until it has seen a ping
            and s["web"]["metrics"].get("polyloop_probes_total", 0) >= 1
        ),
    )
    for name in NAMES:
        steady = services[name]["steady"]
        assert steady["errors"] == 0, (name, steady)
        assert 0 < steady["p50_ms"] <= steady["max_ms"] < 500, (name, steady)
    # each marked as the stack's own, so no service counts it as served
    assert backends.tcp.first_chunks[0].startswith(probes.MARK)
    assert backends.tcp.accepted == 1  # one connection of its own, kept
    assert backends.udp.last.startswith(probes.MARK)
    assert probes.NAME + "." in backends.dns.questions
    assert {"names": [probes.NAME], "timeout": 0.5, "mode": "concurrent"} in (
        backends.resolve_requests
    )
    # the front's own ping: counted as a probe, not as what the front served
    assert services["web"]["metrics"]["polyloop_requests_total"] == 0
    assert services["web"]["rate"] == 0.0


async def test_a_silent_service_is_an_error_at_exactly_the_timeout(
    served_front: MakeClient, backends: FakeBackends
) -> None:
    backends.tcp.mute = True
    client = await served_front()
    services = await live_until(client, lambda s: s["tcp-echo"]["steady"]["errors"] >= 1)
    steady = services["tcp-echo"]["steady"]
    assert steady["max_ms"] == 500.0  # WEB_STEADY_TIMEOUT, counted as spent, never more
    assert steady["last_error"] == "no answer within 0.5 s"
    backends.tcp.mute = False  # it answers again: the client reconnects and recovers
    await live_until(
        client,
        lambda s: s["tcp-echo"]["steady"]["errors"] == 0 and s["tcp-echo"]["steady"]["calls"] >= 1,
    )
    assert backends.tcp.accepted >= 2


async def test_off_with_web_steady_0(aiohttp_client, backends: FakeBackends) -> None:
    app = create_app(backends.config(steady=False), steady=True)
    client = await aiohttp_client(app)
    assert STEADY not in app
    assert "steady-client" not in {thread.name for thread in threading.enumerate()}
    services = (await (await client.get("/api/live")).json())["services"]
    for name in NAMES:
        assert services[name]["steady"] == summary([]), name
    assert (await (await client.get("/api/stack")).json())["steady"]["enabled"] is False
    assert backends.tcp.accepted == 0
    assert backends.udp.received == 0


def test_the_summary_of_a_second() -> None:
    calls = [
        Call(0.0, 0.001, 1.0, None),
        Call(0.1, 0.6, 500.0, "no answer within 0.5 s"),
        Call(0.2, 0.203, 3.0, None),
        Call(0.3, 0.31, 10.0, "connection refused"),
    ]
    assert summary(calls, waiting_since=0.5, now=0.75) == {
        "p50_ms": 6.5,
        "max_ms": 500.0,
        "calls": 4,
        "errors": 2,
        "last_error": "no answer within 0.5 s",  # the one that ended last
        "in_flight_ms": 250.0,
    }
    assert summary([]) == {
        "p50_ms": None,
        "max_ms": None,
        "calls": 0,
        "errors": 0,
        "last_error": None,
        "in_flight_ms": None,
    }
