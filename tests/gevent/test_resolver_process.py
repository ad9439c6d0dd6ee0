"""``python -m services.resolver`` as a process: start, healthcheck, SIGTERM, bad config.

Needs nothing running: the service and a dns service are started on free ports.
Run: .venv/bin/pytest tests/gevent -p no:cacheprovider
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from devstack import ROOT, SERVICES, Process, free_port, service_env, start, stop


def healthcheck(port: int) -> int:
    return subprocess.run(
        [sys.executable, "-m", "services.resolver.healthcheck"],
        cwd=ROOT,
        env={**os.environ, "RESOLVER_PORT": str(port)},
        timeout=15,
        check=False,
    ).returncode


class Service:
    def __init__(self, started: Process) -> None:
        self.started = started
        self.process = started.popen
        self.port = started.port

    def log(self) -> list[dict]:
        return [json.loads(line) for line in self.started.log_lines() if line]


@pytest.fixture
def service(dns_port: int, tmp_path: Path) -> Iterator[Service]:
    env = {
        "DNS_HOST": "localhost",  # a host name, resolved once at start
        "DNS_PORT": str(dns_port),
        "RESOLVER_DRAIN_SECONDS": "3",
        "GEVENT_RESOLVER": None,  # unset: __main__ chooses
    }
    process = start("resolver", env, log=tmp_path / "resolver.log")
    try:
        yield Service(process)
    finally:
        stop(process)


def resolve(port: int, names: list[str], timeout: float = 5.0) -> dict:
    body = json.dumps({"names": names, "timeout": timeout}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/resolve", data=body)
    with urllib.request.urlopen(request, timeout=timeout + 5) as response:
        return json.load(response)


def test_it_serves_and_logs_json(service: Service) -> None:
    document = resolve(service.port, ["www.polyloop.test"])
    assert document["results"][0]["addresses"] == ["192.0.2.10", "2001:db8::10"]
    entries = service.log()
    started = next(entry for entry in entries if entry["msg"] == "listening")
    assert started["service"] == "resolver"
    assert started["gevent_resolver"] == "dnspython"
    assert started["dns"].startswith("127.0.0.1:")
    assert any(entry["msg"] == "resolved" and entry["names"] == 1 for entry in entries)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


def test_thousands_of_odd_methods_leave_rss_and_metrics_flat(service: Service) -> None:
    # the attack of issue 8: distinct 4,000-character methods, each once
    def metrics_bytes() -> int:
        # the loop-lag series grow their values with time, not with requests: left out
        lines = metrics(service.port)
        return sum(len(line) + 1 for line in lines if "polyloop_event_loop" not in line)

    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
        replies = sock.makefile("rb")

        def odd_requests(count: int) -> None:
            for _ in range(count):
                method = ("M" + uuid.uuid4().hex.upper() * 125)[:4000]
                sock.sendall(f"{method} /healthz HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                length = 0
                while (line := replies.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                assert len(replies.read(length)) == length

        odd_requests(500)  # warm up: the allocator's first arenas are not a leak
        rss, size = rss_mib(service.process.pid), metrics_bytes()
        odd_requests(3000)
    assert rss_mib(service.process.pid) - rss < 8  # the labels alone would be 12 MB
    assert metrics_bytes() - size < 200


def test_by_default_a_name_outside_the_zone_is_refused(service: Service) -> None:
    # refused before any lookup: nothing is asked of the system resolver
    results = resolve(service.port, ["outside.invalid", "www.polyloop.test"])["results"]
    assert [result["error"] for result in results] == ["refused", None]
    started = next(entry for entry in service.log() if entry["msg"] == "listening")
    assert started["external"] is False


def test_sigterm_finishes_the_request_in_flight_then_exits_0(service: Service) -> None:
    in_flight = gevent.spawn(resolve, service.port, ["a.delay-1000.polyloop.test"])
    deadline = time.monotonic() + 5
    while not any(  # wait until the service really holds the request
        "resolver_requests_in_flight 1.0" in line for line in metrics(service.port)
    ):
        assert time.monotonic() < deadline, "the request never reached the service"
        gevent.sleep(0.02)
    service.process.send_signal(signal.SIGTERM)
    document = in_flight.get(timeout=10)
    assert document["results"][0]["error"] is None
    assert service.process.wait(timeout=10) == 0
    assert any(entry["msg"] == "stopping" for entry in service.log())


def test_sigterm_when_idle_exits_0_quickly(service: Service) -> None:
    started = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert healthcheck(service.port) == 1


def test_sigterm_ends_idle_keep_alive_connections_at_once(service: Service) -> None:
    idle = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    idle.request("GET", "/healthz")
    with idle.getresponse() as response:
        assert response.status == 200
        response.read()
    # the connection stays open, idle: it must not hold the 3 s drain
    started = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 2.5
    idle.close()


def metrics(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode().splitlines()


def test_the_healthcheck_fails_when_nothing_listens() -> None:
    assert healthcheck(free_port()) == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RESOLVER_BACKEND", "ares"),
        ("RESOLVER_POOL_SIZE", "many"),
        ("RESOLVER_PORT", "70000"),
        ("RESOLVER_MAX_TIMEOUT", "-1"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_setting_stops_the_start_with_a_clear_message(variable: str, value: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "services.resolver"],
        cwd=ROOT,
        env=service_env(SERVICES["resolver"], {variable: value}, base=os.environ),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert finished.returncode == 2
    assert "Traceback" not in finished.stdout + finished.stderr
    error = json.loads(finished.stdout.splitlines()[-1])
    assert (error["level"], error["msg"]) == ("error", "invalid configuration")
    assert variable in error["error"]
