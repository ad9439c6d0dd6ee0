"""The backend clients' pooling and retries, proven against real loopback servers:
connections are reused, broken ones rebuilt, lost datagrams retried, late ones ignored."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket

import pytest
from aiohttp import web

from services.web.app import create_app
from services.web.backends.tcp import TcpEchoPool
from services.web.backends.udp import UdpEchoPool
from tests.sockets import closed_port
from tests.unit.web_fakes import HOST, FakeBackends, MakeClient


async def test_100_api_echoes_reuse_a_few_tcp_connections(
    front: MakeClient, backends: FakeBackends
) -> None:
    client = await front(tcp_pool_size=8)

    async def echo(i: int) -> None:
        response = await client.post("/api/echo/tcp", json={"message": f"m{i}"})
        assert response.status == 200
        assert (await response.json())["echo"] == f"m{i}"

    for batch in range(4):  # sequential batches, concurrent within
        await asyncio.gather(*(echo(batch * 25 + i) for i in range(25)))
    assert 1 <= backends.tcp.accepted <= 8


async def test_sequential_echoes_use_one_connection(backends: FakeBackends) -> None:
    pool = TcpEchoPool(HOST, backends.tcp.port, size=4)
    try:
        for i in range(50):
            assert await pool.echo(f"n{i}".encode()) == f"n{i}".encode()
    finally:
        await pool.close()
    assert backends.tcp.accepted == 1
    assert pool.opened == 1


async def test_a_connection_closed_by_the_server_is_rebuilt(backends: FakeBackends) -> None:
    pool = TcpEchoPool(HOST, backends.tcp.port, size=2)
    try:
        assert await pool.echo(b"one") == b"one"
        backends.tcp.drop_connections()  # as tcp-echo's idle timeout would
        assert await pool.echo(b"two") == b"two"
    finally:
        await pool.close()
    assert backends.tcp.accepted == 2


async def test_an_interrupted_exchange_is_not_reused(backends: FakeBackends) -> None:
    pool = TcpEchoPool(HOST, backends.tcp.port, size=1)
    backends.tcp.mute = True
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pool.echo(b"lost"), 0.2)
        backends.tcp.mute = False
        # had the half-done connection been reused, "lost" would come back here
        assert await pool.echo(b"next") == b"next"
    finally:
        await pool.close()
    assert backends.tcp.accepted == 2


async def test_an_echo_that_differs_is_a_502_and_its_connection_is_not_reused(
    front: MakeClient, backends: FakeBackends
) -> None:
    client = await front(tcp_pool_size=1)
    assert (await client.post("/api/echo/tcp", json={"message": "fine"})).status == 200
    backends.tcp.garble = True
    response = await client.post("/api/echo/tcp", json={"message": "hello"})
    assert response.status == 502
    problem = await response.json()
    assert problem["type"] == "urn:polyloop:problem:bad-backend-reply"
    assert problem["detail"] == "tcp-echo: the echo differs from the message sent"
    backends.tcp.garble = False
    assert (await client.post("/api/echo/tcp", json={"message": "again"})).status == 200
    assert backends.tcp.accepted == 2  # what else the garbling stream held: never read
    metrics = await (await client.get("/metrics")).text()
    assert 'polyloop_web_backend_errors_total{backend="tcp-echo",kind="bad_reply"} 1.0' in metrics


async def test_a_lost_datagram_is_sent_again(backends: FakeBackends) -> None:
    pool = UdpEchoPool(HOST, backends.udp.port, size=2, try_timeout=0.2, retries=2)
    backends.udp.drop = 2
    try:
        assert await pool.echo(b"again") == b"again"
    finally:
        await pool.close()
    assert backends.udp.received == 3


async def test_udp_gives_up_after_the_retries(front: MakeClient, backends: FakeBackends) -> None:
    backends.udp.drop = 100
    client = await front(udp_try_timeout=0.1, udp_retries=1)
    response = await client.post("/api/echo/udp", json={"message": "void"})
    assert response.status == 504
    assert backends.udp.received == 2


async def test_a_late_reply_is_not_taken_for_the_next_one(backends: FakeBackends) -> None:
    pool = UdpEchoPool(HOST, backends.udp.port, size=1, try_timeout=0.2, retries=0)
    try:
        endpoint = await pool._open(HOST)
        pool._idle.append((HOST, endpoint))
        # a stray echo of an earlier request arrives while "fresh" is in flight
        assert backends.udp.transport is not None
        local = endpoint.transport.get_extra_info("sockname")  # type: ignore[union-attr]
        task = asyncio.create_task(pool.echo(b"fresh"))
        backends.udp.transport.sendto(b"stale", local)
        assert await task == b"fresh"
    finally:
        await pool.close()


async def test_concurrent_udp_echoes_get_their_own_replies(backends: FakeBackends) -> None:
    pool = UdpEchoPool(HOST, backends.udp.port, size=4, try_timeout=0.5, retries=2)
    try:
        messages = [f"d{i}".encode() for i in range(40)]
        assert await asyncio.gather(*(pool.echo(m) for m in messages)) == messages
    finally:
        await pool.close()


async def test_fake_tcp_echo_echoes_and_counts(backends: FakeBackends) -> None:
    reader, writer = await asyncio.open_connection(HOST, backends.tcp.port)
    writer.write(b"abc")
    assert await asyncio.wait_for(reader.readexactly(3), 2) == b"abc"
    writer.close()
    await writer.wait_closed()
    assert backends.tcp.accepted == 1


def test_closed_port_refuses() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, closed_port()), timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(1)
        udp.connect((HOST, closed_port(socket.SOCK_DGRAM)))
        udp.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError):
            udp.recv(16)


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_a_closed_port_is_nobody_elses_next_port(kind: socket.SocketKind) -> None:
    # a port bound and released came back as a listening port of the test's own front, or
    # the source port of its own probe: "every backend down" once read a backend as up
    with socket.socket(socket.AF_INET, kind) as other, pytest.raises(OSError) as taken:
        other.bind((HOST, closed_port(kind)))
    assert taken.value.errno == errno.EADDRINUSE


async def test_the_resolver_pool_never_takes_every_resolver_slot(
    aiohttp_client, aiohttp_server, backends: FakeBackends
) -> None:
    # before: the pool was WEB_BACKEND_CONCURRENCY (100) wide, as wide as the resolver's
    # RESOLVER_MAX_CONNECTIONS, so 100 slow /api/resolve calls locked its healthcheck out
    release = asyncio.Event()
    in_flight = peak = 0

    async def slow_resolve(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.wait_for(release.wait(), 10)
        finally:
            in_flight -= 1
        names = (await request.json())["names"]
        results = [{"name": n, "addresses": [], "error": None, "elapsed_ms": 1} for n in names]
        return web.json_response({"results": results, "elapsed_ms": 1, "mode": "concurrent"})

    app = web.Application()
    app.router.add_post("/resolve", slow_resolve)
    resolver = await aiohttp_server(app)
    config = backends.config(
        resolver_port=resolver.port, resolver_max_connections=20, backend_timeout=10.0
    )
    client = await aiohttp_client(create_app(config))
    body = {"names": ["a.delay-5000.polyloop.test"], "timeout": 8}
    calls = [asyncio.create_task(client.post("/api/resolve", json=body)) for _ in range(30)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while in_flight < 10 and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert in_flight == 10  # half of the resolver's 20 slots, the rest queue in the front
    release.set()
    responses = await asyncio.gather(*calls)
    assert [r.status for r in responses] == [200] * 30
    assert peak == 10


# ---- the guard's deadlines (backends/call.py)


def _guard(timeout: float = 5.0):
    from services.web.backends import Backend
    from services.web.backends.call import BackendCall
    from services.web.metrics import Metrics
    from services.web.stats import BackendStats

    metrics = Metrics()
    call = BackendCall(
        Backend.TCP_ECHO, timeout=timeout, concurrency=None, stats=BackendStats(), metrics=metrics
    )
    return call, metrics.backends[Backend.TCP_ECHO]


async def test_a_call_past_its_deadline_is_a_timeout_and_frees_the_task() -> None:
    from services.web.errors import BackendTimeout

    call, counts = _guard(timeout=0.1)
    with pytest.raises(BackendTimeout):
        await call.run(lambda: asyncio.sleep(30))
    assert counts.errors == {"timeout": 1}
    assert asyncio.current_task().cancelling() == 0  # the deadline's cancel was taken back
    assert await call.run(lambda: asyncio.sleep(0, "in time")) == "in time"
    # nothing in flight: the sweeps stop (the last one finds nothing and does not re-arm)
    deadline = asyncio.get_running_loop().time() + 2
    while call._deadlines._timer is not None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert call._deadlines._timer is None


async def test_a_cancelled_caller_stays_cancelled() -> None:
    # a client gone mid-request cancels its handler: that is not a backend timeout
    call, counts = _guard(timeout=5.0)
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(call.run(slow))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert counts.errors == {"cancelled": 1}
