"""HTTP cells with wrk, DNS cells with dnsperf, and the resolver's 200 x delay-100 cell."""

from __future__ import annotations

import logging
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

from bench.echo import Cell
from bench.procs import ROOT, Servers, cores, free_port, tcp_ready
from bench.stack import post_json, start
from services.dns.healthcheck import check as dns_check

LOG = logging.getLogger("bench.loadtools")
LUA = ROOT / "bench" / "lua"
HTTP_CONNS = 16
DNS_CLIENTS = 16


def _client(argv: list[str], timeout: float) -> str:
    client_cpus = cores()[1]
    result = subprocess.run(  # noqa: S603 - fixed tool, fixed arguments
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=lambda: os.sched_setaffinity(0, client_cpus),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()[-300:]}"
        )
    return result.stdout


def wrk(tool: str, url: str, duration: float, script: str | None = None) -> tuple[float, str]:
    """Requests/s of one wrk run, and a note when some answers were errors."""
    argv = [tool, "-t1", f"-c{HTTP_CONNS}", f"-d{max(1, round(duration))}s", "--timeout", "5s"]
    argv += ["-s", str(LUA / script)] if script else []
    out = _client([*argv, url], timeout=duration + 30)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"no Requests/sec in wrk output: {out[-300:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    note = ""
    if bad:
        note = f"{bad.group(1)} non-2xx answers"
    if errors:
        note = f"{note} {errors.group(0)}".strip()
    return float(rate.group(1)), note


