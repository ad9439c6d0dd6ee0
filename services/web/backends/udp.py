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

Endpoints are kept per replica (``replicas.ReplicaSet``): each call goes to the next
replica that is up; one that refuses, goes silent or leaves the name is taken out at
once and the call goes once more to another one.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from services.web.backends.replicas import ReplicaSet, call_on_replica


class _EchoEndpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.expected: bytes | None = None
        self.reply: asyncio.Future[bytes] | None = None
        self.lost = False
        # the try in progress: its timer, the retries left, the task of a retry under way
        self._timer: asyncio.TimerHandle | None = None
        self._retries = 0
        self._try_timeout = 0.0
        self._on_silence: Callable[[], Awaitable[None]] | None = None
        self._retrying: asyncio.Task[None] | None = None

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
        """The echo of `data`; `on_silence` is awaited before each retry (it may raise).

        One future for the echo and the loop's own timer per try (``_silent``): the common
        case, an echo before the first timer, costs neither a task nor a ``wait_for``."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.expected = data
        self.reply = reply = loop.create_future()
        self._retries, self._try_timeout, self._on_silence = retries, try_timeout, on_silence
        self.transport.sendto(data)
        self._timer = loop.call_later(try_timeout, self._silent)
        try:
            return await reply
        finally:
            self._timer.cancel()
            if self._retrying is not None:
                self._retrying.cancel()
                self._retrying = None
            if not reply.done():
                reply.cancel()
            self.reply = self.expected = self._on_silence = None

    def _silent(self) -> None:
        """A try went unanswered: the last one fails the call, else a retry begins."""
        reply = self.reply
        if reply is None or reply.done():
            return
        if self._retries <= 0:
            reply.set_exception(TimeoutError("no echo"))
            return
        self._retries -= 1
        self._retrying = asyncio.ensure_future(self._retry(reply))

    async def _retry(self, reply: asyncio.Future[bytes]) -> None:
        assert self._on_silence is not None and self.transport is not None
        try:
            await self._on_silence()
        except Exception as exc:  # noqa: BLE001 - handed to the caller, through its future
            if not reply.done():
                reply.set_exception(exc)
            return
        if reply.done() or self.expected is None:
            return
        self.transport.sendto(self.expected)
        self._timer = asyncio.get_running_loop().call_later(self._try_timeout, self._silent)


class UdpEchoPool:
    def __init__(
        self,
        host: str,
        port: int,
        size: int,
        *,
        try_timeout: float,
        retries: int,
        replicas: ReplicaSet | None = None,
        max_calls: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.size = size
        self.try_timeout = try_timeout
        self.retries = retries
        self.replicas = replicas or ReplicaSet("udp-echo", host, port, socktype=socket.SOCK_DGRAM)
        self._idle: list[tuple[str, _EchoEndpoint]] = []  # (replica address, endpoint)
        # calls at once: one endpoint each, and never more than WEB_BACKEND_CONCURRENCY
        self._slots = asyncio.Semaphore(min(size, max_calls or size))
        self._seen_changes = self.replicas.changes

    async def echo(self, data: bytes) -> bytes:
        """Send one datagram to udp-echo and return its echo (retrying lost datagrams)."""
        async with self._slots:
            return await call_on_replica(self.replicas, lambda address: self._echo(address, data))

    async def _echo(self, address: str, data: bytes) -> bytes:
        endpoint = self._take_idle(address) or await self._open(address)
        try:
            reply = await endpoint.ask(
                data, self.try_timeout, self.retries, lambda: self._still_there(address)
            )
        except BaseException:
            # refused, timed out or cancelled: rebuild (and re-resolve the host) next time
            _close(endpoint)
            raise
        self._idle.append((address, endpoint))
        while len(self._idle) > self.size:  # idle ones of other replicas: keep `size` at most
            _close(self._idle.pop(0)[1])
        return reply

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, endpoint in idle:
            _close(endpoint)

    async def _still_there(self, address: str) -> None:
        """Raise when udp-echo's name no longer leads to `address`."""
        addresses = await self.replicas.refresh()
        if address not in addresses:
            raise ConnectionRefusedError(f"{self.host} moved to {addresses}")

    def _take_idle(self, address: str) -> _EchoEndpoint | None:
        """The most recently parked live endpoint to `address`, or None (as the TCP pool:
        only the one taken is looked at; a changed replica set purges the others)."""
        if self._seen_changes != self.replicas.changes:
            self._seen_changes = self.replicas.changes
            for owner, endpoint in self._idle:
                if owner not in self.replicas:
                    _close(endpoint)
            self._idle = [(owner, e) for owner, e in self._idle if owner in self.replicas]
        idle = self._idle
        for i in range(len(idle) - 1, -1, -1):
            if idle[i][0] != address:
                continue
            endpoint = idle.pop(i)[1]
            if not endpoint.lost:
                return endpoint
            _close(endpoint)  # it failed while idle
        return None

    async def _open(self, address: str) -> _EchoEndpoint:
        loop = asyncio.get_running_loop()
        _, endpoint = await loop.create_datagram_endpoint(
            _EchoEndpoint, remote_addr=(address, self.port)
        )
        return endpoint


def _close(endpoint: _EchoEndpoint) -> None:
    if endpoint.transport is not None:
        endpoint.transport.close()
