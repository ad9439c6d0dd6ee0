"""devstack, the dev-only process starter: start() waits on the service's own healthcheck,
fails with the tail of its log, stop() returns the exit code; ``python -m devstack`` is the
local mode of ``make up``. Starts real services on free 127.0.0.1 ports; nothing else needs
to run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import ROOT, SERVICES, StartError, bound, check, free_port, start, stop
from services.common import catalogue
from tests.commands import run


def test_the_table_names_each_service_its_module_and_healthcheck() -> None:
    # the catalogue's services, each after the ones it depends on
    assert sorted(SERVICES) == sorted(s.package for s in catalogue.SERVICES)
    order = [service.label for service in SERVICES.values()]
    for service in catalogue.SERVICES:
        assert all(order.index(d) < order.index(service.name) for d in service.depends_on)
    for service in SERVICES.values():
        assert (ROOT / "services" / service.name / "__main__.py").is_file()
        assert (ROOT / "services" / service.name / "healthcheck.py").is_file()
        assert service.port_variable.endswith("_PORT")
    assert {name for name, service in SERVICES.items() if service.pypy} == {"dns", "tcp_echo"}


def test_start_waits_for_the_healthcheck_and_stop_returns_the_exit_code(tmp_path: Path) -> None:
    process = start("udp_echo", log=tmp_path / "udp.log")
    # start() returned: the service's own healthcheck passes now
    assert check(SERVICES["udp_echo"], process.env) is None
    assert stop(process) == 0
    assert "unhealthy" in (check(SERVICES["udp_echo"], process.env) or "")


def test_every_port_a_service_opens_is_free_unless_named_not_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the caller's environment holds the running stack's ports (make test exports them)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stack_metrics:
        stack_metrics.bind(("127.0.0.1", 0))
        stack_metrics.listen()
        monkeypatch.setenv("UDP_ECHO_METRICS_PORT", str(stack_metrics.getsockname()[1]))
        monkeypatch.setenv("UDP_ECHO_PORT", str(free_port()))
        process = start("udp_echo", log=tmp_path / "udp.log")
        try:
            assert set(SERVICES["udp_echo"].ports) == {"UDP_ECHO_PORT", "UDP_ECHO_METRICS_PORT"}
            for variable in SERVICES["udp_echo"].ports:
                assert process.env[variable] != os.environ[variable]
                assert bound(int(process.env[variable]))
        finally:
            assert stop(process) == 0


def test_a_service_that_exits_while_starting_fails_with_the_tail_of_its_log(
    tmp_path: Path,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        with pytest.raises(StartError, match="udp-echo exited with 1") as failure:
            start("udp_echo", {"UDP_ECHO_PORT": port}, log=tmp_path / "udp.log")
    assert "cannot listen" in str(failure.value)  # the service's own last log line


def test_a_service_that_never_gets_healthy_is_stopped_at_the_deadline(tmp_path: Path) -> None:
    # it runs, but drops every datagram over 1 byte: the healthcheck's payload never returns
    with pytest.raises(StartError, match=r"not healthy after 1 s") as failure:
        start(
            "udp_echo",
            {"UDP_ECHO_PORT": str(port := free_port()), "UDP_ECHO_MAX_DATAGRAM": "1"},
            log=tmp_path / "udp.log",
            deadline=1.0,
        )
    assert "udp echo listening" in str(failure.value)  # the tail of its log
    assert not bound(port), "start() left the unhealthy service running"


def test_free_port_is_free_for_tcp_and_udp() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))


def test_the_cli_refuses_an_unknown_command() -> None:
    done = run([sys.executable, "-m", "devstack", "restart"], timeout=30)
    assert done.returncode == 2
    assert "invalid choice: 'restart'" in done.stderr


def test_the_admin_token_is_made_once_into_dotenv_owner_only_and_an_explicit_one_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devstack.__main__ import admin_token

    monkeypatch.delenv("POLYLOOP_ADMIN_TOKEN", raising=False)
    env_file = tmp_path / ".env"
    first = admin_token(env_file)
    assert len(first) >= 32
    assert env_file.stat().st_mode & 0o077 == 0
    assert f"POLYLOOP_ADMIN_TOKEN={first}" in env_file.read_text().splitlines()
    assert admin_token(env_file) == first  # kept across `make up` runs
    monkeypatch.setenv("POLYLOOP_ADMIN_TOKEN", "given-by-the-user")
    assert admin_token(env_file) == "given-by-the-user"


def test_the_users_own_dotenv_keeps_its_lines(tmp_path: Path, monkeypatch) -> None:
    from devstack.__main__ import admin_token

    monkeypatch.delenv("POLYLOOP_ADMIN_TOKEN", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("POLYLOOP_BIND=127.0.0.1\nPOLYLOOP_ADMIN_TOKEN=\n")
    token = admin_token(env_file)
    assert env_file.read_text().splitlines()[0] == "POLYLOOP_BIND=127.0.0.1"
    assert env_file.read_text().count("POLYLOOP_ADMIN_TOKEN=") == 1
    assert admin_token(env_file) == token


def test_a_token_left_in_the_run_folder_is_taken_over(tmp_path: Path, monkeypatch) -> None:
    from devstack.__main__ import admin_token

    monkeypatch.delenv("POLYLOOP_ADMIN_TOKEN", raising=False)
    (tmp_path / ".run").mkdir()
    (tmp_path / ".run" / "admin-token").write_text("the-running-stacks-token\n")
    assert admin_token(tmp_path / ".env") == "the-running-stacks-token"


def test_compose_reads_the_token_from_dotenv_and_git_never_sees_it() -> None:
    """Every `docker compose` command interpolates POLYLOOP_ADMIN_TOKEN from .env, which
    git ignores and the image build never sends."""
    compose = (ROOT / "compose.yaml").read_text()
    assert "POLYLOOP_ADMIN_TOKEN: ${POLYLOOP_ADMIN_TOKEN:-}" in compose
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False, timeout=30
    )
    assert ignored.returncode == 0
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert dockerignore[0:1] == ["*"] or "*" in dockerignore  # everything, then exceptions
    assert not [line for line in dockerignore if ".env" in line and line.startswith("!")]
