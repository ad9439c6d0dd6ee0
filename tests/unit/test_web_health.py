"""check_backends: one round trip per backend, concurrently, each bounded by its timeout;
and the healthcheck command against a real in-process front."""

from __future__ import annotations

import asyncio
import socket
import time

from services.web.backends import Backend
from services.web.health import check_backends
from services.web.healthcheck import check as healthcheck
from services.web.keys import STATS
from tests.sockets import closed_port
from tests.unit.web_fakes import FakeBackends, MakeClient


async def test_all_up(front: MakeClient) -> None:
    client = await front()
    checks = await check_backends(client.app)
    assert list(checks) == ["tcp-echo", "udp-echo", "resolver", "dns"]
    assert all(check["state"] == "up" for check in checks.values())


async def test_silent_backends_are_checked_concurrently(
    front: MakeClient, backends: FakeBackends
) -> None:
    backends.tcp.mute = True
    backends.udp.drop = 100
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_dns:
        silent_dns.bind(("127.0.0.1", 0))
        client = await front(health_timeout=0.5, dns_port=silent_dns.getsockname()[1])
        start = time.monotonic()
        checks = await check_backends(client.app)
        elapsed = time.monotonic() - start
    assert {name: c["state"] for name, c in checks.items()} == {
        "tcp-echo": "down",
        "udp-echo": "down",
        "resolver": "up",
        "dns": "down",
    }
    assert "within 0.5 s" in checks["tcp-echo"]["error"]
    # three probes of 0.5 s each, run one after the other, would take 1.5 s
    assert elapsed < 1.4


async def test_every_backend_down(front: MakeClient) -> None:
    client = await front(
        tcp_echo_port=closed_port(),
        udp_echo_port=closed_port(socket.SOCK_DGRAM),
        resolver_port=closed_port(),
        dns_port=closed_port(socket.SOCK_DGRAM),
        health_timeout=0.5,
    )
    checks = await check_backends(client.app)
    assert all(check["state"] == "down" for check in checks.values())
    assert all(isinstance(check["error"], str) for check in checks.values())


async def test_healthcheck_command_sees_a_serving_front(front: MakeClient) -> None:
    client = await front()
    assert await asyncio.to_thread(healthcheck, client.port) is None
    assert await asyncio.to_thread(healthcheck, closed_port()) is not None


async def test_readiness_probes_are_not_counted_as_traffic(front: MakeClient) -> None:
    # at idle the dashboard showed ~0.5 req/s per backend: its own probes
    client = await front()
    for _ in range(3):
        assert (await client.get("/readyz")).status == 200
    snapshot = client.app[STATS].snapshot()
    assert {name: s["total"] for name, s in snapshot.items()} == dict.fromkeys(Backend, 0)
    assert all(s["rps"] == 0 for s in snapshot.values())
    metrics = await (await client.get("/metrics")).text()
    for backend in Backend:
        assert (
            f'polyloop_web_backend_probes_total{{backend="{backend}",outcome="ok"}} 3.0' in metrics
        )
        assert (
            f'polyloop_web_backend_calls_total{{backend="{backend}",outcome="ok"}} 0.0' in metrics
        )
    # real traffic still counts
    assert (await client.post("/api/echo/tcp", json={"message": "x"})).status == 200
    assert client.app[STATS].snapshot()[Backend.TCP_ECHO]["total"] == 1
