"""``.venv/bin/python -m bench --only pypy``: the SHIPPED tcp-echo and dns, CPython against PyPy.

Same code, two interpreters: ``python -m services.X`` from .venv (CPython 3.11, the
images' default) and ``pypy3 -m services.X`` from build/pypy-venv (Debian's PyPy 7.3.11,
Python 3.9, requirements/pypy.txt, PYPY_GC_NURSERY=4MB as in the PyPy images).

- throughput: tcp-echo under the C client (1, 10, 100 connections, 1 KiB) and dns under
  dnsperf (the query mix of ``loadtools.query_file``), servers side by side, medians;
- footprint: VmRSS of each server idle after start and after the load, and the image
  sizes when Docker has them (``POLYLOOP_PYPY=1 make up`` builds the PyPy ones);
- warm-up: a fresh server of each kind loaded at once, throughput per 0.5 s window from
  its first answer on, until the PyPy windows plateau; when PyPy first beats CPython.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.build import Toolbox
from bench.echo import Cell, Target, measure, run_client
from bench.loadtools import dnsperf, query_file
from bench.procs import ROOT, Servers, cores, free_port, tcp_ready
from services.dns.healthcheck import check as dns_check

LOG = logging.getLogger("bench.pypy")
CPYTHON = sys.executable
PYPY = ROOT / "build" / "pypy-venv" / "bin" / "python"
PYPY_ENV = {"PYPY_GC_NURSERY": "4MB"}  # as services/Dockerfile sets it
# metrics ports: any free one (0), never the default a running local stack holds
QUIET = {
    "LOG_LEVEL": "WARNING",
    "LISTEN_HOST": "127.0.0.1",
    "TCP_ECHO_METRICS_PORT": "0",
    "UDP_ECHO_METRICS_PORT": "0",
    "DNS_METRICS_PORT": "0",
}
WINDOW = 0.5
IMAGES = {
    "tcp-echo": ("polyloop-tcp-echo", "polyloop-tcp-echo-pypy"),
    "dns": ("polyloop-dns", "polyloop-dns-pypy"),
}


def dns_ready(port: int) -> bool:
    """The dns service's own healthcheck query, answered."""
    return dns_check(port, timeout=0.5) is None


