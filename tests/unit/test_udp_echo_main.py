"""The udp-echo process, its healthcheck and its probe, run as subprocesses on a free port.

Needs nothing running: each test starts what it uses on 127.0.0.1 and stops it.
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

from devstack import ROOT, Process, free_port, start, stop
from services.udp_echo import probe
from services.udp_echo.healthcheck import check as udp_echo_check
from tests.commands import run

PROBE_SOURCE = Path(probe.__file__).read_text()


def run_module(module: str, *args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture(params=["asyncio", "uvloop"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Process]:
    """udp-echo on a free port (devstack), on each event loop (UDP_ECHO_LOOP); its own
    "listening" line names the loop it runs on."""
    env = {"UDP_ECHO_LOOP": request.param}
    process = start("udp_echo", env, log=tmp_path / f"udp-echo-{request.param}.log")
    try:
        first = json_lines(process.log_text())[0]
        assert (first["msg"], first["loop"]) == ("udp echo listening", request.param)
        yield process
    finally:
        stop(process)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_exits_0_at_once(service: Process, signum: signal.Signals) -> None:
    assert udp_echo_check(service.port) is None
    service.popen.send_signal(signum)
    assert service.popen.wait(timeout=5) == 0, service.log_text()
    # stdout and stderr share the log: every line JSON means nothing raw on stderr
    lines = json_lines(service.log_text())
    assert [line["msg"] for line in lines[1:]] == [
        "control port listening",
        "stopping",
        "udp echo closed",
    ]
    # ours, after the healthcheck devstack waited on (2 datagrams if its first try timed
    # out): the stack's own probes, never counted as echoed for a client
    assert lines[-1]["probes"] in {2, 3}
    assert lines[-1]["echoed"] == 0


def test_a_bad_setting_exits_2_with_one_clear_line() -> None:
    proc = run_module("services.udp_echo", env={"UDP_ECHO_MAX_DATAGRAM": "lots"})
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    (line,) = json_lines(out)
    assert line["level"] == "error"
    assert "UDP_ECHO_MAX_DATAGRAM" in line["error"]
    assert err == ""


def test_a_port_in_use_exits_1_with_one_clear_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = run_module("services.udp_echo", env={"UDP_ECHO_PORT": str(port)})
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert json_lines(out)[-1]["msg"] == "cannot listen"
    assert err == ""


def test_healthcheck_exits_0_when_it_echoes(service: Process) -> None:
    check = run_module("services.udp_echo.healthcheck", env={"UDP_ECHO_PORT": str(service.port)})
    out, _ = check.communicate(timeout=10)
    assert check.returncode == 0, out


def test_healthcheck_exits_1_when_nothing_answers() -> None:
    port = free_port()
    check = run_module("services.udp_echo.healthcheck", env={"UDP_ECHO_PORT": str(port)})
    out, err = check.communicate(timeout=10)
    assert check.returncode == 1
    (line,) = json_lines(out)
    assert (line["msg"], line["port"]) == ("unhealthy", port)
    assert "ConnectionRefusedError" in line["reason"]
    assert err == ""


def run_piped_probe(*args: str) -> dict:
    # from /tmp with isolated mode: proves the piped probe needs nothing but the stdlib
    done = run([sys.executable, "-I", "-", *args], input=PROBE_SOURCE, timeout=10, cwd="/tmp")
    assert done.stderr == ""
    return json.loads(done.stdout)


def test_probe_as_a_module_and_piped_on_stdin(service: Process) -> None:
    port = service.port
    module = run_module(
        "services.udp_echo.probe", "127.0.0.1", str(port), "--source-port", "0", env={}
    )
    out, _ = module.communicate(timeout=10)
    assert module.returncode == 0
    assert json.loads(out)["replied"] is True
    piped = run_piped_probe("127.0.0.1", str(port), "--source-port", "0")
    assert piped["replied"] is True
    assert piped["sent"] is True
    assert piped["source_port"] >= 1024


def free_privileged_port() -> int:
    for port in range(1023, 899, -1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except PermissionError:
                pytest.skip("binding a port below 1024 needs root or CAP_NET_BIND_SERVICE")
            except OSError:  # in use: the next one
                continue
            return port
    pytest.skip("no free UDP port below 1024")


def test_probe_from_a_privileged_port_gets_no_reply(service: Process) -> None:
    port = service.port
    source = free_privileged_port()
    result = run_piped_probe("127.0.0.1", str(port), "--source-port", str(source))
    assert result["error"] is None
    assert result["sent"] is True
    assert result["source_port"] == source
    assert result["replied"] is False


def test_probe_reports_a_failure_to_send() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("0.0.0.0", 0))
        in_use = str(taken.getsockname()[1])
        result = run_piped_probe("127.0.0.1", "9", "--source-port", in_use)
    assert result["sent"] is False
    assert result["replied"] is False
    assert "Address already in use" in result["error"]


def test_probe_rejects_an_impossible_port() -> None:
    done = run(
        [sys.executable, "-", "127.0.0.1", "9", "--source-port", "70000"],
        input=PROBE_SOURCE,
        timeout=10,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "0..65535" in done.stderr
