"""``.venv/bin/python -m bench`` (what ``make bench`` runs): every server side by side, one run.

Compiles the C client and server into build/bench/, starts each server on a free
127.0.0.1 port pinned to one core, loads it from the other core, repeats each cell
and keeps the median, then writes reports/bench/report.md (+ echo.png, results.json)
and prints the table. ``--quick`` is a fast smoke run; ``--only tcp,udp`` picks parts
(``--only cpu --quick``: CPU per request of every service, in under a minute).
The CPU part is compared with the previous run's (``bench/guard.py``: a row more than
15 % dearer is flagged at the top of the report); the ``burst`` part sends the resolver
bursts of 256 slow names, quiet and beside a Locust run (``bench/burst.py``).
Every server it started is stopped at the end, even on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

from bench import build, burst, cpu, echo, guard, loadtools, metrics_cost, pypy, report
from bench.procs import ROOT, cores

PARTS = ("tcp", "udp", "http", "dns", "resolver", "cpu", "burst", "pypy", "metrics")
LOG = logging.getLogger("bench")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="1 run of 1 s per cell, fewer servers")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument("--repeats", type=int, help="runs per cell (median kept; default 3)")
    parser.add_argument("--duration", type=float, help="seconds measured per run (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args(argv)
    args.parts = [p for p in args.only.split(",") if p]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.duration = args.duration or (1.0 if args.quick else 3.0)
    args.warmup = 0.2 if args.quick else 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.monotonic()
    load_before = _load()
    tools = build.prepare(want_pypy="tcp" in args.parts and not args.quick)
    logs = args.out / "logs"
    server_cpus, client_cpus = cores()
    conns = [1, 10, 100]
    results: dict[str, list] = {}
    if "tcp" in args.parts:
        targets = echo.tcp_targets(tools, args.quick)
        results["tcp"] = echo.measure(
            "tcp", targets, tools, conns, args.repeats, args.duration, args.warmup, logs
        )
    if "udp" in args.parts:
        targets = echo.udp_targets(tools, args.quick)
        results["udp"] = echo.measure(
            "udp", targets, tools, conns, args.repeats, args.duration, args.warmup, logs
        )
    if "http" in args.parts and tools.wrk:
        results["http"] = loadtools.http_cells(
            tools.wrk, tools.server, args.repeats, args.duration, logs
        )
    if "dns" in args.parts and tools.dnsperf:
        results["dns"] = loadtools.dns_cells(
            tools.dnsperf, tools.server, args.repeats, args.duration, logs
        )
    if "resolver" in args.parts:
        names = 20 if args.quick else 200
        results["resolver"] = loadtools.resolver_cells(args.repeats, names, logs)
    cpu_part = None
    if "cpu" in args.parts:
        cpu_part = cpu.run(tools, args.repeats, args.duration, logs)
    burst_phases = []
    if "burst" in args.parts:  # the stack unpinned, beside a Locust run: last of the timed parts
        burst_phases = burst.run(logs, requests=5 if args.quick else burst.REQUESTS)
    pypy_lines, pypy_raw = [], {}
    if "pypy" in args.parts:
        pypy_lines, pypy_raw = pypy.run(tools, args.repeats, args.duration, args.quick, logs)
    metrics_lines: list[str] = []
    if "metrics" in args.parts:  # its own file: reports/bench/metrics-cost.md
        metrics_lines, _ = metrics_cost.run(
            tools, args.repeats, args.duration, args.warmup, logs / "metrics", conns
        )
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "pinning": f"servers on CPU {sorted(server_cpus)}, clients on CPU {sorted(client_cpus)}",
        "cells": f"median of {args.repeats} run(s) x {args.duration:g} s after {args.warmup:g} s "
        "warm-up; servers measured round-robin",
        "took": f"{time.monotonic() - started:.0f} s",
        # the machine is shared: how busy it was, at the start and at the end
        "load average": f"{load_before} at the start, {_load()} at the end (1/5/15 min)",
    }
    guard_top, guard_table = [], []
    if cpu_part is not None and cpu_part.rows:
        kept = guard.path_for(args.out, args.quick)
        previous = guard.load(kept)
        current = guard.snapshot(cpu_part, meta)
        changes = guard.compare(current, previous)
        guard_top = guard.flag_lines(changes, previous)
        guard_table = guard.table(changes, previous)
        guard.save(kept, current)
    markdown = report.write(
        results,
        meta,
        tools.missing,
        args.out,
        pypy_lines,
        pypy_raw,
        cpu_part=cpu_part,
        burst_phases=burst_phases,
        guard_top=guard_top,
        guard_table=guard_table,
    )
    sys.stdout.write(markdown + "\n")
    if metrics_lines:
        metrics_cost.write(metrics_lines, args.out)
    sys.stdout.write(f"\nreport: {args.out / 'report.md'}\n")
    return 0


def _load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
