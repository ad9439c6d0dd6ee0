"""How much CPU the stack burns doing nothing: each service's CPU over a window, no client.

    .venv/bin/python -m bench.idle_cpu                        # the running stack, 60 s
    .venv/bin/python -m bench.idle_cpu --seconds 30 --project polyloop

Containers (a compose project): each container's cgroup CPU (``cpuacct.usage`` on cgroup v1,
``cpu.stat``'s ``usage_usec`` on v2), which counts everything that runs in it, the
healthchecks Docker starts there included. Local processes (``make up`` without Docker):
each service's process CPU from ``/proc/<pid>/stat`` (its healthchecks run outside it, and
are not counted). Prints the share of one core per service and in all; nothing may load
the stack meanwhile (the dashboard closed: its feed makes the front work every second).

Beside it, over the same window, the yardstick: ``bench/servers/bare_timer.py``, an asyncio
loop doing nothing but the lag timer every service's loop runs (``POLYLOOP_LAG_INTERVAL``,
default 0.05 s), and what one of its wake-ups costs. Waking a loop is not free (about 130 µs
of CPU on a 2-core VM here, on this kind of machine): the five loops' timers alone are a
good part of the stack's idle figure, and the figure follows the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.cpu import PY, SERVERS, cpu_seconds
from devstack import ROOT, SERVICES
from services.common.control import DEFAULT_LAG_INTERVAL

CGROUP = Path("/sys/fs/cgroup")


def container_reader(container_id: str) -> Callable[[], float] | None:
    """A function giving the container's CPU seconds so far, or None if none is found."""
    candidates = [
        (CGROUP / "cpuacct" / "docker" / container_id / "cpuacct.usage", 1e-9, False),
        (CGROUP / "cpu,cpuacct" / "docker" / container_id / "cpuacct.usage", 1e-9, False),
        (CGROUP / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat", 1e-6, True),
        (CGROUP / "docker" / container_id / "cpu.stat", 1e-6, True),
    ]
    for path, scale, stat in candidates:
        if path.exists():

            def read(path: Path = path, scale: float = scale, stat: bool = stat) -> float:
                text = path.read_text()
                if stat:
                    fields = dict(line.split() for line in text.splitlines())
                    return int(fields["usage_usec"]) * scale
                return int(text) * scale

            return read
    return None


def containers(project: str) -> dict[str, Callable[[], float]]:
    """Each running service container of the compose ``project``, by service name."""
    docker = shutil.which("docker") or "docker"
    out = subprocess.run(  # noqa: S603 - fixed argv
        [
            docker,
            "ps",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--format",
            '{{.ID}} {{.Label "com.docker.compose.service"}}',
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    readers = {}
    for line in out.splitlines():
        container_id, service = line.split()
        reader = container_reader(container_id)
        if reader is not None:
            readers[service] = reader
    return readers


def local_processes(run: Path = ROOT / ".run") -> dict[str, Callable[[], float]]:
    readers = {}
    for name in SERVICES:
        try:
            pid = int((run / f"{name}.pid").read_text())
        except (OSError, ValueError):
            continue
        readers[name] = lambda pid=pid: cpu_seconds(pid)
    return readers


def measure(readers: dict[str, Callable[[], float]], seconds: float) -> dict[str, float]:
    """Share of one core each reader used over ``seconds`` (0.05 = 5 %)."""
    before = {name: read() for name, read in readers.items()}
    started = time.monotonic()
    time.sleep(seconds)  # the window measured: nothing to wait for, just time passing
    elapsed = time.monotonic() - started
    return {name: (read() - before[name]) / elapsed for name, read in readers.items()}


def with_yardstick(
    readers: dict[str, Callable[[], float]], seconds: float, interval: float
) -> tuple[dict[str, float], float]:
    """``measure`` of ``readers`` with the bare timer loop running beside them: their
    shares, and the bare loop's share of one core (its own process, bounded in time)."""
    argv = [PY, str(ROOT / SERVERS / "bare_timer.py"), str(interval), str(seconds + 30)]
    bare = subprocess.Popen(argv, stdin=subprocess.DEVNULL)  # noqa: S603 - fixed argv
    try:
        time.sleep(0.5)  # its interpreter's start is not part of the window: just time passing
        shares = measure({**readers, "": lambda: cpu_seconds(bare.pid)}, seconds)
    finally:
        bare.kill()
        bare.wait(timeout=10)
    return shares, shares.pop("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_cpu", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--project", default=os.environ.get("COMPOSE_PROJECT_NAME", "polyloop"))
    parser.add_argument("--local", action="store_true", help="local processes (.run/*.pid)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    mode = (ROOT / ".run" / "mode").read_text().strip() if (ROOT / ".run" / "mode").exists() else ""
    local = args.local or mode == "local"
    readers = local_processes() if local else containers(args.project)
    if not readers:
        sys.stderr.write("nothing running to measure (make up first)\n")
        return 1
    interval = float(os.environ.get("POLYLOOP_LAG_INTERVAL") or DEFAULT_LAG_INTERVAL)
    shares, bare = with_yardstick(readers, args.seconds, interval)
    if args.json:
        sys.stdout.write(json.dumps(shares) + "\n")
        return 0
    where = "local processes" if local else f"containers of {args.project} (cgroup CPU)"
    sys.stdout.write(f"idle CPU over {args.seconds:g} s, {where}:\n")
    for name, share in sorted(shares.items(), key=lambda item: -item[1]):
        sys.stdout.write(f"  {name:10} {share:7.2%} of one core\n")
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    sys.stdout.write(f"  {'all':10} {sum(shares.values()):7.2%}   (load average {load})\n")
    wakeup_us = bare * interval * 1e6
    sys.stdout.write(
        f"yardstick: a bare asyncio loop, one timer every {interval:g} s: {bare:.2%} of one "
        f"core ({wakeup_us:.0f} µs a wake-up on this machine); each of the {len(shares)} "
        "services' loops runs such a timer (POLYLOOP_LAG_INTERVAL), before any work\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