def pypy_venv() -> Path | None:
    """build/pypy-venv from requirements/pypy.txt (scripts/pypy-venv.sh), or None."""
    bash = shutil.which("bash") or "/bin/bash"
    done = subprocess.run(  # noqa: S603 - our own script
        [bash, str(ROOT / "scripts" / "pypy-venv.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        LOG.warning("no PyPy venv: %s", done.stderr.strip()[-300:])
        return None
    return PYPY


def interpreters(pypy: Path) -> dict[str, tuple[str, dict[str, str]]]:
    return {"cpython": (CPYTHON, {}), "pypy": (str(pypy), PYPY_ENV)}


def rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def image_sizes() -> dict[str, str]:
    docker = shutil.which("docker")
    if docker is None:
        return {}
    sizes = {}
    for pair in IMAGES.values():
        for image in pair:
            done = subprocess.run(  # noqa: S603 - fixed command
                [docker, "image", "inspect", "-f", "{{.Size}}", image],
                capture_output=True,
                text=True,
                check=False,
            )
            ok = done.returncode == 0
            sizes[image] = f"{int(done.stdout) / 1e6:.0f} MB" if ok else "not built"
    return sizes


def throughput(tools: Toolbox, pypy: Path, repeats: int, duration: float, log_dir: Path):
    """TCP cells (via echo.measure) and DNS cells of both interpreters; RSS idle/loaded."""
    rss: dict[str, dict[str, float | None]] = {}
    targets = [
        Target(
            f"tcp-echo-{kind}",
            f"tcp-echo on {'PyPy' if kind == 'pypy' else 'CPython'}",
            lambda p, py=py: [py, "-m", "services.tcp_echo"],
            lambda p, env=env: {**QUIET, **env, "TCP_ECHO_PORT": str(p)},
        )
        for kind, (py, env) in interpreters(pypy).items()
    ]
    tcp = measure("pypy-tcp", targets, tools, [1, 10, 100], repeats, duration, 1.0, log_dir)
    dns: list[Cell] = []
    if tools.dnsperf:
        queries = query_file(log_dir / "dns-queries.txt")
        with Servers(log_dir / "pypy-dns") as servers:
            ports, procs = {}, {}
            for kind, (py, env) in interpreters(pypy).items():
                port = free_port()
                procs[kind] = servers.start(
                    f"dns-{kind}",
                    [py, "-m", "services.dns"],
                    {**QUIET, **env, "DNS_PORT": str(port)},
                    cores()[0],
                )
                servers.wait_until(f"dns-{kind}", lambda port=port: dns_ready(port), 30)
                ports[kind] = port
            time.sleep(2)
            for kind, proc in procs.items():
                rss[f"dns-{kind}"] = {"idle": rss_mib(proc.pid)}
            cells = {k: Cell("pypy-dns", f"dns-{k}", f"dns on {k}", 16) for k in ports}
            for _ in range(repeats):
                for kind, port in ports.items():
                    rate, note = dnsperf(tools.dnsperf, port, queries, duration)
                    cells[kind].runs.append(rate)
                    cells[kind].error = note or cells[kind].error
                    LOG.info("dns %-8s %8.0f q/s %s", kind, rate, note)
            for kind, proc in procs.items():
                rss[f"dns-{kind}"]["loaded"] = rss_mib(proc.pid)
            dns = list(cells.values())
    return tcp, dns, rss


def tcp_rss(tools: Toolbox, pypy: Path, duration: float, log_dir: Path) -> dict:
    """RSS of a fresh tcp-echo of each kind: idle after start, after 100-connection load."""
    rss = {}
    with Servers(log_dir / "pypy-rss") as servers:
        for kind, (py, env) in interpreters(pypy).items():
            port = free_port()
            name = f"tcp-echo-{kind}"
            proc = servers.start(
                name,
                [py, "-m", "services.tcp_echo"],
                {**QUIET, **env, "TCP_ECHO_PORT": str(port)},
                cores()[0],
            )
            servers.wait_until(name, lambda port=port: tcp_ready(port), 30)
            time.sleep(2)
            rss[name] = {"idle": rss_mib(proc.pid)}
            for conns in (1, 10, 100):
                run_client(tools.client, port, conns, duration, 0.5)
            rss[name]["loaded"] = rss_mib(proc.pid)
    return rss


def windows(kind_argv, load, log_dir: Path, name: str, seconds: float) -> dict:
    """Start a fresh server, load it at once: each 0.5 s window's rate and its end time
    (seconds since the process was started), until `seconds` after its first answer."""
    argv, env, ready = kind_argv
    rates, ends = [], []
    with Servers(log_dir / "pypy-warmup") as servers:
        spawned = time.monotonic()
        servers.start(name, argv, env, cores()[0])
        servers.wait_until(name, ready, 30)
        answered = time.monotonic()
        while time.monotonic() - answered < seconds:
            rates.append(load())
            ends.append(round(time.monotonic() - spawned, 2))
    return {"ready_after": round(answered - spawned, 2), "rates": rates, "ends": ends}


def warmup(tools: Toolbox, pypy: Path, seconds: float, log_dir: Path) -> dict:
    """Per kind and service: the 0.5 s window rates from the first answer on."""
    out: dict[str, dict[str, dict]] = {"tcp-echo": {}, "dns": {}}
    queries = query_file(log_dir / "dns-queries.txt")
    for kind, (py, env) in interpreters(pypy).items():
        port = free_port()
        out["tcp-echo"][kind] = windows(
            (
                [py, "-m", "services.tcp_echo"],
                {**QUIET, **env, "TCP_ECHO_PORT": str(port)},
                lambda port=port: tcp_ready(port),
            ),
            lambda port=port: run_client(tools.client, port, 100, WINDOW, 0.0)["rps"],
            log_dir,
            f"warm-tcp-{kind}",
            seconds,
        )
        if tools.dnsperf:
            port = free_port()
            out["dns"][kind] = windows(
                (
                    [py, "-m", "services.dns"],
                    {**QUIET, **env, "DNS_PORT": str(port)},
                    lambda port=port: dns_ready(port),
                ),
                lambda port=port: dnsperf(tools.dnsperf, port, queries, WINDOW)[0],
                log_dir,
                f"warm-dns-{kind}",
                seconds,
            )
    return out


def crossing(series: dict[str, dict], unit: str) -> str:
    """When the PyPy windows first beat CPython's steady rate, and PyPy's own plateau
    (times are seconds since the process was started)."""
    if "cpython" not in series or "pypy" not in series:
        return "not measured"
    cpy, pp, ends = series["cpython"]["rates"], series["pypy"]["rates"], series["pypy"]["ends"]
    steady_c = statistics.median(cpy[len(cpy) // 2 :])
    steady_p = statistics.median(pp[-6:])
    beat = next((i for i, r in enumerate(pp) if r > steady_c), None)
    plateau = next((i for i, r in enumerate(pp) if r >= 0.9 * steady_p), None)
    done = sum(r * WINDOW for r in pp[: beat + 1]) if beat is not None else None
    parts = [
        f"first answer after {series['cpython']['ready_after']:.2f} s (CPython) / "
        f"{series['pypy']['ready_after']:.2f} s (PyPy)",
        f"CPython steady {steady_c:,.0f} {unit}, PyPy steady {steady_p:,.0f} {unit}",
    ]
    if beat is None:
        parts.append("PyPy never beat CPython in the run")
    else:
        parts.append(
            f"PyPy beats CPython from window {beat + 1} (by {ends[beat]:.1f} s, "
            f"about {done:,.0f} requests served)"
        )
    if plateau is not None:
        parts.append(f"PyPy within 10 % of its plateau by {ends[plateau]:.1f} s")
    return "; ".join(parts)


def run(
    tools: Toolbox, repeats: int, duration: float, quick: bool, log_dir: Path
) -> tuple[list[str], dict]:
    """Measure everything; return the report's markdown section and the raw figures."""
    pypy = pypy_venv()
    if pypy is None:
        return ["## CPython vs PyPy", "", "- not measured: no build/pypy-venv", ""], {}
    tcp, dns, dns_rss = throughput(tools, pypy, repeats, duration, log_dir)
    rss = {**tcp_rss(tools, pypy, 1.0 if quick else duration, log_dir), **dns_rss}
    warm = warmup(tools, pypy, 6.0 if quick else 20.0, log_dir)
    sizes = image_sizes()
    lines = ["## CPython vs PyPy: the shipped tcp-echo and dns (same code)", ""]
    lines += [
        "| tcp-echo, 1 KiB | 1 conn rt/s | 10 conn rt/s | 100 conn rt/s |",
        "|---|---|---|---|",
    ]
    by = {(c.target, c.conns): c for c in tcp}
    for kind in ("cpython", "pypy"):
        row = [by[f"tcp-echo-{kind}", n].median for n in (1, 10, 100)]
        lines.append(f"| {kind} | " + " | ".join(f"{v:,.0f}" if v else "—" for v in row) + " |")
    ratio = [
        (by["tcp-echo-pypy", n].median or 0) / (by["tcp-echo-cpython", n].median or 1)
        for n in (1, 10, 100)
    ]
    lines.append("| PyPy ÷ CPython | " + " | ".join(f"{r:.2f}x" for r in ratio) + " |")
    if dns:
        d = {c.target: c.median for c in dns}
        c_rate, p_rate = d.get("dns-cpython"), d.get("dns-pypy")
        lines += [
            "",
            f"dns (dnsperf, 16 clients): CPython {c_rate:,.0f} q/s, PyPy {p_rate:,.0f} "
            f"q/s: {p_rate / c_rate:.2f}x",
        ]
    lines += ["", "| process | RSS idle after start | RSS after load |", "|---|---|---|"]
    for name, value in rss.items():
        idle, loaded = value.get("idle"), value.get("loaded")
        lines.append(f"| {name} | {idle or 0:.0f} MiB | {loaded or 0:.0f} MiB |")
    if sizes:
        lines += ["", "Images: " + ", ".join(f"{k} {v}" for k, v in sizes.items())]
    lines += ["", f"Warm-up (fresh server loaded at once, {WINDOW} s windows):", ""]
    lines.append(f"- tcp-echo, 100 connections: {crossing(warm['tcp-echo'], 'rt/s')}")
    lines.append(f"- dns, dnsperf: {crossing(warm['dns'], 'q/s')}")
    for service, series in warm.items():
        for kind, run in series.items():
            shown = " ".join(
                f"{r / 1000:.1f}k@{t:.1f}s" for r, t in zip(run["rates"], run["ends"], strict=True)
            )
            lines.append(f"  - {service} {kind}: {shown}")
    lines.append("")
    raw = {
        "tcp": [vars(c) for c in tcp],
        "dns": [vars(c) for c in dns],
        "rss_mib": rss,
        "images": sizes,
        "warmup_windows": warm,
    }
    return lines, raw
