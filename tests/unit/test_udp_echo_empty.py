"""udp-echo and the zero-length datagram, on a real loopback socket, on both loops the
service runs on (asyncio's own and uvloop). Nothing needs to be running.
Run: .venv/bin/pytest tests/unit/test_udp_echo_empty.py

The report (issue 8 item 14): an empty datagram was counted as echoed but nothing was
sent, because asyncio's datagram transport returns early on empty data (uvloop's too).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from services.udp_echo.protocol import ServerUdpEchoProtocol
from services.udp_echo.ratelimit import SourceRateLimiter

TIMEOUT = 2.0
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {
    "asyncio": None,
    "uvloop": uvloop.new_event_loop,
}


@pytest.fixture(params=list(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to completion on a fresh loop of the parametrized kind."""

    def runner(coroutine: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as loop_runner:
            return loop_runner.run(coroutine)

    return runner


async def serve(**kwargs: Any) -> tuple[asyncio.DatagramTransport, ServerUdpEchoProtocol, int]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: ServerUdpEchoProtocol(**kwargs), local_addr=("127.0.0.1", 0)
    )
    return transport, protocol, transport.get_extra_info("sockname")[1]


async def exchange(port: int, payloads: list[bytes]) -> list[bytes]:
    """Send each payload from one client socket, read one reply each (deadline each)."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        replies = []
        for payload in payloads:
            sock.send(payload)
            replies.append(await asyncio.wait_for(loop.sock_recv(sock, 65535), TIMEOUT))
        return replies


def test_an_empty_datagram_gets_an_empty_reply(run: Callable[..., Any]) -> None:
    async def scenario() -> tuple[list[bytes], int]:
        transport, protocol, port = await serve()
        try:
            # before the fix the b"" reply never came: the wait for it timed out
            replies = await exchange(port, [b"", b"after", b"", b"x"])
        finally:
            transport.close()
            await asyncio.sleep(0)  # let connection_lost run and close the duplicate
        return replies, protocol.echoed

    replies, echoed = run(scenario())
    assert replies == [b"", b"after", b"", b"x"]
    assert echoed == 4


def test_the_empty_reply_goes_out_from_the_service_port(run: Callable[..., Any]) -> None:
    # the reply to an empty datagram must come from the port the client wrote to (a
    # connected client socket only accepts datagrams from there): checked with recvfrom
    async def scenario() -> tuple[bytes, tuple[str, int], int]:
        transport, _, port = await serve()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(TIMEOUT)  # uvloop has no sock_recvfrom: a thread waits
                sock.bind(("127.0.0.1", 0))
                sock.sendto(b"", ("127.0.0.1", port))
                data, source = await asyncio.to_thread(sock.recvfrom, 100)
        finally:
            transport.close()
            await asyncio.sleep(0)
        return data, source, port

    data, source, port = run(scenario())
    assert (data, source) == (b"", ("127.0.0.1", port))


def test_empty_datagrams_obey_the_rate_limit_too(run: Callable[..., Any]) -> None:
    async def scenario() -> dict[str, int]:
        transport, protocol, port = await serve(limiter=SourceRateLimiter(2))
        try:
            await exchange(port, [b"", b""])  # the burst: two
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect(("127.0.0.1", port))
                sock.send(b"")  # the third within the second: dropped
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while protocol.dropped["rate_limited"] == 0:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
        finally:
            transport.close()
            await asyncio.sleep(0)
        return {"echoed": protocol.echoed, "rate_limited": protocol.dropped["rate_limited"]}

    assert run(scenario()) == {"echoed": 2, "rate_limited": 1}
