"""The book's Twisted client (services/tcp_echo/client.py): ``EchoClient`` in-process on a
fake transport, then ``python -m services.tcp_echo.client`` against the real tcp-echo
started on a free port (devstack). Needs nothing running."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from devstack import ROOT, Process, free_port, start, stop
from services.tcp_echo.client import MESSAGE, EchoClient


def test_echo_client_writes_the_books_message_on_connect_and_fires_with_the_echo() -> None:
    client, transport = EchoClient(), StringTransport()
    client.makeConnection(transport)
    assert transport.value() == b"hello, world!" == MESSAGE
    client.dataReceived(b"hello, ")
    assert not transport.disconnecting, "closed before the whole echo came back"
    client.dataReceived(b"world!")
    assert transport.disconnecting
    results: list[bytes] = []
    client.finished.addCallback(results.append)
    client.connectionLost(Failure(ConnectionError("closed")))
    assert results == [b"hello, world!"]


@pytest.fixture(scope="module")
def tcp_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = start("tcp_echo", log=tmp_path_factory.mktemp("tcp-echo") / "tcp-echo.log")
    yield process
    stop(process)


def run_client(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.tcp_echo.client", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_client_prints_hello_world_echoed(tcp_echo: Process) -> None:
    done = run_client("--port", str(tcp_echo.port))
    assert (done.returncode, done.stdout, done.stderr) == (0, "hello, world!\n", "")


def test_the_client_sends_its_argument(tcp_echo: Process) -> None:
    done = run_client("bonjour, le monde", "--port", str(tcp_echo.port))
    assert (done.returncode, done.stdout) == (0, "bonjour, le monde\n")


def test_nothing_listening_is_one_line_and_exit_1() -> None:
    port = free_port()
    done = run_client("--port", str(port), "--timeout", "2")
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"no echo from 127.0.0.1:{port}")


def test_its_healthcheck_passes_silently(tcp_echo: Process) -> None:
    healthcheck = subprocess.run(
        [sys.executable, "-m", "services.tcp_echo.healthcheck"],
        cwd=ROOT,
        env=tcp_echo.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (healthcheck.returncode, healthcheck.stdout, healthcheck.stderr) == (0, "", "")
