"""Starting servers for a benchmark cell and always stopping them again.

Every server binds 127.0.0.1 on a free port, is pinned to the server core when the
machine has more than one, and is killed (SIGTERM, then SIGKILL) when its ``Servers``
block ends, even when the cell failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import devstack
from devstack import free_port

__all__ = ["ROOT", "Servers", "cores", "free_port", "tcp_ready", "udp_echo_ready"]

ROOT = Path(__file__).resolve().parent.parent
LOG = logging.getLogger("bench.procs")


def cores() -> tuple[set[int], set[int]]:
    """(server cores, client cores): disjoint when this process may use two or more."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return set(allowed), set(allowed)
    return {allowed[0]}, set(allowed[1:])


def tcp_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def udp_echo_ready(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        try:
            sock.sendto(b"ping", ("127.0.0.1", port))
            return sock.recvfrom(2048)[0] == b"ping"
        except OSError:
            return False


class Servers(contextlib.AbstractContextManager):
    """The processes of one cell; ``start`` them, leave the block to stop them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen(  # noqa: S603 - argv built by the harness, no shell
            list(argv),
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: a killed server takes its children
            # pinned before exec, so the children it forks inherit the core
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def start_service(
        self, name: str, env: dict[str, str], cpus: set[int] | None = None, **options
    ) -> devstack.Process:
        """One of the stack's services via devstack (its own healthcheck says when it is up),
        stopped with the others when the block ends."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        process = devstack.start(name, env, cpus=cpus, log=self.log_dir / f"{name}.log", **options)
        self.procs.append((name, process.popen))  # its own session: stop() kills its group
        return process

    def wait_until(self, name: str, ready, timeout: float = 20.0) -> None:
        """Poll ``ready()`` until true; fail early if the process died, late on the deadline."""
        deadline = time.monotonic() + timeout
        proc = dict(self.procs)[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.log_dir}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{name} not ready after {timeout:.0f} s; see {self.log_dir}")

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for name, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                LOG.warning("%s ignored SIGTERM, killing it", name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def __exit__(self, *exc_info) -> None:
        self.stop()
