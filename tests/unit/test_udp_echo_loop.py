"""ServerUdpEchoProtocol on a real asyncio loop and a real loopback socket (a free port)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from services.udp_echo.protocol import ServerUdpEchoProtocol
from services.udp_echo.ratelimit import SourceRateLimiter
from tests.sockets import privileged_udp_socket

Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """serve(**protocol_kwargs) -> (protocol, port): an echo on 127.0.0.1:<free port>."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    transports = []

    async def start(**kwargs: Any) -> tuple[ServerUdpEchoProtocol, int]:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: ServerUdpEchoProtocol(**kwargs), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        return protocol, transport.get_extra_info("sockname")[1]

    yield start
    for transport in transports:
        transport.close()
    loop.set_exception_handler(None)
    assert errors == [], "the loop reported exceptions from the protocol"


@contextlib.contextmanager
def client(port: int, source: tuple[str, int] = ("127.0.0.1", 0)) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(source)
        sock.connect(("127.0.0.1", port))
        yield sock


async def recv(sock: socket.socket, timeout: float = 2.0) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65535), timeout)


async def assert_silent(sock: socket.socket, grace: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        await recv(sock, timeout=grace)


def privileged_socket() -> socket.socket:
    """A non-blocking UDP socket bound to a free port below 1024 (needs root)."""
    sock = privileged_udp_socket()
    sock.setblocking(False)
    return sock


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


async def test_echoes_over_loopback(serve: Serve) -> None:
    protocol, port = await serve()
    with client(port) as sock:
        for n in range(100):
            payload = f"datagram {n} ".encode() + os.urandom(n)
            sock.send(payload)
            assert await recv(sock) == payload
    assert protocol.echoed == 100


async def test_a_privileged_source_port_gets_no_reply(serve: Serve) -> None:
    protocol, port = await serve()
    with privileged_socket() as guarded, client(port) as normal:
        guarded.connect(("127.0.0.1", port))
        guarded.send(b"from a system port")
        # served in order: once the later datagram is echoed, the earlier one was decided
        normal.send(b"from an ephemeral port")
        assert await recv(normal) == b"from an ephemeral port"
        await assert_silent(guarded)
    assert protocol.dropped["privileged_port"] == 1


async def test_an_oversize_datagram_gets_no_reply_the_next_one_does(serve: Serve) -> None:
    protocol, port = await serve(max_datagram=512)
    with client(port) as sock:
        sock.send(b"x" * 513)
        sock.send(b"y" * 512)
        assert await recv(sock) == b"y" * 512
        await assert_silent(sock)
    assert protocol.dropped["oversize"] == 1


async def test_rate_limit_per_real_source_with_a_bounded_table(serve: Serve) -> None:
    # a frozen clock: no refill, so each source gets exactly its burst
    limiter = SourceRateLimiter(5, max_sources=8, clock=lambda: 0.0)
    protocol, port = await serve(limiter=limiter)
    sources = [f"127.0.0.{n}" for n in range(2, 22)]  # 20 distinct source addresses
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(client(port, (ip, 0))) for ip in sources]
        for sock in socks:
            for n in range(10):
                sock.send(b"%d" % n)
        await wait_until(lambda: protocol.received == 200)
        for sock in socks:
            assert [await recv(sock) for _ in range(5)] == [b"0", b"1", b"2", b"3", b"4"]
        await assert_silent(socks[-1])
    assert protocol.echoed == 100
    assert protocol.dropped["rate_limited"] == 100
    assert len(limiter) == 8


async def test_survives_a_flood_and_still_answers(serve: Serve) -> None:
    protocol, port = await serve(max_datagram=1024)
    sent = 0

    def flood() -> None:
        # four senders that never read their replies: sizes around the cap, as fast as possible
        nonlocal sent
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        try:
            for n in range(40_000):
                sockets[n % 4].sendto(b"f" * (n % 1500), ("127.0.0.1", port))
                sent += 1
        finally:
            for sock in sockets:
                sock.close()

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    await wait_until(lambda: not flooder.is_alive(), timeout=60)
    assert sent == 40_000
    # the kernel may still be dropping datagrams while the server drains its queue:
    # a few tries, any one answered proves the server survived
    with client(port) as sock:
        for attempt in range(5):
            sock.send(b"still alive? %d" % attempt)
            with contextlib.suppress(TimeoutError):
                assert (await recv(sock, timeout=1.0)).startswith(b"still alive?")
                break
        else:
            pytest.fail("no answer after the flood")
    assert protocol.dropped["oversize"] > 0
    assert protocol.echoed > 0
    assert protocol.echoed + sum(protocol.dropped.values()) == protocol.received
    assert protocol.transport is not None
    assert protocol.transport.get_write_buffer_size() == 0


async def test_drops_are_summarised_periodically(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.udp_echo.protocol")
    protocol, port = await serve(max_datagram=8, stats_interval=0.05)

    def summaries() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "udp echo dropped datagrams"]

    with client(port) as sock:
        for _ in range(20):
            sock.send(b"far too large")
    await wait_until(lambda: sum(r.dropped_since_last["oversize"] for r in summaries()) == 20)  # type: ignore[attr-defined]
    assert protocol._timer is None  # summarised: idle again until the next drop


async def test_no_timer_runs_while_nothing_is_dropped(serve: Serve) -> None:
    # an always-pending timer would make every selector wait a timed one: ~10 % per echo
    protocol, port = await serve(max_datagram=8, stats_interval=60)
    with client(port) as sock:
        sock.send(b"fits")
        assert await recv(sock) == b"fits"
        assert protocol._timer is None
        sock.send(b"far too large")
        sock.send(b"fits")
        assert await recv(sock) == b"fits"
        assert protocol._timer is not None  # armed by the drop, to summarise it
