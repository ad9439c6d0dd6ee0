"""TCP and UDP echo cells: every server started once, measured round-robin by the C client.

All servers of a protocol run side by side, idle while another is measured, so each
repetition sweeps every server under the same machine noise; the median of the
repetitions is kept.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.build import Toolbox
from bench.procs import Servers, cores, free_port, tcp_ready, udp_echo_ready

LOG = logging.getLogger("bench.echo")
PY = sys.executable
SERVERS = "bench/servers"
# metrics ports: any free one (0), never the default a running local stack holds
QUIET = {
    "LOG_LEVEL": "WARNING",
    "LISTEN_HOST": "127.0.0.1",
    "TCP_ECHO_METRICS_PORT": "0",
    "UDP_ECHO_METRICS_PORT": "0",
    "DNS_METRICS_PORT": "0",
}


@dataclass(frozen=True)
class Target:
    """One echo server to measure: how to start it on a port, and what it is."""

    key: str
    label: str
    argv: Callable[[int], list[str]]
    env: Callable[[int], dict[str, str]] = lambda port: {}
    needs: str = ""  # "pypy" when it runs on PyPy


@dataclass
class Cell:
    group: str
    target: str
    label: str
    conns: int
    runs: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None


def tcp_targets(tools: Toolbox, quick: bool) -> list[Target]:
    pypy = str(tools.pypy) if tools.pypy else ""
    tuned = f"{SERVERS}/twisted_tuned.py"
    targets = [
        Target(
            "shipped",
            "tcp-echo (shipped, Twisted)",
            lambda p: [PY, "-m", "services.tcp_echo"],
            lambda p: {**QUIET, "TCP_ECHO_PORT": str(p)},
        ),
        Target("book", "book echo (Twisted)", lambda p: [PY, f"{SERVERS}/book_echo.py", str(p)]),
        Target("asyncio", "asyncio Protocol", lambda p: [PY, f"{SERVERS}/asyncio_echo.py", str(p)]),
        Target(
            "uvloop",
            "asyncio Protocol on uvloop",
            lambda p: [PY, f"{SERVERS}/asyncio_echo.py", str(p), "--uvloop"],
        ),
        Target("c", "C epoll (the limit)", lambda p: [str(tools.server), str(p)]),
    ]
    if quick:
        return targets
    targets[4:4] = [
        Target(
            "gevent", "gevent StreamServer", lambda p: [PY, f"{SERVERS}/gevent_echo.py", str(p)]
        ),
        Target("tw-nodelay", "Twisted + TCP_NODELAY", lambda p: [PY, tuned, str(p), "--nodelay"]),
        Target(
            "tw-write-through",
            "Twisted + write-through",
            lambda p: [PY, tuned, str(p), "--write-through"],
        ),
        Target(
            "tw-poll", "Twisted, poll reactor", lambda p: [PY, tuned, str(p), "--reactor", "poll"]
        ),
        Target(
            "tw-asyncio",
            "Twisted, asyncio reactor",
            lambda p: [PY, tuned, str(p), "--reactor", "asyncio"],
        ),
        Target(
            "tw-uvloop",
            "Twisted, asyncio reactor on uvloop",
            lambda p: [PY, tuned, str(p), "--reactor", "uvloop"],
        ),
        Target(
            "tw-reuseport-2",
            "Twisted, 2 processes SO_REUSEPORT",
            lambda p: [PY, tuned, str(p), "--processes", "2"],
        ),
        Target(
            "book-pypy",
            "book echo (Twisted) on PyPy",
            lambda p: [pypy, f"{SERVERS}/book_echo.py", str(p)],
            needs="pypy",
        ),
        Target(
            "tw-write-through-pypy",
            "Twisted + write-through on PyPy",
            lambda p: [pypy, tuned, str(p), "--write-through"],
            needs="pypy",
        ),
    ]
    return targets


def udp_targets(tools: Toolbox, quick: bool) -> list[Target]:
    return [
        Target(
            "shipped",
            "udp-echo (shipped, asyncio)",
            lambda p: [PY, "-m", "services.udp_echo"],
            lambda p: {**QUIET, "UDP_ECHO_PORT": str(p), "UDP_ECHO_STATS_INTERVAL": "0"},
        ),
        Target(
            "asyncio",
            "asyncio datagram echo",
            lambda p: [PY, f"{SERVERS}/asyncio_udp_echo.py", str(p)],
        ),
        Target(
            "uvloop",
            "asyncio datagram echo on uvloop",
            lambda p: [PY, f"{SERVERS}/asyncio_udp_echo.py", str(p), "--uvloop"],
        ),
        Target(
            "shipped-uvloop",
            "udp-echo (shipped) on uvloop",
            lambda p: [PY, f"{SERVERS}/uvloop_run.py", "services.udp_echo"],
            lambda p: {**QUIET, "UDP_ECHO_PORT": str(p), "UDP_ECHO_STATS_INTERVAL": "0"},
        ),
        Target("c", "C epoll (the limit)", lambda p: [str(tools.server), str(p)]),
    ]


def run_client(
    client: Path, port: int, conns: int, duration: float, warmup: float, udp: bool = False
) -> dict:
    """One bounded run of the C client, pinned to the client cores; its JSON result."""
    argv = [str(client), "--port", str(port), "--conns", str(conns), "--size", "1024"]
    argv += ["--duration", str(duration), "--warmup", str(warmup)] + (["--udp"] if udp else [])
    client_cpus = cores()[1]
    result = subprocess.run(  # noqa: S603 - our own binary, fixed arguments
        argv,
        capture_output=True,
        text=True,
        timeout=duration + warmup + 30,
        preexec_fn=lambda: os.sched_setaffinity(0, client_cpus),
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"echo_client failed ({result.returncode}): {result.stderr.strip()}")
    return json.loads(result.stdout)


def measure(
    group: str,
    targets: list[Target],
    tools: Toolbox,
    conn_counts: list[int],
    repeats: int,
    duration: float,
    warmup: float,
    log_dir: Path,
) -> list[Cell]:
    udp = group == "udp"
    ready = udp_echo_ready if udp else tcp_ready
    cells = {(t.key, n): Cell(group, t.key, t.label, n) for t in targets for n in conn_counts}
    with Servers(log_dir / group) as servers:
        ports: dict[str, int] = {}
        for target in targets:
            if target.needs == "pypy" and tools.pypy is None:
                for n in conn_counts:
                    cells[target.key, n].error = "PyPy with Twisted not available"
                continue
            port = free_port()
            try:
                servers.start(target.key, target.argv(port), target.env(port), cores()[0])
                servers.wait_until(target.key, lambda port=port: ready(port))
            except (RuntimeError, OSError) as exc:
                LOG.warning("%s %s did not start: %s", group, target.key, exc)
                for n in conn_counts:
                    cells[target.key, n].error = f"did not start: {exc}"
                continue
            ports[target.key] = port
        for rep in range(repeats):
            for n in conn_counts:
                for key, port in ports.items():
                    cell = cells[key, n]
                    try:
                        out = run_client(tools.client, port, n, duration, warmup, udp)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        cell.error = str(exc)
                        continue
                    if out["errors"]:
                        cell.error = f"{out['errors']} connection(s) failed"
                    cell.runs.append(out["rps"])
                    LOG.info(
                        "%s %-22s conns=%-3d run %d: %8.0f/s", group, key, n, rep + 1, out["rps"]
                    )
    return list(cells.values())
