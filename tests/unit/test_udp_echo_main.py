"""The udp-echo process, its healthcheck and its probe, run as subprocesses on a free port.

Needs nothing running: each test starts what it uses on 127.0.0.1 and stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.udp_echo import probe
from services.udp_echo.healthcheck import echo_round_trip
from tests.stack import METRICS_ON_ANY_PORT, ROOT

PROBE_SOURCE = Path(probe.__file__).read_text()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_module(module: str, *args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **METRICS_ON_ANY_PORT, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


class Service:
    """A running `python -m services.udp_echo`, its stdout read line by line by a thread."""

    def __init__(self, port: int, loop: str = "asyncio") -> None:
        self.port = port
        self.proc = run_module(
            "services.udp_echo", env={"UDP_ECHO_PORT": str(port), "UDP_ECHO_LOOP": loop}
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def first_message(self, timeout: float = 15) -> str:
        return self.first_line(timeout)["msg"]

    def first_line(self, timeout: float = 15) -> dict:
        try:
            self.first = json.loads(self.lines.get(timeout=timeout))
            return self.first
        except queue.Empty:
            self.proc.kill()
            pytest.fail(f"udp-echo said nothing in {timeout}s: {self.proc.communicate()[1]}")

    def stop(self, timeout: float = 5) -> tuple[int, list[dict], str]:
        """Wait for the exit: (return code, the JSON lines after the first, stderr)."""
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        self._reader.join(timeout=10)
        rest = []
        while not self.lines.empty():
            rest.append(json.loads(self.lines.get_nowait()))
        return self.proc.wait(), rest, err


@pytest.fixture(params=["asyncio", "uvloop"])
def service(request: pytest.FixtureRequest) -> Iterator[Service]:
    """udp-echo on a free port, on each event loop (UDP_ECHO_LOOP); its own "listening"
    line proves the port is its own and names the loop it runs on."""
    for _ in range(3):
        started = Service(free_udp_port(), request.param)
        if started.first_message() == "udp echo listening":
            assert started.first["loop"] == request.param
            break
        started.stop()  # the port was taken between our probe and its bind: another one
    else:
        pytest.fail("udp-echo could not bind a free port in 3 tries")
    try:
        yield started
    finally:
        started.stop(timeout=0)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_exits_0_at_once(service: Service, signum: signal.Signals) -> None:
    assert echo_round_trip("127.0.0.1", service.port)
    service.proc.send_signal(signum)
    returncode, lines, err = service.stop(timeout=5)
    assert returncode == 0, err
    assert [line["msg"] for line in lines] == [
        "metrics endpoint listening",
        "stopping",
        "udp echo closed",
    ]
    assert lines[-1]["echoed"] == 1
    assert err == ""


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


def test_healthcheck_exits_0_when_it_echoes(service: Service) -> None:
    check = run_module("services.udp_echo.healthcheck", env={"UDP_ECHO_PORT": str(service.port)})
    out, _ = check.communicate(timeout=10)
    assert check.returncode == 0, out


def test_healthcheck_exits_1_when_nothing_answers() -> None:
    check = run_module("services.udp_echo.healthcheck", env={"UDP_ECHO_PORT": str(free_udp_port())})
    out, _ = check.communicate(timeout=10)
    assert check.returncode == 1
    assert json_lines(out)[-1]["msg"] == "udp echo unhealthy"


def run_piped_probe(*args: str) -> dict:
    # from /tmp with isolated mode: proves the piped probe needs nothing but the stdlib
    done = subprocess.run(
        [sys.executable, "-I", "-", *args],
        input=PROBE_SOURCE,
        capture_output=True,
        text=True,
        timeout=10,
        cwd="/tmp",
        check=False,
    )
    assert done.stderr == ""
    return json.loads(done.stdout)


def test_probe_as_a_module_and_piped_on_stdin(service: Service) -> None:
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


def test_probe_from_a_privileged_port_gets_no_reply(service: Service) -> None:
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
    done = subprocess.run(
        [sys.executable, "-", "127.0.0.1", "9", "--source-port", "70000"],
        input=PROBE_SOURCE,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "0..65535" in done.stderr
