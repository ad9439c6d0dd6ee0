"""A bounded pool of persistent asyncio stream connections to tcp-echo.

A call borrows an idle connection (or opens one while fewer than ``size`` exist), writes
the message and reads back exactly as many bytes. The connection goes back to the pool
only after a complete round trip; a broken or interrupted one is closed and dropped, and
the next call opens a fresh one. A reused connection that turns out to be dead (tcp-echo
closed it for idleness) is retried once on a new connection: echo is idempotent.

Connections are kept per replica (``replicas.ReplicaSet``): each call goes to the next
replica that is up; a replica whose fresh connection fails is taken out at once and the
call goes once more to another one.
"""

from __future__ import annotations

import asyncio
import contextlib

from services.web.backends import Backend
from services.web.backends.replicas import (
    CONNECT_TIMEOUT,
    ReplicaSet,
    ReplicaUnreachable,
    call_on_replica,
)
from services.web.errors import BadBackendReply

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class TcpEchoPool:
    def __init__(
        self,
        host: str,
        port: int,
        size: int,
        replicas: ReplicaSet | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        *,
        max_calls: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.size = size
        self.replicas = replicas or ReplicaSet("tcp-echo", host, port)
        self.connect_timeout = connect_timeout
        self._idle: list[tuple[str, Connection]] = []  # (replica address, connection)
        # calls at once: one connection each, and never more than WEB_BACKEND_CONCURRENCY
        self._slots = asyncio.Semaphore(min(size, max_calls or size))
        self._seen_changes = self.replicas.changes
        self.opened = 0  # connections opened over the pool's life, for tests and logs

    async def echo(self, data: bytes) -> bytes:
        """Send `data` to tcp-echo and return the bytes it sent back."""
        async with self._slots:
            return await call_on_replica(self.replicas, lambda address: self._echo(address, data))

    async def _echo(self, address: str, data: bytes) -> bytes:
        conn = self._take_idle(address)
        if conn is not None:
            try:
                # no drain(): one message in flight per connection, at most WEB_MAX_MESSAGE
                # bytes buffered, and its echo is awaited right after
                conn[1].write(data)
                reply = await conn[0].readexactly(len(data))
            except (OSError, asyncio.IncompleteReadError):
                _close(conn)  # dead while idle (tcp-echo's idle timeout): a fresh one decides
            except BaseException:  # cancelled mid-exchange: the stream state is unknown
                _close(conn)
                raise
            else:
                return self._done(address, conn, data, reply)
        conn = await self._open(address)
        try:
            conn[1].write(data)
            reply = await conn[0].readexactly(len(data))
        except BaseException:
            _close(conn)
            raise
        return self._done(address, conn, data, reply)

    def _done(self, address: str, conn: Connection, data: bytes, reply: bytes) -> bytes:
        """After a whole round trip: the connection goes back to the pool, unless the echo
        differs from `data` (then what else it holds is unknown: closed, and a 502)."""
        if reply != data:
            _close(conn)
            raise BadBackendReply(Backend.TCP_ECHO, "the echo differs from the message sent")
        self._park(address, conn)
        return reply

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, conn in idle:
            _close(conn)
        for _, (_, writer) in idle:
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _take_idle(self, address: str) -> Connection | None:
        """The most recently parked live connection to `address`, or None. Only the one
        taken is looked at (a call on every idle connection would cost each echo more than
        the rest of the pool); those of replicas gone from the set go when the set changes."""
        if self._seen_changes != self.replicas.changes:
            self._seen_changes = self.replicas.changes
            keep = [(owner, conn) for owner, conn in self._idle if owner in self.replicas]
            for owner, conn in self._idle:
                if owner not in self.replicas:
                    _close(conn)
            self._idle = keep
        idle = self._idle
        for i in range(len(idle) - 1, -1, -1):
            if idle[i][0] != address:
                continue
            reader, writer = conn = idle.pop(i)[1]
            if not (reader.at_eof() or writer.is_closing()):
                return conn
            _close(conn)  # it died while idle (tcp-echo's idle timeout)
        return None

    def _park(self, address: str, conn: Connection) -> None:
        self._idle.append((address, conn))
        while len(self._idle) > self.size:  # idle ones of other replicas: keep `size` at most
            _close(self._idle.pop(0)[1])

    async def _open(self, address: str) -> Connection:
        # bounded apart from the call: a replica gone silent is left for another quickly
        try:
            conn = await asyncio.wait_for(
                asyncio.open_connection(address, self.port), self.connect_timeout
            )
        except TimeoutError:  # this connect's own bound (the call's deadline cancels instead)
            raise ReplicaUnreachable(address, self.port, self.connect_timeout) from None
        self.opened += 1
        return conn


def _close(conn: Connection) -> None:
    conn[1].close()
