"""Real in-process stand-ins for the front's backends (the fixtures that wire them are in
``tests/unit/conftest.py``: ``backends`` and ``front``).

- ``TcpEcho``: an asyncio stream echo server counting the connections it accepted
  (``mute`` makes it read without answering: a backend too slow; ``garble`` sends back as
  many bytes, case swapped: an echo that differs);
- ``UdpEcho``: an asyncio datagram echo counting datagrams, able to ``drop`` the next N;
- ``DnsServer``: a UDP responder answering every A question with ``address`` (192.0.2.10,
  the zone's www) via dnspython, or with bytes that are no DNS message when ``garbled``;
- the resolver: a tiny aiohttp app with ``POST /resolve`` and ``GET /healthz`` (unit
  tests only; integration tests talk to the real gevent resolver).

All listen on 127.0.0.1, on ports the OS picks. ``FakeBackends`` holds the four, running,
and builds a ``WebConfig`` pointing a front at them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import dns.message
import dns.rrset
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.web.config import WebConfig

HOST = "127.0.0.1"
# the `front` fixture: ``await front(**config_overrides)`` gives a test client of the front
MakeClient = Callable[..., Awaitable[TestClient]]


class TcpEcho:
    def __init__(self) -> None:
        self.accepted = 0
        self.first_chunks: list[bytes] = []  # each connection's first read
        self.mute = False
        self.garble = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpEcho:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        first = True
        try:
            while data := await reader.read(65536):
                if first:
                    self.first_chunks.append(data)
                    first = False
                if not self.mute:
                    writer.write(data.swapcase() if self.garble else data)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def drop_connections(self) -> None:
        """Close every open connection from the server's side (as an idle timeout would)."""
        for writer in list(self._writers):
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self.drop_connections()
        await self._server.wait_closed()


class UdpEcho(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0
        self.last = b""
        self.drop = 0
        self.port = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received += 1
        self.last = data
        if self.drop > 0:
            self.drop -= 1
            return
        assert self.transport is not None
        self.transport.sendto(data, addr)


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.port = 0
        self.address = "192.0.2.10"
        self.questions: list[str] = []
        self.garbled = False
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        self.questions.append(question.name.to_text())
        response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", self.address))
        assert self.transport is not None
        self.transport.sendto(b"\x00\x01" if self.garbled else response.to_wire(), addr)


def resolver_app(received: list[dict[str, Any]]) -> web.Application:
    """The resolver's HTTP contract, answering every name with 192.0.2.1."""

    async def resolve(request: web.Request) -> web.Response:
        body = await request.json()
        received.append(body)
        results = [
            {"name": name, "addresses": ["192.0.2.1"], "error": None, "elapsed_ms": 0.1}
            for name in body["names"]
        ]
        return web.json_response({"results": results, "elapsed_ms": 0.2, "mode": body["mode"]})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/resolve", resolve)
    app.router.add_get("/healthz", healthz)
    return app


class FakeBackends:
    """The four fakes, running; `config()` points a front at them."""

    def __init__(self, tcp: TcpEcho, udp: UdpEcho, dns_server: DnsServer, resolver_port: int):
        self.tcp = tcp
        self.udp = udp
        self.dns = dns_server
        self.resolver_port = resolver_port
        self.resolve_requests: list[dict[str, Any]] = []

    def config(self, **overrides: Any) -> WebConfig:
        settings: dict[str, Any] = {
            "tcp_echo_port": self.tcp.port,
            "udp_echo_port": self.udp.port,
            "resolver_port": self.resolver_port,
            "dns_port": self.dns.port,
            "backend_timeout": 2.0,
            "health_timeout": 1.0,
            "udp_try_timeout": 0.2,
        }
        return WebConfig(**(settings | overrides))
