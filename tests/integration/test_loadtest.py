"""`make load` against the running stack: it passes its gates, and fails an impossible budget.

Needs every service of the stack running (`make up`, or local processes) at the
addresses of the README's variables; the module fails in CI / skips elsewhere if
one does not answer. Locust runs as a subprocess through scripts/load_gates.sh,
the `make load` recipe itself, bounded in users and time: it patches the process
with gevent, so it is never imported here.
"""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.commands import run_load_gates
from tests.stack import Stack, tcp_answers, unavailable

USER_TYPES = ("WebUser", "ResolverUser", "TcpEchoUser", "UdpEchoUser", "DnsUser")


def udp_echo_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(b"loadtest probe", (host, port))
            return sock.recvfrom(2048)[0] == b"loadtest probe"
        except OSError:
            return False


@pytest.fixture(scope="module", autouse=True)
def whole_stack(stack: Stack) -> None:
    for what, port in [
        ("web", stack.web_port),
        ("tcp-echo", stack.tcp_echo_port),
        ("resolver", stack.resolver_port),
        ("dns (TCP)", stack.dns_port),
    ]:
        if not tcp_answers(stack.host, port):
            unavailable(f"{what} on {stack.host}:{port}")
    if not udp_echo_answers(stack.host, stack.udp_echo_port):
        unavailable(f"udp-echo on {stack.host}:{stack.udp_echo_port}")


def run_load(
    stack: Stack, reports: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`make load` with the stack's addresses, small and bounded, reports under `reports`."""
    return run_load_gates(reports, args, {**stack.address_env(), **env}, timeout=90)


@pytest.fixture
def lenient(tmp_path: Path) -> str:
    """Budgets for runs that test which users run, not how fast: a few samples are noisy."""
    path = tmp_path / "lenient.toml"
    path.write_text("max_fail_ratio = 0.5\n[p95_ms]\ndefault = 10000\n")
    return str(path)


def outcome(run: subprocess.CompletedProcess[str]) -> str:
    return run.stdout[-3000:] + run.stderr[-3000:]


def stats_rows(reports: Path) -> list[dict[str, str]]:
    with open(reports / "load_stats.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_a_short_load_passes_its_gates_with_every_user_type(stack: Stack, tmp_path: Path) -> None:
    run = run_load(stack, tmp_path, LOAD_USERS="10", LOAD_RATE="10", LOAD_TIME="8s")
    assert run.returncode == 0, outcome(run)
    assert "passed every gate" in run.stderr
    assert (tmp_path / "report.html").stat().st_size > 0
    rows = stats_rows(tmp_path)
    total = next(row for row in rows if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0, (tmp_path / "load_failures.csv").read_text()
    # each user type shows in the same CSV as HTTP: TCP, UDP and DNS rows beside the APIs'
    kinds = {(row["Type"], row["Name"]) for row in rows}
    assert {kind for kind, _ in kinds} >= {"TCP", "UDP", "DNS", "GET", "POST"}
    assert any(name.startswith(("/api/", "/ (dashboard)")) for _, name in kinds)  # WebUser
    assert any(name.startswith(("/resolve", "/healthz")) for _, name in kinds)  # ResolverUser
    spawned = run.stderr[run.stderr.index("All users spawned") :].splitlines()[0]
    assert all(f'"{user}": 2' in spawned for user in USER_TYPES), spawned


def test_a_budget_that_cannot_be_met_fails_the_run(stack: Stack, tmp_path: Path) -> None:
    budgets = tmp_path / "impossible.toml"
    budgets.write_text("max_fail_ratio = 0.005\n[p95_ms]\ndefault = 0.001\n")
    run = run_load(
        stack,
        tmp_path,
        "--tags",
        "dns",
        "udp",
        LOAD_USERS="4",
        LOAD_RATE="4",
        LOAD_TIME="4s",
        LOAD_BUDGETS=str(budgets),
    )
    assert run.returncode == 1, outcome(run)
    assert "gate breached" in run.stderr
    assert "above its 0.001 ms budget" in run.stderr
    assert (tmp_path / "report.html").stat().st_size > 0  # the report is written all the same


def test_tags_choose_the_users(stack: Stack, tmp_path: Path, lenient: str) -> None:
    run = run_load(
        stack, tmp_path, "--tags", "dns", LOAD_USERS="2", LOAD_TIME="3s", LOAD_BUDGETS=lenient
    )
    assert run.returncode == 0, outcome(run)
    assert 'All users spawned: {"DnsUser": 2}' in run.stderr
    assert {row["Type"] for row in stats_rows(tmp_path)} == {"DNS", ""}  # "" is Aggregated


def test_a_class_name_chooses_the_user(stack: Stack, tmp_path: Path, lenient: str) -> None:
    run = run_load(
        stack, tmp_path, "TcpEchoUser", LOAD_USERS="2", LOAD_TIME="3s", LOAD_BUDGETS=lenient
    )
    assert run.returncode == 0, outcome(run)
    assert 'All users spawned: {"TcpEchoUser": 2}' in run.stderr


@pytest.mark.parametrize(
    ("shape", "counts"),
    [
        ("step", ["2 users", "4 users", "6 users", "8 users", "10 users"]),
        ("spike", ["2 users", "10 users"]),
    ],
)
def test_a_shape_is_chosen_by_load_shape(
    stack: Stack, tmp_path: Path, lenient: str, shape: str, counts: list[str]
) -> None:
    run = run_load(
        stack,
        tmp_path,
        "--tags",
        "udp",
        LOAD_SHAPE=shape,
        LOAD_USERS="10",
        LOAD_TIME="5s",
        LOAD_BUDGETS=lenient,
    )
    assert run.returncode == 0, outcome(run)
    steps = [line for line in run.stderr.splitlines() if "Shape test updating to" in line]
    for count in counts:
        assert any(f"updating to {count}" in line for line in steps), steps
    assert "Shape test completed" in run.stderr  # the shape stopped the run by itself


def active_faults(stack: Stack) -> dict[str, bool]:
    with urllib.request.urlopen(f"{stack.web_url}/api/faults", timeout=10) as response:
        listed = json.load(response)["services"]
    return {service: state.get("active", False) for service, state in listed.items()}


def test_load_faults_are_set_through_the_front_the_users_load(
    stack: Stack, tmp_path: Path, lenient: str
) -> None:
    # no --host: the front is WEB_HOST/WEB_PORT, as WebUser finds it
    run = run_load(
        stack,
        tmp_path,
        "--tags",
        "udp",
        LOAD_USERS="2",
        LOAD_TIME="4s",
        LOAD_BUDGETS=lenient,
        LOAD_FAULTS="udp-echo@0+30:latency_ms=300",
    )
    assert run.returncode == 0, outcome(run)
    assert f"LOAD_FAULTS: 1 fault(s) to set through {stack.web_url}" in run.stderr
    assert "LOAD_FAULTS: udp-echo set at 0 s (200)" in run.stderr
    # the fault reached the loop: the echoes sent once it was set (most of them) waited
    (echo,) = [row for row in stats_rows(tmp_path) if row["Name"] == "echo 64 B"]
    assert float(echo["Median Response Time"]) >= 300, echo
    assert active_faults(stack)["udp-echo"] is False  # cleared at the run's end
