"""Where does a service's CPU go under load? cProfile of one service while wrk loads it.

    python -m bench.profile resolver                 # POST /resolve, one cached name
    python -m bench.profile web --route /api/resolve # or /api/echo/tcp, /api/fanout, /healthz
    python -m bench.profile web --route /api/fanout --seconds 5 --top 30

Starts the services the route needs as local processes (bench/stack.py), the profiled
one under ``bench/profiled.py``; warms up, profiles ``--seconds`` of wrk load, then
prints the top functions by own time and by cumulative time (CPU time only) and the
CPU µs per request of the profiled process with the profiler on (cProfile slows every
Python call, so read the shares, not the absolute figures). Stats go to
reports/bench/profile-<service>.prof for ``python -m pstats``.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import pstats
import signal
import sys
import time
from pathlib import Path

from bench.cpu import cpu_seconds, warm, wrk_load
from bench.procs import ROOT, Servers, cores
from bench.stack import PY, Ports, http_ok, start

SCRIPTS = {
    "/resolve": "resolve.lua",
    "/api/resolve": "resolve.lua",
    "/api/echo/tcp": "echo_tcp.lua",
    "/api/echo/udp": "echo_tcp.lua",
    "/api/fanout": "fanout.lua",
    "/healthz": None,
}
DOCUMENTS = {
    "resolve.lua": {"names": ["www.polyloop.test"]},
    "echo_tcp.lua": {"message": "hello, polyloop bench"},
    "fanout.lua": {"message": "hello, polyloop bench", "names": ["www.polyloop.test"]},
}
LOG = logging.getLogger("bench.profile")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("service", choices=("resolver", "web"))
    parser.add_argument("--route", help="default: /resolve (resolver), /api/resolve (web)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    route = args.route or ("/resolve" if args.service == "resolver" else "/api/resolve")
    script = SCRIPTS[route]
    others = ("dns",) if args.service == "resolver" else ("dns", "tcp_echo", "udp_echo", "resolver")
    prof = args.out / f"profile-{args.service}.prof"
    prof.unlink(missing_ok=True)
    with Servers(args.out / "logs" / "profile") as servers:
        ports = start(servers, others)
        # start() picked the profiled service's port too and told the others
        port = ports.web if args.service == "web" else ports.resolver
        argv_ = [PY, "-m", "bench.profiled", str(prof), f"services.{args.service}"]
        proc = servers.start(args.service, argv_, Ports.env(ports), cores()[0])
        servers.wait_until(args.service, lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
        url = f"http://127.0.0.1:{port}{route}"
        warm(url, DOCUMENTS.get(script or ""), count=50)
        load, command = wrk_load(_wrk(), url, script)
        os.kill(proc.pid, signal.SIGUSR1)
        before = cpu_seconds(proc.pid)
        result = load(args.seconds)
        cpu = cpu_seconds(proc.pid) - before
        os.kill(proc.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not prof.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # dump_stats writes the file in one go, but let it close
    out = io.StringIO()
    stats = pstats.Stats(str(prof), stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    sys.stdout.write(
        f"{args.service} {route}: {result.requests} requests, {result.rate:.0f}/s, "
        f"{cpu / max(1, result.requests) * 1e6:.0f} µs CPU/request under the profiler "
        f"({command})\n{out.getvalue()}"
    )
    return 0


def _wrk() -> str:
    import shutil

    tool = shutil.which("wrk")
    if tool is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    return tool


if __name__ == "__main__":
    sys.exit(main())
