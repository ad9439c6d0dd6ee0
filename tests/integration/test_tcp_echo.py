"""tcp-echo as it runs in the stack, through real sockets.

Needs the running tcp-echo at stack.host:stack.tcp_echo_port (TCP_ECHO_PORT, default
8000): `make up`, or `python -m services.tcp_echo` for this service alone.
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator

import pytest

from tests.stack import ROOT, Stack, unavailable

TIMEOUT = 30.0


@pytest.fixture(scope="module", autouse=True)
def tcp_echo(stack: Stack) -> None:
    # a round trip, not a connect (docker-proxy accepts for a stopped container): the book's
    # client in its own process (it runs a Twisted reactor, which pytest's process must not)
    client = [sys.executable, "-m", "services.tcp_echo.client", "--host", stack.host]
    done = subprocess.run(
        [*client, "--port", str(stack.tcp_echo_port), "--timeout", "2"],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"tcp-echo at {stack.host}:{stack.tcp_echo_port}")


@pytest.fixture
def connection(stack: Stack) -> Iterator[socket.socket]:
    with socket.create_connection((stack.host, stack.tcp_echo_port), timeout=5) as sock:
        yield sock


def pump(sock: socket.socket, chunks: Iterable[bytes], expected: int) -> bytes:
    """Send every chunk (one send call each) while reading, until `expected` bytes are back.

    Reading while sending matters: the server stops reading a peer that does not read.
    """
    pending = iter(chunks)
    current = memoryview(next(pending, b""))
    received = bytearray()
    sock.setblocking(False)
    deadline = time.monotonic() + TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while len(received) < expected:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(received)} of {expected} bytes back"
            for _, events in selector.select(remaining):
                if events & selectors.EVENT_READ:
                    chunk = sock.recv(65536)
                    assert chunk, f"closed after {len(received)} of {expected} bytes"
                    received += chunk
                if events & selectors.EVENT_WRITE and current:
                    current = current[sock.send(current) :]
                    if not current:
                        current = memoryview(next(pending, b""))
                        if not current:
                            selector.modify(sock, selectors.EVENT_READ)
    return bytes(received)


def test_one_mebibyte_comes_back_unchanged_and_in_order(connection: socket.socket) -> None:
    payload = os.urandom(1024 * 1024)
    chunks = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
    assert pump(connection, chunks, len(payload)) == payload


def test_two_hundred_concurrent_connections_each_get_their_own_payload(stack: Stack) -> None:
    sockets = [
        socket.create_connection((stack.host, stack.tcp_echo_port), timeout=10) for _ in range(200)
    ]
    try:
        payloads = [b"connection %03d:" % i + os.urandom(1024) for i in range(200)]
        # all 200 are open before any of them talks: they are served concurrently
        for sock, payload in zip(sockets, payloads, strict=True):
            sock.sendall(payload)
        for index, (sock, payload) in enumerate(zip(sockets, payloads, strict=True)):
            received = b""
            while len(received) < len(payload):
                chunk = sock.recv(len(payload) - len(received))
                assert chunk, f"connection {index} closed early"
                received += chunk
            assert received == payload, f"connection {index} got someone else's bytes"
    finally:
        for sock in sockets:
            sock.close()


def test_many_small_writes_come_back_in_order(connection: socket.socket) -> None:
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    chunks = [b"%05d;" % i for i in range(5000)]
    expected = b"".join(chunks)
    assert pump(connection, chunks, len(expected)) == expected


def test_a_quiet_connection_stays_open_and_keeps_echoing(connection: socket.socket) -> None:
    assert pump(connection, [b"ping"], 4) == b"ping"
    connection.setblocking(True)
    connection.settimeout(0.2)
    with pytest.raises(TimeoutError):
        connection.recv(1)  # nothing sent, nothing echoed, still open
    assert pump(connection, [b"pong"], 4) == b"pong"
