"""A pool of connected datagram endpoints to udp-echo, one request in flight on each.

Because an endpoint carries one request at a time and is connected to udp-echo's
address, a reply cannot be mistaken for another request's; a late reply to an earlier,
timed-out try is recognised (it differs from what was sent) and ignored. Each try waits
``try_timeout``; a lost datagram is sent again up to ``retries`` times. An ICMP "port
unreachable" comes back as ``ConnectionRefusedError`` on the connected socket, so a
stopped udp-echo is reported at once instead of after every retry.

A stopped *container* sends no ICMP at all: its address simply goes silent, and its
name stops resolving on the compose network. So after a silent try the pool resolves
udp-echo's name again before retrying: no address means a fast 503 (not a 504 after
every retry), and a new address (the container came back elsewhere) means a fresh
endpoint.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable


class _EchoEndpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.expected: bytes | None = None
        self.reply: asyncio.Future[bytes] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self.reply is not None and not self.reply.done() and data == self.expected:
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        self.lost = True
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(exc or ConnectionResetError("endpoint closed"))

    async def ask(
        self,
        data: bytes,
        try_timeout: float,
        retries: int,
        on_silence: Callable[[], Awaitable[None]],
    ) -> bytes:
        """The echo of `data`; `on_silence` is awaited before each retry (it may raise)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.expected = data
        self.reply = loop.create_future()
        try:
            for attempt in range(retries + 1):
                self.transport.sendto(data)
                try:
                    return await asyncio.wait_for(asyncio.shield(self.reply), try_timeout)
                except TimeoutError:
                    if attempt == retries:
                        raise
                    await on_silence()
            raise AssertionError("unreachable")
        finally:
            if not self.reply.done():
                self.reply.cancel()
            self.reply = None
            self.expected = None


class UdpEchoPool:
    def __init__(
        self, host: str, port: int, size: int, *, try_timeout: float, retries: int
    ) -> None:
        self.host = host
        self.port = port
        self.try_timeout = try_timeout
        self.retries = retries
        self._idle: list[_EchoEndpoint] = []
        self._slots = asyncio.Semaphore(size)

    async def echo(self, data: bytes) -> bytes:
        """Send one datagram to udp-echo and return its echo (retrying lost datagrams)."""
        async with self._slots:
            endpoint = self._take_idle() or await self._open()
            try:
                reply = await endpoint.ask(
                    data, self.try_timeout, self.retries, lambda: self._still_there(endpoint)
                )
            except BaseException:
                # refused, timed out or cancelled: rebuild (and re-resolve the host) next time
                _close(endpoint)
                raise
            self._idle.append(endpoint)
            return reply

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for endpoint in idle:
            _close(endpoint)

    async def _still_there(self, endpoint: _EchoEndpoint) -> None:
        """Raise when udp-echo's name no longer leads to the endpoint's address."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        addresses = {info[4][:2] for info in infos}
        assert endpoint.transport is not None
        if endpoint.transport.get_extra_info("peername")[:2] not in addresses:
            raise ConnectionRefusedError(f"{self.host} moved to {sorted(addresses)}")

    def _take_idle(self) -> _EchoEndpoint | None:
        while self._idle:
            endpoint = self._idle.pop()
            if not endpoint.lost:
                return endpoint
            _close(endpoint)
        return None

    async def _open(self) -> _EchoEndpoint:
        loop = asyncio.get_running_loop()
        _, endpoint = await loop.create_datagram_endpoint(
            _EchoEndpoint, remote_addr=(self.host, self.port)
        )
        return endpoint


def _close(endpoint: _EchoEndpoint) -> None:
    if endpoint.transport is not None:
        endpoint.transport.close()
