"""The load suite's own guard rails, checked without the stack: nothing here needs a service.

Locust runs as a subprocess through scripts/load_gates.sh (the `make load` recipe); a
wrong setting must stop the run at start with a clear message, and load never goes
anywhere but loopback or the stack's containers. The one run that sends traffic aims
at a closed UDP port on 127.0.0.1, to show the failure-ratio gate failing the run.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from devstack import start, stop
from tests.commands import LOCUST, run, run_load_gates


def run_load(reports: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    small = {"LOAD_USERS": "2", "LOAD_RATE": "2", "LOAD_TIME": "3s"}
    return run_load_gates(reports, args, {**small, **env}, timeout=60)


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_user_type_is_listed() -> None:
    listing = run([LOCUST, "-f", "loadtest", "--list"], timeout=60)
    assert listing.returncode == 0, listing.stderr
    listed = {line.strip() for line in listing.stdout.splitlines()}
    assert listed >= {"WebUser", "TcpEchoUser", "UdpEchoUser", "DnsUser", "ResolverUser"}


def test_failures_above_the_ratio_fail_the_run(tmp_path: Path) -> None:
    run = run_load(tmp_path, "UdpEchoUser", UDP_ECHO_PORT=str(closed_udp_port()))
    assert run.returncode == 1, run.stderr[-4000:]
    assert "gate breached: failure ratio 100.00%" in run.stderr
    assert (tmp_path / "load_failures.csv").read_text().count("UDP") >= 1


def test_an_unreadable_budgets_file_stops_the_run_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "budgets.toml"
    bad.write_text("max_fail_ratio = [not toml\n")
    run = run_load(tmp_path, LOAD_BUDGETS=str(bad))
    assert run.returncode == 1
    assert f"loadtest gates: {bad}: not valid TOML" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "report.html").exists()  # stopped before any load


def test_a_budgets_file_without_a_default_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "budgets.toml"
    bad.write_text('max_fail_ratio = 0.005\n[p95_ms]\n"TCP echo 64 B" = 100\n')
    run = run_load(tmp_path, "--budgets", str(bad))
    assert run.returncode == 1
    assert "needs a [p95_ms] table with a `default` budget" in run.stderr


def test_an_unknown_shape_is_refused(tmp_path: Path) -> None:
    run = run_load(tmp_path, LOAD_SHAPE="sawtooth")
    assert run.returncode == 1
    assert "LOAD_SHAPE='sawtooth': expected step, spike" in run.stderr


def test_a_target_outside_the_stack_is_refused(tmp_path: Path) -> None:
    # 192.0.2.1 is a documentation address: refused before any packet could leave
    run = run_load(tmp_path, WEB_HOST="192.0.2.1")
    assert run.returncode == 1
    assert "WEB_HOST='192.0.2.1': load goes only to loopback or the stack's containers" in (
        run.stderr
    )


def test_a_host_option_outside_the_stack_is_refused(tmp_path: Path) -> None:
    run = run_load(tmp_path, "--host", "http://192.0.2.1:8080")
    assert run.returncode == 1
    assert "--host http://192.0.2.1:8080: load goes only to loopback" in run.stderr


def test_a_fault_schedule_without_a_front_stops_the_run_at_init(tmp_path: Path) -> None:
    closed = closed_udp_port()  # nothing listens on it over TCP either
    run = run_load(tmp_path, LOAD_FAULTS="dns@1+5:latency_ms=5", WEB_PORT=str(closed))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    (line,) = [line for line in run.stderr.splitlines() if "LOAD_FAULTS" in line]
    assert line.startswith(f"LOAD_FAULTS: the front at http://127.0.0.1:{closed} does not answer")
    assert not (tmp_path / "report.html").exists()  # stopped before any load


def test_a_fault_schedule_against_a_front_with_faults_off_stops_the_run(tmp_path: Path) -> None:
    front = start("web", {"WEB_FAULTS": "0", "LOG_LEVEL": "WARNING"}, log=tmp_path / "web.log")
    try:
        run = run_load(tmp_path, LOAD_FAULTS="dns@1+5:latency_ms=5", WEB_PORT=str(front.port))
    finally:
        stop(front)
    assert run.returncode == 1
    assert f"LOAD_FAULTS: fault injection is off at http://127.0.0.1:{front.port}" in run.stderr
    assert not (tmp_path / "report.html").exists()


def test_a_fault_schedule_with_a_typo_stops_the_run_in_one_line(tmp_path: Path) -> None:
    run = run_load(tmp_path, LOAD_FAULTS="dns@1+5:latncy_ms=5")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "LOAD_FAULTS 'dns@1+5:latncy_ms=5': latncy_ms: unknown field" in run.stderr


def test_a_bad_timeout_is_refused_at_init(tmp_path: Path) -> None:
    run = run_load(tmp_path, LOAD_TIMEOUT="0")
    assert run.returncode == 1
    assert "loadtest: LOAD_TIMEOUT=0: must be in (0, 60] seconds" in run.stderr
