"""The stack's services as local processes, for development only (never in an image).

One place that knows how to start a service outside a container: the table of the five
services (from the stack catalogue: their module, every port they open, their healthcheck),
``start()`` that runs ``python -m services.<name>`` and polls the service's OWN healthcheck
(``python -m services.<name>.healthcheck``, the command compose runs) until it passes or a
deadline, and ``stop()`` that returns the exit code. The tests that start a service, the
benchmarks and ``make up`` without a Docker engine (``python -m devstack up``) all use it.

Every port a started service opens is free unless the caller names it in ``env``: a port
variable exported in the caller's environment (the running stack's ``WEB_PORT``...) is never
inherited, so a test's process cannot meet the stack's.

    from devstack import start, stop
    tcp_echo = start("tcp_echo", {"TCP_ECHO_MAX_CONNECTIONS": "3"})  # free ports are chosen
    tcp_echo.port                                                    # -> 40123
    assert stop(tcp_echo) == 0                                       # SIGTERM, exit code
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.common import catalogue

ROOT = Path(__file__).resolve().parent.parent
STARTUP_DEADLINE = 30.0  # PyPy needs most of it; CPython services answer within ~1 s
STOP_GRACE = 15.0  # tcp-echo drains for up to TCP_ECHO_DRAIN_SECONDS (10 s) on SIGTERM
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class Service:
    """One of the stack's services as the dev tools see it: its catalogue entry, named by its
    package (``tcp_echo``), with every port it opens."""

    entry: catalogue.Service

    @property
    def name(self) -> str:
        """The package under services/: tcp_echo."""
        return self.entry.package

    @property
    def label(self) -> str:
        """The compose service name: tcp-echo."""
        return self.entry.name

    @property
    def module(self) -> str:
        return self.entry.module

    @property
    def healthcheck(self) -> str:
        """The module compose runs as the container's healthcheck (exit 0 = healthy)."""
        return self.entry.healthcheck

    @property
    def pypy(self) -> bool:
        """Runs on build/pypy-venv with POLYLOOP_PYPY=1 (the Twisted ones)."""
        return self.entry.pypy

    @property
    def ports(self) -> dict[str, int]:
        """The variable of every port it opens -> its README default: its own port (the one
        its healthcheck probes) first, then its metrics port."""
        entry = self.entry
        return {entry.port_variable: entry.port, entry.metrics_port_variable: entry.metrics_port}

    @property
    def port_variable(self) -> str:
        return self.entry.port_variable


# in start order: every service after the ones it calls, the front last
SERVICES: dict[str, Service] = {entry.package: Service(entry) for entry in catalogue.start_order()}


class StartError(RuntimeError):
    """A service exited or missed its deadline while starting; the message ends with the
    tail of its log."""


@dataclass
class Process:
    """A running service started by ``start()``."""

    service: Service
    popen: subprocess.Popen
    env: dict[str, str]
    log: Path
    python: str
    # a log start() chose itself lives as long as this object (the directory goes with it)
    _own_log_dir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def port(self) -> int:
        """The port its healthcheck probes (TCP_ECHO_PORT, ...)."""
        return int(self.env[self.service.port_variable])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return self.log_text().splitlines()


def free_port() -> int:
    """A 127.0.0.1 port free for TCP and UDP alike (the dns service binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1")


def service_env(
    service: Service, env: Mapping[str, str | None] | None = None, *, base: Mapping[str, str]
) -> dict[str, str]:
    """`base` + LISTEN_HOST=127.0.0.1 + `env` (a None value removes a variable), with a free
    port for every port variable of `service` that `env` does not set: `base`'s are ignored
    (the caller's environment may hold the running stack's ports)."""
    env = dict(env or {})
    merged: dict[str, str | None] = {
        **{name: value for name, value in base.items() if name not in service.ports},
        "LISTEN_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    for variable in service.ports:
        if not env.get(variable):
            merged[variable] = str(free_port())
    return {name: value for name, value in merged.items() if value is not None}


def check(service: Service, env: Mapping[str, str], python: str = sys.executable) -> str | None:
    """Run the service's healthcheck once: None when healthy, else the reason (its log line)."""
    try:
        done = subprocess.run(
            [python, "-m", service.healthcheck],
            cwd=ROOT,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "the healthcheck itself did not finish in 20 s"
    if done.returncode == 0:
        return None
    return (done.stdout + done.stderr).strip() or f"exit {done.returncode}"


def start(
    name: str,
    env: Mapping[str, str | None] | None = None,
    *,
    python: str | os.PathLike[str] = sys.executable,
    log: Path | None = None,
    deadline: float = STARTUP_DEADLINE,
    cpus: set[int] | None = None,
    base_env: Mapping[str, str] | None = None,
) -> Process:
    """Start ``python -m services.<name>`` on 127.0.0.1 and return once its healthcheck passes.

    `env` is added to `base_env` (default: this process's environment); a None value removes
    a variable; each port the service opens gets a free port unless `env` names it. Output
    (stdout and stderr) goes to `log` (default: a temporary file). `cpus` pins the process
    (the benchmarks). The process runs in its own session, so a Ctrl-C at the terminal does
    not reach it.
    Raises ``StartError`` with the tail of the log when it exits or misses `deadline` s.
    """
    service = SERVICES[name]
    python = os.fspath(python)
    full_env = service_env(service, env, base=os.environ if base_env is None else base_env)
    own_dir = None
    if log is None:
        own_dir = tempfile.TemporaryDirectory(prefix=f"devstack-{name}-")
        log = Path(own_dir.name) / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        popen = subprocess.Popen(
            [python, "-m", service.module],
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    process = Process(service, popen, full_env, log, python, own_dir)
    wait_healthy(process, deadline)
    return process


def bound(port: int) -> bool:
    """Has some process bound `port` (a listening TCP socket or a UDP socket)? Read from
    /proc/net, so it costs nothing and takes no port: the cheap wait before a healthcheck,
    which is a whole Python process and whose DNS query waits its full timeout until then."""
    wanted = f":{port:04X}"
    for table, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:  # no /proc (not Linux): the healthcheck alone decides
            return True
        for line in lines:
            fields = line.split()
            if fields[1].endswith(wanted) and fields[3] == state:
                return True
    return False


def wait_healthy(process: Process, deadline: float = STARTUP_DEADLINE) -> None:
    """Poll the healthcheck until it passes; on exit or timeout stop it, raise StartError."""
    give_up = time.monotonic() + deadline
    while (
        reason := check(process.service, process.env, process.python)
        if bound(process.port)
        else "not listening yet"
    ) is not None:
        if process.popen.poll() is not None:
            raise StartError(
                f"{process.service.label} exited with {process.popen.returncode} while starting;"
                f" {tail(process.log)}"
            )
        if time.monotonic() > give_up:
            stop(process)
            raise StartError(
                f"{process.service.label} not healthy after {deadline:.0f} s ({reason});"
                f" {tail(process.log)}"
            )
        time.sleep(0.1)  # polling interval between two healthchecks, not synchronisation


def stop(process: Process, grace: float = STOP_GRACE) -> int:
    """SIGTERM, wait up to `grace` s (then SIGKILL); return the exit code (negative: signal)."""
    if process.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.popen.send_signal(signal.SIGTERM)
        try:
            process.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait(timeout=10)
    return process.popen.returncode


def tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log, introduced by where it is."""
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return f"no log at {log}: {exc}"
    return f"last {len(text)} lines of {log}:\n" + "\n".join(text)
