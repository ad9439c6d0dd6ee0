"""The real tcp-echo process on a free 127.0.0.1 port, started by the test with small
limits and polled until it answers: connection limit, SIGTERM, back-pressure under a
peer that never reads, the healthcheck. Nothing else needs to be running."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import ROOT, SERVICES, Process, free_port, service_env, start, stop
from services.tcp_echo.__main__ import endpoint_description
from services.tcp_echo.config import TcpEchoConfig

MiB = 1024 * 1024


@dataclass
class Service:
    started: Process

    @property
    def process(self) -> subprocess.Popen:
        return self.started.popen

    @property
    def port(self) -> int:
        return self.started.port

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def log_lines(self) -> list[str]:
        return self.started.log_lines()

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS for the service process")


StartService = Callable[..., Service]


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[StartService]:
    """Start `python -m services.tcp_echo` on a free port (devstack), stopped after the test."""
    started: list[Process] = []

    def start_service(**env: str) -> Service:
        process = start("tcp_echo", env, log=tmp_path / f"tcp-echo-{len(started)}.log")
        started.append(process)
        return Service(process)

    yield start_service
    for process in started:
        stop(process)


def echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed this connection (EOF or reset) within the socket timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def flood_until_stalled(
    sock: socket.socket, limit: int, sent_digest: hashlib._Hash, deadline: float
) -> int:
    """Send a numbered pattern without reading until a send stalls for 1 s (or `limit`)."""
    sock.settimeout(1.0)
    sent = 0
    block = 0
    while sent < limit and time.monotonic() < deadline:
        data = memoryview(block.to_bytes(4, "big") * (MiB // 4))
        block += 1
        while data:
            try:
                count = sock.send(data)
            except TimeoutError:
                return sent
            sent_digest.update(data[:count])
            sent += count
            data = data[count:]
    return sent


def test_echoes_over_a_real_socket_and_the_healthcheck_agrees(
    service_factory: StartService,
) -> None:
    service = service_factory()
    with service.connect() as sock:
        assert echo(sock, b"hello, world!") == b"hello, world!"
    env = {**os.environ, "TCP_ECHO_PORT": str(service.port)}
    check = [sys.executable, "-m", "services.tcp_echo.healthcheck"]
    assert subprocess.run(check, cwd=ROOT, env=env, timeout=10).returncode == 0
    env["TCP_ECHO_PORT"] = str(free_port())  # nothing listens there
    failed = subprocess.run(check, cwd=ROOT, env=env, timeout=10, capture_output=True)
    assert failed.returncode == 1
    assert b"no echo from 127.0.0.1" in failed.stdout


def test_invalid_config_fails_the_start_with_a_clear_message() -> None:
    env = {"TCP_ECHO_MAX_CONNECTIONS": "lots"}
    result = subprocess.run(
        [sys.executable, "-m", "services.tcp_echo"],
        cwd=ROOT,
        env=service_env(SERVICES["tcp_echo"], env, base=os.environ),
        capture_output=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert b"TCP_ECHO_MAX_CONNECTIONS='lots': expected an integer" in result.stdout
    assert b"Traceback" not in result.stdout + result.stderr


def test_endpoint_string_quotes_an_ipv6_interface() -> None:
    assert endpoint_description(TcpEchoConfig(listen_host="::")) == (
        "tcp:port=8000:interface=\\:\\::backlog=1024"
    )


def test_connection_limit_refuses_beyond_it_and_logs_once(service_factory: StartService) -> None:
    service = service_factory(TCP_ECHO_MAX_CONNECTIONS="3")
    held = [service.connect() for _ in range(3)]
    try:
        for index, sock in enumerate(held):
            assert echo(sock, b"held %d" % index) == b"held %d" % index
        for _ in range(5):
            with service.connect() as extra:
                assert closed_by_server(extra), "a connection beyond the limit was served"
        held.pop().close()

        def accepted_again() -> bool:
            with service.connect() as sock:
                try:
                    return echo(sock, b"back") == b"back"
                except ConnectionResetError:
                    return False

        wait_for(accepted_again, 10, "a free slot after closing a connection")
        wait_for(
            lambda: any("accepting again after refusing" in line for line in service.log_lines()),
            5,
            "the end-of-burst log line",
        )
        lines = service.log_lines()
        assert sum("connection limit reached" in line for line in lines) == 1
    finally:
        for sock in held:
            sock.close()


def test_sigterm_closes_idle_clients_cleanly_and_exits_0(service_factory: StartService) -> None:
    service = service_factory()
    with service.connect() as client:
        assert echo(client, b"before") == b"before"
        service.process.send_signal(signal.SIGTERM)
        assert client.recv(1) == b"", "expected a clean close (EOF), not a reset"
    assert service.process.wait(timeout=5) == 0


def test_sigterm_stops_accepting_and_aborts_a_peer_that_never_reads(
    service_factory: StartService,
) -> None:
    service = service_factory(TCP_ECHO_DRAIN_SECONDS="5")
    stuck = service.connect()
    try:
        deadline = time.monotonic() + 30
        flood_until_stalled(stuck, 256 * MiB, hashlib.sha256(), deadline)
        service.process.send_signal(signal.SIGTERM)

        def refuses_new_connections() -> bool:
            try:
                service.connect(timeout=0.5).close()
            except OSError:
                return True
            return False

        wait_for(refuses_new_connections, 3, "the listening port to close after SIGTERM")
        assert service.process.poll() is None, "exited before the drain grace for the stuck peer"
        assert service.process.wait(timeout=5 + 5) == 0
    finally:
        stuck.close()


def test_peer_that_never_reads_keeps_memory_bounded_and_others_served(
    service_factory: StartService,
) -> None:
    service = service_factory()
    baseline = service.rss_kib()
    sent_digest, received_digest = hashlib.sha256(), hashlib.sha256()
    deadline = time.monotonic() + 60
    with service.connect() as flooder:
        sent = flood_until_stalled(flooder, 200 * MiB, sent_digest, deadline)
        assert sent < 200 * MiB, "the server kept reading a peer that never reads"
        growth_mib = (service.rss_kib() - baseline) / 1024
        assert growth_mib < 64, f"server RSS grew {growth_mib:.0f} MiB under a non-reading peer"

        with service.connect() as other:
            assert echo(other, b"still served") == b"still served"

        # the peer reads now: the server resumes and every byte comes back, in order
        flooder.settimeout(5.0)
        received = 0
        while received < sent and time.monotonic() < deadline:
            chunk = flooder.recv(MiB)
            if not chunk:
                break
            received_digest.update(chunk)
            received += len(chunk)
        assert received == sent
        assert received_digest.digest() == sent_digest.digest()


def test_idle_connection_is_closed_by_the_running_service(service_factory: StartService) -> None:
    service = service_factory(TCP_ECHO_IDLE_TIMEOUT="0.4")
    with service.connect(timeout=5) as client:
        assert echo(client, b"then silence") == b"then silence"
        assert client.recv(1) == b"", "expected a clean close of the idle connection"


def test_every_log_field_is_a_json_key(service_factory: StartService) -> None:
    service = service_factory(TCP_ECHO_MAX_CONNECTIONS="7")
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=15) == 0
    lines = [json.loads(line) for line in service.log_lines()]  # every line is JSON
    listening = next(line for line in lines if line["msg"].startswith("listening on"))
    assert (listening["logger"], listening["port"], listening["limit"]) == (
        "tcp_echo",
        service.port,
        7,
    )
    stopped = next(line for line in lines if line["msg"].startswith("stopped:"))
    assert stopped["total"] >= 1  # devstack's healthcheck connected once
