"""tcp-echo and dns run unchanged on PyPy: the option `POLYLOOP_PYPY=1 make up` offers.

Starts ``services.tcp_echo`` and ``services.dns`` with build/pypy-venv (Debian's pypy3,
Python 3.9, requirements/pypy.txt) as local processes on free 127.0.0.1 ports, then does
an echo round trip and a DNS query, and blocks tcp-echo's reactor to see its stall's
stack. Needs the PyPy venv: ``make pypy-venv``. Without it the tests skip and say so;
under ``CI=true`` they fail instead (.ci/run creates it).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import ROOT, Process, free_port, start, stop
from services.common.catalogue import service
from services.dns.healthcheck import check as dns_check
from tests.commands import run
from tests.stack import IN_CI

PYPY = ROOT / "build" / "pypy-venv" / "bin" / "python"
PYPY_ENV = {"PYPY_GC_NURSERY": "4MB"}  # as in the PyPy images (services/Dockerfile says why)


def healthcheck_on(pypy: Path, name: str, port: int) -> subprocess.CompletedProcess[str]:
    """Service ``name``'s healthcheck run by PyPy against ``port``, as its image runs it."""
    s = service(name)
    return run(
        [str(pypy), "-m", s.healthcheck], env={**os.environ, s.port_variable: str(port)}, timeout=30
    )


@pytest.fixture(scope="module")
def pypy() -> Path:
    if not os.access(PYPY, os.X_OK):
        message = f"no PyPy venv at {PYPY.relative_to(ROOT)}: run `make pypy-venv`"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(f"{message} (skipped outside CI; CI=true fails instead)")
    version = subprocess.run(
        [str(PYPY), "-c", "import sys; print(sys.implementation.name)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert version.stdout.strip() == "pypy"
    return PYPY


@pytest.fixture
def tcp_echo(pypy: Path, tmp_path: Path) -> Iterator[Process]:
    # devstack polls the healthcheck with the same interpreter: PyPy answers it too
    process = start("tcp_echo", PYPY_ENV, python=pypy, log=tmp_path / "tcp-echo.log")
    yield process
    stop(process)


@pytest.fixture
def dns_server(pypy: Path, tmp_path: Path) -> Iterator[Process]:
    process = start("dns", PYPY_ENV, python=pypy, log=tmp_path / "dns.log")
    yield process
    stop(process)


def test_tcp_echo_on_pypy_echoes_and_stops_on_sigterm(tcp_echo: Process, pypy: Path) -> None:
    process, port = tcp_echo, tcp_echo.port
    payload = os.urandom(64 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the whole payload came back"
            received += chunk
    assert received == payload
    # the image's healthcheck runs on PyPy too
    assert healthcheck_on(pypy, "tcp-echo", port).returncode == 0
    assert stop(process) == 0


def test_dns_on_pypy_answers_the_zone(dns_server: Process, pypy: Path) -> None:
    process, port = dns_server, dns_server.port
    assert dns_check(port) is None  # probe.polyloop.test A -> 192.0.2.10, from CPython
    health = healthcheck_on(pypy, "dns", port)
    assert health.returncode == 0, f"the dns healthcheck (dnspython) fails on PyPy: {health}"
    assert stop(process) == 0


def test_tcp_echo_on_pypy_names_where_its_reactor_blocked(pypy: Path, tmp_path: Path) -> None:
    token = secrets.token_urlsafe(16)
    control = free_port()
    env = {**PYPY_ENV, "POLYLOOP_ADMIN_TOKEN": token, "TCP_ECHO_METRICS_PORT": str(control)}
    process = start("tcp_echo", env, python=pypy, log=tmp_path / "tcp-echo.log")
    try:
        url = f"http://127.0.0.1:{control}"
        request = urllib.request.Request(
            f"{url}/faults",
            data=json.dumps({"block_ms": 300, "block_kind": "cpu"}).encode(),
            method="PUT",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        deadline = time.monotonic() + 2
        while True:
            with urllib.request.urlopen(f"{url}/stalls", timeout=2) as response:
                events = json.load(response)["events"]
            if events:
                break
            assert time.monotonic() < deadline, "no stall recorded"
            time.sleep(0.05)  # polling with a deadline
        [event] = events
        assert 250 <= event["duration_ms"] <= 450
        assert any("in block_with_cpu" in line for line in event["stack"]), event["stack"]
    finally:
        assert stop(process) == 0
