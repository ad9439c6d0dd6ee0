"""Where does a service's CPU go under load? cProfile of one service while wrk loads it.

    .venv/bin/python -m bench.profile resolver              # POST /resolve, one cached name
    .venv/bin/python -m bench.profile web --route /api/resolve   # or /api/echo/tcp, /healthz,
    .venv/bin/python -m bench.profile web --route /api/fanout --seconds 5 --top 30
    .venv/bin/python -m bench.profile dns                   # dnsperf, the bench's query mix
    .venv/bin/python -m bench.profile pywsgi|names|aiohttp  # the minimal programs, same loads
    .venv/bin/python -m bench.profile tcp_echo|book         # the C echo client, 10 connections
    .venv/bin/python -m bench.profile udp_echo|asyncio-udp  # the same over UDP, 10 sockets

Starts the services the route needs as local processes (bench/stack.py), the profiled
one under ``bench/profiled.py``; warms up, profiles ``--seconds`` of wrk load, then
prints the top functions by own time and by cumulative time (CPU time only) and the
CPU µs per request of the profiled process with the profiler on (cProfile slows every
Python call, so read the shares, not the absolute figures). Stats go to
reports/bench/profile-<service>.prof for ``.venv/bin/python -m pstats``.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import pstats
import shutil
import signal
import sys
import time
from pathlib import Path

from bench import build
from bench.cpu import (
    PY,
    cpu_seconds,
    dns_answers,
    dnsperf_load,
    echo_load,
    http_ok,
    warm,
    wrk_load,
)
from bench.loadtools import query_file
from bench.procs import ROOT, Servers, cores, free_port, tcp_ready, udp_echo_ready
from bench.stack import start

ALL = ("dns", "tcp_echo", "udp_echo", "resolver")
# name: (load kind, services it needs, script of a minimal program or "" for the service)
TARGETS = {
    "resolver": ("resolver", ("dns",), ""),
    "web": ("web", ALL, ""),
    "dns": ("dns", (), ""),
    "pywsgi": ("resolver", (), "bench/servers/pywsgi_resolve.py"),
    "names": ("dns", (), "bench/servers/twisted_names.py"),
    "aiohttp": ("web", ALL, "bench/servers/aiohttp_proxy.py"),
    "tcp_echo": ("tcp", (), ""),
    "book": ("tcp", (), "bench/servers/book_echo.py"),
    "udp_echo": ("udp", (), ""),
    "asyncio-udp": ("udp", (), "bench/servers/asyncio_udp_echo.py"),
}

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
    parser = argparse.ArgumentParser(prog=".venv/bin/python -m bench.profile", description=__doc__)
    parser.add_argument("service", choices=tuple(TARGETS))
    parser.add_argument("--route", help="default: /resolve (resolver), /api/resolve (web)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    kind, needs, script_path = TARGETS[args.service]
    route = args.route or ("/resolve" if kind == "resolver" else "/api/resolve")
    script = SCRIPTS.get(route)
    prof = args.out / f"profile-{args.service}.prof"
    prof.unlink(missing_ok=True)
    queries = query_file(args.out / "dns-queries.txt")
    with Servers(args.out / "logs" / "profile") as servers:
        ports = start(servers, needs)
        if script_path:
            port = free_port()
            target = [script_path, str(port)]
        else:
            # start() picked the profiled service's port too and told the others
            port = getattr(ports, args.service)
            target = [f"services.{args.service}"]
        argv_ = [PY, "-m", "bench.profiled", str(prof), *target]
        proc = servers.start(args.service, argv_, ports.env(), cores()[0])
        if kind == "dns":
            servers.wait_until(args.service, lambda: dns_answers(port))
            load, command = dnsperf_load(_tool("dnsperf"), port, queries)
            route = "dnsperf"
        elif kind in ("tcp", "udp"):
            udp = kind == "udp"
            servers.wait_until(
                args.service, lambda: udp_echo_ready(port) if udp else tcp_ready(port)
            )
            load, command = echo_load(build.compile_c()[0], port, udp)
            route = f"{kind} echo"
        else:
            # the minimal pywsgi program answers POST /resolve only: a connect is its sign
            up = (
                (lambda: tcp_ready(port))
                if args.service == "pywsgi"
                else (lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
            )
            servers.wait_until(args.service, up)
            url = f"http://127.0.0.1:{port}{route}"
            warm(url, DOCUMENTS.get(script or ""), count=50)
            load, command = wrk_load(_tool("wrk"), url, script)
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
    groups = by_group(stats)
    total = sum(own for _, own in groups) or 1.0
    out.write("own time by library:\n")
    for group, own in groups:
        out.write(f"  {own / total:6.1%}  {group}\n")
    out.write("\n")
    stats.strip_dirs().sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    sys.stdout.write(
        f"{args.service} {route}: {result.requests} requests, {result.rate:.0f}/s, "
        f"{cpu / max(1, result.requests) * 1e6:.0f} µs CPU/request under the profiler "
        f"({command})\n{out.getvalue()}"
    )
    return 0


GROUPS = (
    # (group, a piece of the file path): first match wins
    ("aiohttp client", "aiohttp/client"),
    ("aiohttp client", "aiohttp/connector"),
    ("aiohttp server", "aiohttp/web"),
    ("aiohttp (shared)", "aiohttp/"),
    ("gevent pywsgi", "gevent/pywsgi"),
    ("twisted names", "twisted/names"),
    ("twisted (reactor, protocols, deferreds)", "twisted/"),
    ("gevent (hub, pool, greenlets, sockets)", "gevent/"),
    ("http header parsing (email, http.client)", "/email/"),
    ("http header parsing (email, http.client)", "http/client"),
    ("dnspython", "-packages/dns/"),
    ("prometheus_client", "prometheus_client"),
    ("json", "/json/"),
    ("logging", "/logging/"),
    ("asyncio", "/asyncio/"),
    ("services (polyloop's own code)", "/services/"),
)


def by_group(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time (tottime) summed per library: where the CPU goes, library by library."""
    totals: dict[str, float] = {}
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if filename == "~":  # a C function: a method of a socket, epoll, ...
            group = (
                "system calls (socket send/recv, epoll)"
                if any(word in function for word in ("socket", "epoll", "select", "_io"))
                else "C built-ins (len, isinstance, str methods, ...)"
            )
        else:
            group = next((g for g, part in GROUPS if part in filename), "other Python")
        totals[group] = totals.get(group, 0.0) + own
    return sorted(totals.items(), key=lambda item: -item[1])


def _tool(name: str) -> str:
    tool = shutil.which(name)
    if tool is None:
        raise SystemExit(f"{name} is missing: apt-get install {name}")
    return tool


if __name__ == "__main__":
    sys.exit(main())
