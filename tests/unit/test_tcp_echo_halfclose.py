"""tcp-echo's half-close over real sockets: the service's own factory on 127.0.0.1, on a
reactor of its own in a thread (tests/twisted_thread.py); the client is a plain socket.
Nothing else needs to be running. Run: .venv/bin/pytest tests/unit/test_tcp_echo_halfclose.py

The attack of issue 8 item 6: ``printf 'hello\\n' | nc -N 127.0.0.1 8000`` printed nothing,
because the client's FIN closed the connection with the echo unsent.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from services.tcp_echo.protocol import Echo, EchoFactory
from services.web.backends.tcp import TcpEchoPool
from tests.twisted_thread import ReactorThread

KiB = 1024
MiB = 1024 * KiB
DEADLINE = 20.0


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[EchoFactory, int]]]:
    """Start an EchoFactory (keyword arguments: its limits) on a fresh reactor."""
    runners: list[ReactorThread] = []

    def start(**limits: float) -> tuple[EchoFactory, int]:
        runner = ReactorThread()
        runners.append(runner)
        factory = EchoFactory.forProtocol(Echo, clock=runner.reactor, **limits)
        port = runner.reactor.listenTCP(0, factory, interface="127.0.0.1")
        runner.start()
        return factory, port.getHost().port

    yield start
    for runner in runners:
        runner.stop()


def wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline}s: {what}")
        time.sleep(0.01)


def send_then_half_close(port: int, payload: bytes) -> tuple[bytes, bool]:
    """Send ``payload`` (from a thread: the echo must be read meanwhile, or back-pressure
    stalls both sides), shut down the sending side, read until EOF. Returns (echo, eof)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sent = threading.Event()

    def send() -> None:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        sent.set()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = bytearray()
    eof = False
    try:
        while True:
            chunk = sock.recv(256 * KiB)
            if not chunk:
                eof = True
                break
            received += chunk
    except TimeoutError:
        pass
    finally:
        sender.join(DEADLINE)
        sock.close()
    assert sent.is_set(), "the client could not even send its payload"
    return bytes(received), eof


@pytest.mark.parametrize(
    "payload",
    [b"hello\n", b"x", bytes(range(256)) * 256, bytes(range(251)) * (4 * MiB // 251 + 1)],
    ids=["hello-line", "1B", "64KiB", "4MiB"],
)
def test_half_close_gets_every_byte_back_then_eof(
    serve: Callable[..., tuple[EchoFactory, int]], payload: bytes
) -> None:
    factory, port = serve()
    echo, eof = send_then_half_close(port, payload)
    assert len(echo) == len(payload)
    assert hashlib.sha256(echo).digest() == hashlib.sha256(payload).digest()
    assert eof, "the server closes once the echo is flushed"
    wait_for(lambda: factory.open_connections == 0, "the connection is released")
    assert factory.half_closed == 1
    assert factory.bytes_echoed == len(payload)


def test_many_half_closes_in_a_row_all_complete(
    serve: Callable[..., tuple[EchoFactory, int]],
) -> None:
    # the report: 0 bytes back for 1 B-10 KB in 20 of 20 trials, 1 MB cut short in 9 of 20
    factory, port = serve()
    sizes = [1, 10 * KiB, MiB] * 7
    results = [send_then_half_close(port, bytes(size)) for size in sizes]
    assert [(len(echo), eof) for echo, eof in results] == [(size, True) for size in sizes]
    wait_for(lambda: factory.open_connections == 0, "every connection is released")
    assert factory.half_closed == len(sizes)


def test_half_close_with_a_slow_reader_loses_nothing(
    serve: Callable[..., tuple[EchoFactory, int]],
) -> None:
    # half-closed after 1 MiB, then reads in small steps: back-pressure holds the rest,
    # nothing is lost, and the close waits for the last byte
    factory, port = serve()
    payload = bytes(range(256)) * (MiB // 256)
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sender = threading.Thread(
        target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)), daemon=True
    )
    sender.start()
    received = bytearray()
    try:
        while chunk := sock.recv(4 * KiB):
            received += chunk
    finally:
        sender.join(DEADLINE)
        sock.close()
    assert bytes(received) == payload
    wait_for(lambda: factory.open_connections == 0, "the connection is released")


async def test_front_pool_survives_tcp_echo_closing_its_idle_connections(
    serve: Callable[..., tuple[EchoFactory, int]],
) -> None:
    # the front's pool (services/web/backends/tcp.py) against the real Echo: when tcp-echo
    # closes a pooled connection first (idle timeout), tcp-echo's slot is freed at once and
    # the pool's next call drops the half-closed socket and echoes on a fresh one
    factory, port = serve(idle_timeout=0.4)
    pool = TcpEchoPool("127.0.0.1", port, size=4)
    try:
        assert await pool.echo(b"first") == b"first"
        wait_for(lambda: factory.idle_timeouts == 1, "tcp-echo closes the idle connection")
        wait_for(lambda: factory.open_connections == 0, "tcp-echo's slot is freed")
        assert await pool.echo(b"second") == b"second"
        assert pool.opened == 2
        assert factory.open_connections == 1, "the half-closed one was not kept"
        assert len(pool._idle) == 1
        _, (reader, writer) = pool._idle[0]  # (replica address, connection)
        assert not reader.at_eof()
        assert not writer.is_closing()
    finally:
        await pool.close()
    wait_for(lambda: factory.open_connections == 0, "the pool's close releases the slot")


def test_closing_then_reconnecting_at_the_limit_is_never_refused(
    serve: Callable[..., tuple[EchoFactory, int]],
) -> None:
    # a pool or a healthcheck closes one connection and opens the next at once: the
    # freed slot must be there, as it was before half-close kept connections open
    factory, port = serve(max_connections=3)
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"
        held = [socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) for _ in range(3)]
        try:
            for sock in held:
                sock.sendall(b"x")
                assert sock.recv(1) == b"x"
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: factory.open_connections == 0, "the three are released")
    assert factory.connections_refused == 0
