"""A bounded pool of persistent asyncio stream connections to tcp-echo.

A call borrows an idle connection (or opens one while fewer than ``size`` exist), writes
the message and reads back exactly as many bytes. The connection goes back to the pool
only after a complete round trip; a broken or interrupted one is closed and dropped, and
the next call opens a fresh one. A reused connection that turns out to be dead (tcp-echo
closed it for idleness) is retried once on a new connection: echo is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class TcpEchoPool:
    def __init__(self, host: str, port: int, size: int) -> None:
        self.host = host
        self.port = port
        self.size = size
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(size)
        self.opened = 0  # connections opened over the pool's life, for tests and logs

    async def echo(self, data: bytes) -> bytes:
        """Send `data` to tcp-echo and return the bytes it sent back."""
        async with self._slots:
            conn, reused = self._take_idle(), True
            if conn is None:
                conn, reused = await self._open(), False
            try:
                reply = await self._round_trip(conn, data)
            except (OSError, asyncio.IncompleteReadError):
                _close(conn)
                if not reused:
                    raise
                conn = await self._open()
                try:
                    reply = await self._round_trip(conn, data)
                except BaseException:
                    _close(conn)
                    raise
            except BaseException:  # cancelled mid-exchange: the stream state is unknown
                _close(conn)
                raise
            self._idle.append(conn)
            return reply

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)
        for _, writer in idle:
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _take_idle(self) -> Connection | None:
        while self._idle:
            reader, writer = self._idle.pop()
            if not (reader.at_eof() or writer.is_closing()):
                return reader, writer
            _close((reader, writer))
        return None

    async def _open(self) -> Connection:
        conn = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return conn

    @staticmethod
    async def _round_trip(conn: Connection, data: bytes) -> bytes:
        reader, writer = conn
        writer.write(data)
        await writer.drain()
        return await reader.readexactly(len(data))


def _close(conn: Connection) -> None:
    conn[1].close()
