"""The ``dns`` service as a process: config from the environment, healthcheck, SIGTERM.

Starts ``python -m services.dns`` itself on a free loopback port (nothing else needs to
run). Run: .venv/bin/pytest tests/unit/test_dns_main.py
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import devstack
from devstack import SERVICES, Process, free_port, start, stop
from tests.commands import run


def service_env(**extra: str) -> dict[str, str]:
    """The dns service's environment: none of the caller's DNS_ settings, `extra`, and a free
    port for every port it opens that `extra` does not name."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DNS_", "LISTEN_"))}
    return devstack.service_env(SERVICES["dns"], extra, base=base)


@pytest.fixture
def running_dns(tmp_path: Path) -> Iterator[Process]:
    process = start("dns", base_env=service_env(), log=tmp_path / "dns.log")
    try:
        yield process
    finally:
        stop(process)


def run_module(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m module`` to its end, in the dns service's environment plus ``env``."""
    return run([sys.executable, "-m", module], env=service_env(**env), timeout=30)


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    return run_module("services.dns.healthcheck", DNS_PORT=str(port))


def test_healthcheck_passes_then_sigterm_exits_0_quickly_and_it_fails(
    running_dns: Process,
) -> None:
    port = running_dns.port
    assert run_healthcheck(port).returncode == 0
    running_dns.popen.send_signal(signal.SIGTERM)
    # the contract: exit 0 within a few seconds of SIGTERM
    assert running_dns.popen.wait(timeout=5) == 0, running_dns.log_text()
    assert "Traceback" not in running_dns.log_text()
    # stdout and stderr both: every line is a JSON object
    records = [json.loads(line) for line in running_dns.log_lines()]
    assert all(record["service"] == "dns" for record in records)
    assert any(record["msg"] == "serving polyloop.test" for record in records)
    assert any(record["msg"].startswith("shutting down") for record in records)
    failed = run_healthcheck(port)
    assert failed.returncode == 1
    assert "unhealthy" in failed.stdout


def test_invalid_config_stops_the_start_with_a_clear_message() -> None:
    result = run_module("services.dns", DNS_PORT="70000")
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["level"] == "error"
    assert record["msg"] == "invalid configuration"
    assert "DNS_PORT" in record["error"]


def test_port_in_use_exits_1_without_traceback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run_module("services.dns", DNS_PORT=str(port))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert any(json.loads(line)["msg"] == "cannot listen" for line in result.stdout.splitlines())


def test_a_broken_zone_file_stops_the_start_with_its_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zone"
    broken.write_text("$ORIGIN polyloop.test.\nwww IN A not-an-address\n", encoding="ascii")
    result = run_module("services.dns", DNS_PORT=str(free_port()), DNS_ZONE_FILE=str(broken))
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    # the reactor ran (the zone is loaded on the reactor main() is handed): its own
    # "Main loop terminated." may follow, at info
    (record,) = [record for record in records if record["level"] == "error"]
    assert record["msg"] == "cannot load the zone file"
    assert record["zone_file"] == str(broken)
    assert record["error"]  # the parser's reason