def query_file(path: Path) -> Path:
    """The fixed query mix: www, host-N A and AAAA, and NXDOMAIN names of polyloop.test."""
    lines = []
    for n in range(1, 251):
        lines.append(f"host-{n}.polyloop.test A")
        lines.append(f"host-{n}.polyloop.test AAAA")
        if n % 5 == 0:
            lines.append("www.polyloop.test A")
            lines.append(f"missing-{n}.polyloop.test A")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def dnsperf(tool: str, port: int, queries: Path, duration: float) -> tuple[float, str]:
    argv = [tool, "-s", "127.0.0.1", "-p", str(port), "-d", str(queries)]
    argv += ["-l", str(max(1, round(duration))), "-c", str(DNS_CLIENTS), "-T", "1", "-t", "2"]
    out = _client(argv, timeout=duration + 30)
    rate = re.search(r"Queries per second:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"no 'Queries per second' in dnsperf output: {out[-300:]}")
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    note = f"{lost.group(1)} lost" if lost and lost.group(1) != "0" else ""
    return float(rate.group(1)), note


def http_cells(
    wrk_tool: str, c_server: Path, repeats: int, duration: float, log_dir: Path
) -> list[Cell]:
    routes = [
        ("ceiling", "C fixed 200 (wrk's own ceiling)", "GET /", None),
        ("healthz", "web GET /healthz", "GET /healthz", None),
        ("echo-tcp", "web POST /api/echo/tcp", "POST /api/echo/tcp", "echo_tcp.lua"),
        ("fanout", "web POST /api/fanout", "POST /api/fanout", "fanout.lua"),
    ]
    cells = {key: Cell("http", key, label, HTTP_CONNS) for key, label, _, _ in routes}
    with Servers(log_dir / "http") as servers:
        ceiling_port = free_port()
        servers.start("c-http", [str(c_server), str(ceiling_port), "--http"], cpus=cores()[0])
        servers.wait_until("c-http", lambda: tcp_ready(ceiling_port))
        try:
            ports = start(servers, ("dns", "tcp_echo", "udp_echo", "resolver", "web"))
        except (RuntimeError, OSError) as exc:
            LOG.warning("stack did not start: %s", exc)
            for key in ("healthz", "echo-tcp", "fanout"):
                cells[key].error = f"stack did not start: {exc}"
            ports = None
        for _ in range(repeats):
            for key, _, route, script in routes:
                if key != "ceiling" and ports is None:
                    continue
                port = ceiling_port if key == "ceiling" else ports.web
                url = f"http://127.0.0.1:{port}{route.split()[1]}"
                try:
                    rate, note = wrk(wrk_tool, url, duration, script)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    cells[key].error = str(exc)
                    continue
                cells[key].runs.append(rate)
                cells[key].error = note or cells[key].error
                LOG.info("http %-10s run: %8.0f/s %s", key, rate, note)
    return list(cells.values())


def dns_cells(
    dnsperf_tool: str, c_server: Path, repeats: int, duration: float, log_dir: Path
) -> list[Cell]:
    queries = query_file(log_dir.parent / "dns-queries.txt")
    cells = {
        "ceiling": Cell("dns", "ceiling", "C responder (dnsperf's own ceiling)", DNS_CLIENTS),
        "dns": Cell("dns", "dns", "dns service (Twisted Names)", DNS_CLIENTS),
    }
    with Servers(log_dir / "dns") as servers:
        ceiling_port = free_port()
        servers.start("c-dns", [str(c_server), str(ceiling_port), "--dns"], cpus=cores()[0])
        servers.wait_until("c-dns", lambda: tcp_ready(ceiling_port))
        targets = {"ceiling": ceiling_port}
        try:
            targets["dns"] = start(servers, ("dns",)).dns
        except (RuntimeError, OSError) as exc:
            cells["dns"].error = f"did not start: {exc}"
        for _ in range(repeats):
            for key, port in targets.items():
                try:
                    rate, note = dnsperf(dnsperf_tool, port, queries, duration)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    cells[key].error = str(exc)
                    continue
                cells[key].runs.append(rate)
                cells[key].error = note or cells[key].error
                LOG.info("dns %-8s run: %8.0f q/s %s", key, rate, note)
        if "dns" in targets and dns_check(targets["dns"], timeout=0.5) is not None:
            cells["dns"].error = "stopped answering during the run"
    return list(cells.values())


def resolver_cells(repeats: int, names: int, log_dir: Path) -> list[Cell]:
    """Seconds to resolve `names` names of delay-100, per backend and mode (lower is better).

    Sequential mode takes names x 100 ms, so it runs once, with a timeout that lets it finish.
    """
    batch = [f"n{i}.delay-100.polyloop.test" for i in range(names)]
    cells = []
    for backend in ("dnspython", "threadpool"):
        with Servers(log_dir / f"resolver-{backend}") as servers:
            modes = {"concurrent": Cell("resolver", f"{backend}-concurrent", "", names)}
            modes["sequential"] = Cell("resolver", f"{backend}-sequential", "", names)
            try:
                ports = start(servers, ("dns", "resolver"), {"RESOLVER_BACKEND": backend})
            except (RuntimeError, OSError) as exc:
                for cell in modes.values():
                    cell.error = f"did not start: {exc}"
                cells += modes.values()
                continue
            url = f"http://127.0.0.1:{ports.resolver}/resolve"
            for mode, cell in modes.items():
                cell.label = f"{backend} resolver, {mode}"
                timeout = 5.0 if mode == "concurrent" else min(30.0, names * 0.1 + 10)
                for _ in range(repeats if mode == "concurrent" else 1):
                    started = time.monotonic()
                    try:
                        answer = post_json(
                            url, {"names": batch, "mode": mode, "timeout": timeout}, timeout + 10
                        )
                    except OSError as exc:
                        cell.error = f"request failed: {exc}"
                        break
                    cell.runs.append(time.monotonic() - started)
                    failed = [r for r in answer.get("results", []) if r.get("error")]
                    if failed:
                        kinds = statistics.multimode(r["error"] for r in failed)
                        cell.error = f"{len(failed)}/{names} names failed ({', '.join(kinds)})"
                    LOG.info("resolver %-22s %.2f s %s", cell.target, cell.runs[-1], cell.error)
            cells += modes.values()
    return cells
