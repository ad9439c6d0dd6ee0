"""``.venv/bin/python -m bench --only cpu``: CPU time per request of every service, beside req/s,
next to the minimal program of its own framework doing the same job.

Requests per second swing with whatever else the machine runs; the CPU a process spends
per request much less. Each row loads one server from the client core (wrk for HTTP,
dnsperf for DNS, the C echo client for UDP/TCP) and reads, before and after, the CPU
time (user + system, ``/proc/<pid>/stat``) of every process the request goes through;
the difference divided by the requests the tool completed is the row's µs/request per
process. Every server runs side by side for the whole part (the stack's five services
and the minimal programs, all on the server core), the rows are measured round-robin,
and each figure is the median of the runs.

Rows and what each is compared with (``base``):

- resolver ``POST /resolve``, one cached name vs ``bench/servers/pywsgi_resolve.py``
- the front's ``/api/echo/tcp``, ``/api/echo/udp``, ``/api/resolve``, ``/api/fanout`` vs
  its own ``GET /healthz`` (CPU of web, resolver, tcp-echo, udp-echo and dns each), and
  each route, ``/healthz`` too, vs ``bench/servers/aiohttp_proxy.py`` doing the same
  backend calls (its peer, "x minimal, same route")
- the same front a second time on uvloop (``WEB_LOOP=uvloop``), the same backends: each
  route's CPU on asyncio's loop over uvloop's
- dns vs ``bench/servers/twisted_names.py`` (the same zone file, ``BindAuthority``)
- udp-echo vs ``bench/servers/asyncio_udp_echo.py``; tcp-echo vs ``bench/servers/book_echo.py``
- the same three again, a second process of each with its stall watchdog off
  (``POLYLOOP_STALL_WATCHDOG=0``), against the same minimal programs: what the watchdog
  costs is the ratio with it on beside the ratio with it off, in the same run

plus one concurrent request of 200 names of ``delay-100`` to the same resolver (the
contract's "200 names still ≤ 0.3 s"). ``--quick``: one run of one second per row.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.build import Toolbox
from bench.echo import run_client
from bench.loadtools import DNS_CLIENTS, HTTP_CONNS, LUA, _client, query_file
from bench.procs import Servers, cores, free_port, tcp_ready, udp_echo_ready
from bench.stack import post_json, start
from services.dns.healthcheck import check as dns_check

PY = sys.executable

LOG = logging.getLogger("bench.cpu")
SERVERS = "bench/servers"
ECHO_CONNS = 10
STACK = ("dns", "tcp_echo", "udp_echo", "resolver", "web")
# what each process is called in the report (the stack's own names)
PROCESS_NAMES = {
    "web": "web",
    "resolver": "resolver",
    "tcp_echo": "tcp-echo",
    "udp_echo": "udp-echo",
    "dns": "dns",
    "aiohttp": "aiohttp (minimal)",
    "tcp_echo_nowatch": "tcp-echo (watchdog off)",
    "udp_echo_nowatch": "udp-echo (watchdog off)",
    "dns_nowatch": "dns (watchdog off)",
    "web_uvloop": "web (uvloop)",
}
# a second process of each, its stall watchdog off: (its module, its port variable)
NO_WATCHDOG = {
    "tcp_echo_nowatch": ("services.tcp_echo", "TCP_ECHO"),
    "udp_echo_nowatch": ("services.udp_echo", "UDP_ECHO"),
    "dns_nowatch": ("services.dns", "DNS"),
}
FRONT_PROCESSES = ("web", "resolver", "tcp_echo", "udp_echo", "dns")
FRONT_LABELS = {"web": "web", "aiohttp": "minimal aiohttp", "web_uvloop": "web on uvloop"}
# the front's routes: (row key, label, wrk script, body to warm it with)
FRONT_ROUTES = (
    ("healthz", "GET /healthz", None, None),
    ("echo-tcp", "POST /api/echo/tcp", "echo_tcp.lua", {"message": "hello, polyloop bench"}),
    ("echo-udp", "POST /api/echo/udp", "echo_tcp.lua", {"message": "hello, polyloop bench"}),
    (
        "api-resolve",
        "POST /api/resolve, 1 cached name",
        "resolve.lua",
        {"names": ["www.polyloop.test"]},
    ),
    (
        "fanout",
        "POST /api/fanout (tcp + udp + 2 names)",
        "fanout.lua",
        {"message": "hello, polyloop bench", "names": ["www.polyloop.test"]},
    ),
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads (Linux).

    Fields 14 and 15 of ``/proc/<pid>/stat`` in clock ticks; the command name (field 2)
    may hold spaces and parentheses, so the fields are counted after its last ``)``.
    """
    return parse_stat(Path(f"/proc/{pid}/stat").read_text())


def parse_stat(text: str, ticks_per_second: int | None = None) -> float:
    """CPU seconds (utime + stime) from the text of a ``/proc/<pid>/stat`` file."""
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15
    ticks = int(fields[11]) + int(fields[12])
    return ticks / (ticks_per_second or os.sysconf("SC_CLK_TCK"))


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rate: float
    note: str = ""


def parse_wrk(out: str) -> WrkResult:
    """Requests completed and requests/s of one wrk run; a note when answers were errors."""
    count = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if count is None or rate is None:
        raise RuntimeError(f"no request count in wrk output: {out[-300:]}")
    notes = []
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if bad:
        notes.append(f"{bad.group(1)} non-2xx answers")
    errors = re.search(r"Socket errors:.*", out)
    if errors:
        notes.append(errors.group(0))
    return WrkResult(int(count.group(1)), float(rate.group(1)), "; ".join(notes))


def parse_dnsperf(out: str) -> WrkResult:
    """Queries completed and queries/s of one dnsperf run; a note when some were lost."""
    count = re.search(r"Queries completed:\s+(\d+)", out)
    rate = re.search(r"Queries per second:\s+([\d.]+)", out)
    if count is None or rate is None:
        raise RuntimeError(f"no 'Queries completed' in dnsperf output: {out[-300:]}")
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    note = f"{lost.group(1)} lost" if lost and lost.group(1) != "0" else ""
    return WrkResult(int(count.group(1)), float(rate.group(1)), note)


@dataclass
class Run:
    """One measured run: what the load tool completed and the CPU seconds per process."""

    requests: int
    rate: float
    cpu: dict[str, float]

    def us_per_request(self) -> dict[str, float]:
        if self.requests <= 0:
            return {}
        return {name: seconds / self.requests * 1e6 for name, seconds in self.cpu.items()}


@dataclass
class Row:
    """One line of the table: a server under one load, compared with row ``base``."""

    key: str
    label: str
    main: str  # the process whose CPU is compared with the base row's main process
    processes: tuple[str, ...]
    command: str  # the load, as a shell line for the report
    base: str = ""
    peer: str = ""  # the minimal program's row doing the same job, when there is one
    runs: list[Run] = field(default_factory=list)
    error: str = ""

    @property
    def rate(self) -> float | None:
        return statistics.median(r.rate for r in self.runs) if self.runs else None

    def us(self) -> dict[str, float]:
        """Median µs/request of each process over the runs."""
        per_run = [r.us_per_request() for r in self.runs if r.requests > 0]
        if not per_run:
            return {}
        return {name: statistics.median(run[name] for run in per_run) for name in per_run[0]}

    @property
    def main_us(self) -> float | None:
        return self.us().get(self.main)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def dns_answers(port: int) -> bool:
    """The dns service's own healthcheck: ``www.polyloop.test`` answered over UDP."""
    return dns_check(port, timeout=0.5) is None


def ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value and base else None


Load = Callable[[float], WrkResult]


def wrk_load(tool: str, url: str, script: str | None) -> tuple[Load, str]:
    def load(duration: float) -> WrkResult:
        argv = [tool, "-t1", f"-c{HTTP_CONNS}", f"-d{max(1, round(duration))}s"]
        argv += ["--timeout", "5s"] + (["-s", str(LUA / script)] if script else [])
        return parse_wrk(_client([*argv, url], timeout=duration + 30))

    shown = f"wrk -t1 -c{HTTP_CONNS} -dNs" + (f" -s bench/lua/{script}" if script else "")
    return load, f"{shown} {url.replace(str(_port_of(url)), 'PORT')}"


def dnsperf_load(tool: str, port: int, queries: Path) -> tuple[Load, str]:
    def load(duration: float) -> WrkResult:
        argv = [tool, "-s", "127.0.0.1", "-p", str(port), "-d", str(queries)]
        argv += ["-l", str(max(1, round(duration))), "-c", str(DNS_CLIENTS), "-T", "1", "-t", "2"]
        return parse_dnsperf(_client(argv, timeout=duration + 30))

    shown = f"dnsperf -s 127.0.0.1 -p PORT -d {queries.name} -lN -c {DNS_CLIENTS} -T 1 -t 2"
    return load, shown


def echo_load(client: Path, port: int, udp: bool) -> tuple[Load, str]:
    def load(duration: float) -> WrkResult:
        out = run_client(client, port, ECHO_CONNS, duration, 0.0, udp)
        note = f"{out['errors']} connection(s) failed" if out["errors"] else ""
        if out.get("lost"):
            note = f"{note} {out['lost']} lost".strip()
        return WrkResult(int(out["roundtrips"]), float(out["rps"]), note)

    shown = f"build/bench/echo_client --port PORT --conns {ECHO_CONNS} --size 1024 --duration N"
    return load, shown + (" --udp" if udp else "")


def _port_of(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


def measure_row(row: Row, load: Load, pids: dict[str, int], duration: float) -> None:
    """One run of ``row``: CPU of its processes around one bounded load."""
    before = {name: cpu_seconds(pids[name]) for name in row.processes}
    try:
        result = load(duration)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        row.error = str(exc)[:200]
        return
    after = {name: cpu_seconds(pids[name]) for name in row.processes}
    cpu = {name: after[name] - before[name] for name in row.processes}
    row.runs.append(Run(result.requests, result.rate, cpu))
    row.error = result.note or row.error
    us = Run(result.requests, result.rate, cpu).us_per_request()
    LOG.info(
        "cpu %-10s %8.0f/s  %s",
        row.key,
        result.rate,
        "  ".join(f"{PROCESS_NAMES.get(n, n)} {v:.0f} µs" for n, v in us.items()),
    )


def warm(url: str, document: dict | None, count: int = 20) -> None:
    """A few requests before measuring: fills the resolver's cache and the front's pools."""
    for _ in range(count):
        try:
            if document is None:
                http_ok(url)
            else:
                post_json(url, document, timeout=5)
        except (OSError, urllib.error.URLError, ValueError):
            return


def delay_batch(resolver_port: int, names: int = 200) -> tuple[float | None, str]:
    """Seconds for one concurrent request of ``names`` distinct delay-100 names."""
    batch = [f"c{i}-{time.monotonic_ns()}.delay-100.polyloop.test" for i in range(names)]
    url = f"http://127.0.0.1:{resolver_port}/resolve"
    started = time.monotonic()
    try:
        answer = post_json(url, {"names": batch, "mode": "concurrent", "timeout": 5.0}, 15)
    except (OSError, ValueError) as exc:
        return None, f"request failed: {exc}"
    seconds = time.monotonic() - started
    failed = [r for r in answer.get("results", []) if r.get("error")]
    return seconds, f"{len(failed)}/{names} failed" if failed else ""


@dataclass
class CpuPart:
    rows: list[Row]
    delay_runs: list[float] = field(default_factory=list)
    delay_cpu: list[float] = field(default_factory=list)  # the resolver's CPU s for each
    delay_note: str = ""

    def by_key(self) -> dict[str, Row]:
        return {row.key: row for row in self.rows}


def run(tools: Toolbox, repeats: int, duration: float, log_dir: Path) -> CpuPart:
    """Start everything once, measure every row ``repeats`` times round-robin, stop all."""
    server_cpus = cores()[0]
    queries = query_file(log_dir.parent / "dns-queries.txt")
    part = CpuPart([])
    with Servers(log_dir / "cpu") as servers:
        ports = start(servers, STACK)
        pids = {name: proc.pid for name, proc in servers.procs}
        minimal = {
            "pywsgi": [f"{SERVERS}/pywsgi_resolve.py"],
            "names": [f"{SERVERS}/twisted_names.py"],
            "asyncio-udp": [f"{SERVERS}/asyncio_udp_echo.py"],
            "book": [f"{SERVERS}/book_echo.py"],
            "aiohttp": [f"{SERVERS}/aiohttp_proxy.py"],
        }
        minimal_ports = {}
        for name, argv in minimal.items():
            port = free_port()
            minimal_ports[name] = port
            proc = servers.start(name, [PY, *argv, str(port)], ports.env(), server_cpus)
            pids[name] = proc.pid
        ready = {
            "pywsgi": lambda: tcp_ready(minimal_ports["pywsgi"]),
            "names": lambda: dns_answers(minimal_ports["names"]),
            "asyncio-udp": lambda: udp_echo_ready(minimal_ports["asyncio-udp"]),
            "book": lambda: tcp_ready(minimal_ports["book"]),
            "aiohttp": lambda: http_ok(f"http://127.0.0.1:{minimal_ports['aiohttp']}/healthz"),
        }
        for name, (module, prefix) in NO_WATCHDOG.items():
            port = free_port()
            minimal_ports[name] = port
            env = {
                **ports.env(),
                f"{prefix}_PORT": str(port),
                f"{prefix}_METRICS_PORT": str(free_port()),
                "POLYLOOP_STALL_WATCHDOG": "0",
            }
            pids[name] = servers.start(name, [PY, "-m", module], env, server_cpus).pid
        # the same front a second time on uvloop (WEB_LOOP=uvloop), the same backends
        port = free_port()
        minimal_ports["web_uvloop"] = port
        env = {**ports.env(), "WEB_PORT": str(port), "WEB_METRICS_PORT": str(free_port())}
        env["WEB_LOOP"] = "uvloop"
        pids["web_uvloop"] = servers.start(
            "web_uvloop", [PY, "-m", "services.web"], env, server_cpus
        ).pid
        ready["web_uvloop"] = lambda: http_ok(
            f"http://127.0.0.1:{minimal_ports['web_uvloop']}/healthz"
        )
        ready["tcp_echo_nowatch"] = lambda: tcp_ready(minimal_ports["tcp_echo_nowatch"])
        ready["udp_echo_nowatch"] = lambda: udp_echo_ready(minimal_ports["udp_echo_nowatch"])
        ready["dns_nowatch"] = lambda: dns_answers(minimal_ports["dns_nowatch"])
        for name, check in ready.items():
            servers.wait_until(name, check)
        loads: dict[str, Load] = {}

        def add(key, label, main, processes, load_cmd, base="", peer="") -> None:
            load, command = load_cmd
            loads[key] = load
            part.rows.append(Row(key, label, main, tuple(processes), command, base, peer))

        one_name = {"names": ["www.polyloop.test"]}
        resolver_url = f"http://127.0.0.1:{ports.resolver}/resolve"
        pywsgi_url = f"http://127.0.0.1:{minimal_ports['pywsgi']}/resolve"
        web = f"http://127.0.0.1:{ports.web}"
        warm(resolver_url, one_name)
        warm(pywsgi_url, one_name)
        if tools.wrk:
            add(
                "pywsgi",
                "minimal pywsgi POST /resolve (bench/servers/pywsgi_resolve.py)",
                "pywsgi",
                ["pywsgi"],
                wrk_load(tools.wrk, pywsgi_url, "resolve.lua"),
            )
            add(
                "resolver",
                "resolver POST /resolve, 1 cached name",
                "resolver",
                ["resolver", "dns"],
                wrk_load(tools.wrk, resolver_url, "resolve.lua"),
                base="pywsgi",
            )
            proxy = f"http://127.0.0.1:{minimal_ports['aiohttp']}"
            uvloop = f"http://127.0.0.1:{minimal_ports['web_uvloop']}"
            fronts = (
                ("", web, "web"),
                ("aiohttp-", proxy, "aiohttp"),
                ("uvloop-", uvloop, "web_uvloop"),
            )
            for prefix, url, main in fronts:
                for key, label, script, document in FRONT_ROUTES:
                    route = label.split()[1].rstrip(",")
                    warm(url + route, document)
                    add(
                        prefix + key,
                        f"{FRONT_LABELS[main]} {label}",
                        main,
                        (main, *FRONT_PROCESSES[1:]),
                        wrk_load(tools.wrk, url + route, script),
                        base="" if key == "healthz" else prefix + "healthz",
                        peer="" if prefix == "aiohttp-" else "aiohttp-" + key,
                    )
        if tools.dnsperf:
            add(
                "names",
                "minimal Twisted Names (bench/servers/twisted_names.py)",
                "names",
                ["names"],
                dnsperf_load(tools.dnsperf, minimal_ports["names"], queries),
            )
            add(
                "dns",
                "dns service (Twisted Names)",
                "dns",
                ["dns"],
                dnsperf_load(tools.dnsperf, ports.dns, queries),
                base="names",
            )
            add(
                "dns-nowatch",
                "dns service (Twisted Names), stall watchdog off",
                "dns_nowatch",
                ["dns_nowatch"],
                dnsperf_load(tools.dnsperf, minimal_ports["dns_nowatch"], queries),
                base="names",
            )
        if tools.client:
            for key, label, target, port, udp, base in (
                ("asyncio-udp", "minimal asyncio DatagramProtocol", "asyncio-udp", 0, True, ""),
                ("udp-echo", "udp-echo (asyncio)", "udp_echo", ports.udp_echo, True, "asyncio-udp"),
                ("book", "book echo (Twisted)", "book", 0, False, ""),
                ("tcp-echo", "tcp-echo (Twisted)", "tcp_echo", ports.tcp_echo, False, "book"),
                (
                    "udp-echo-nowatch",
                    "udp-echo (asyncio), stall watchdog off",
                    "udp_echo_nowatch",
                    0,
                    True,
                    "asyncio-udp",
                ),
                (
                    "tcp-echo-nowatch",
                    "tcp-echo (Twisted), stall watchdog off",
                    "tcp_echo_nowatch",
                    0,
                    False,
                    "book",
                ),
            ):
                add(
                    key,
                    f"{label}, {ECHO_CONNS} conn",
                    target,
                    [target],
                    echo_load(tools.client, port or minimal_ports[target], udp),
                    base=base,
                )
        for repeat in range(repeats):
            # each repeat sweeps every row, so a trend in the machine's load hits all alike
            for row in part.rows if repeat % 2 == 0 else reversed(part.rows):
                measure_row(row, loads[row.key], pids, duration)
            cpu_before = cpu_seconds(pids["resolver"])
            seconds, note = delay_batch(ports.resolver)
            if seconds is not None:
                part.delay_runs.append(seconds)
                part.delay_cpu.append(cpu_seconds(pids["resolver"]) - cpu_before)
            part.delay_note = note or part.delay_note
            LOG.info("cpu resolver 200 x delay-100: %s s %s", seconds, note)
        for name in STACK:
            proc = dict(servers.procs)[name]
            if proc.poll() is not None:
                LOG.warning("%s exited during the cpu part (%s)", name, proc.returncode)
    return part


GOALS = (
    # (row, what is compared, bound, how): "cpu" the row's CPU/request at most bound x its
    # base row's, "peer" at most bound x the minimal program's doing the same job, "rate"
    # its requests/s at least bound x its base row's
    ("resolver", "resolver CPU/request ≤ 1.3x minimal pywsgi", 1.3, "cpu"),
    *(
        (key, f"front {label.split(',')[0]} web CPU ≤ 1.15x minimal aiohttp", 1.15, "peer")
        for key, label, _, _ in FRONT_ROUTES
    ),
    ("dns", "dns queries/s ≥ 0.9x minimal Twisted Names", 0.9, "rate"),
    ("udp-echo", "udp-echo round trips/s ≥ 0.95x minimal asyncio", 0.95, "rate"),
    ("tcp-echo", "tcp-echo round trips/s ≥ 0.95x book echo", 0.95, "rate"),
    ("tcp-echo", "tcp-echo CPU/echo ≤ 1.05x book echo", 1.05, "cpu"),
)


def goal_lines(part: CpuPart) -> list[str]:
    by = part.by_key()
    out = []
    for key, text, bound, kind in GOALS:
        row = by.get(key)
        base = by.get((row.peer if kind == "peer" else row.base) if row else "")
        if row is None or base is None:
            out.append(f"- {text}: not measured")
            continue
        if kind == "rate":
            value = ratio(row.rate, base.rate)
            reached = value is not None and value >= bound
        else:
            value = ratio(row.main_us, base.main_us)
            reached = value is not None and value <= bound
        shown = f"{value:.2f}x" if value is not None else "—"
        out.append(f"- {text}: {shown} — {'reached' if reached else 'NOT reached'}")
    if part.delay_runs:
        seconds = statistics.median(part.delay_runs)
        mark = "reached" if seconds <= 0.3 and not part.delay_note else "NOT reached"
        # wall time follows the machine's load; the resolver's own CPU for it does not
        cpu = f", resolver CPU {statistics.median(part.delay_cpu):.3f} s" if part.delay_cpu else ""
        out.append(
            f"- resolver 200 x delay-100 concurrent ≤ 0.3 s: {seconds:.3f} s{cpu} — {mark} "
            f"{part.delay_note}".rstrip()
        )
    return out


# (the service's row, the same service's row with its stall watchdog off)
WATCHDOG_PAIRS = (
    ("tcp-echo", "tcp-echo-nowatch"),
    ("udp-echo", "udp-echo-nowatch"),
    ("dns", "dns-nowatch"),
)


def watchdog_lines(part: CpuPart) -> list[str]:
    """The stall watchdog's cost: each service's ratios to its minimal program, with the
    watchdog on and off, side by side (the same run, the same base rows)."""
    by = part.by_key()
    out = [
        "| service | x base req/s, watchdog on | off | x base CPU, watchdog on | off |",
        "|---|---|---|---|---|",
    ]
    for on_key, off_key in WATCHDOG_PAIRS:
        on, off = by.get(on_key), by.get(off_key)
        base = by.get(on.base) if on else None
        if on is None or off is None or base is None:
            continue
        cells = [
            ratio(on.rate, base.rate),
            ratio(off.rate, base.rate),
            ratio(on.main_us, base.main_us),
            ratio(off.main_us, base.main_us),
        ]
        shown = " | ".join(f"{c:.2f}x" if c else "—" for c in cells)
        out.append(f"| {on_key} | {shown} |")
    return out if len(out) > 2 else []


# the front on uvloop is adopted as the default only if every route is this much cheaper
UVLOOP_BAR = 1.3


def uvloop_lines(part: CpuPart) -> list[str]:
    """The front's CPU per request on asyncio's loop over the same on uvloop, per route
    (two processes of the same front, the same backends, the same run)."""
    by = part.by_key()
    out = [
        "| route | web µs (asyncio) | web µs (uvloop) | asyncio / uvloop |",
        "|---|---|---|---|",
    ]
    for key, label, _, _ in FRONT_ROUTES:
        on_asyncio, on_uvloop = by.get(key), by.get("uvloop-" + key)
        if on_asyncio is None or on_uvloop is None:
            continue
        cheaper = ratio(on_asyncio.main_us, on_uvloop.main_us)
        shown = f"{cheaper:.2f}x" if cheaper else "—"
        out.append(f"| {label} | {_us(on_asyncio.main_us)} | {_us(on_uvloop.main_us)} | {shown} |")
    return out if len(out) > 2 else []


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}" if value < 10 else f"{value:.0f}"


def table(part: CpuPart) -> list[str]:
    """The markdown section: one row per load, CPU per process, both ratios, commands."""
    by = part.by_key()
    lines = [
        "| row | req/s | x base req/s | CPU µs/request (main process first) | x base CPU "
        "| x minimal, same route | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in part.rows:
        base = by.get(row.base)
        us = row.us()
        procs = sorted(us, key=lambda n: (n != row.main, -us[n]))
        shown = ", ".join(
            f"{PROCESS_NAMES.get(n, n)} {_us(us[n])}" for n in procs if n == row.main or us[n] >= 1
        )
        rate_ratio = ratio(row.rate, base.rate) if base else None
        cpu_ratio = ratio(row.main_us, base.main_us) if base else None
        peer = by.get(row.peer)
        peer_ratio = ratio(row.main_us, peer.main_us) if peer else None
        lines.append(
            f"| {row.label} | {_us(row.rate)} | "
            f"{f'{rate_ratio:.2f}x' if rate_ratio else '—'} | {shown or '—'} | "
            f"{f'{cpu_ratio:.2f}x' if cpu_ratio else '—'} | "
            f"{f'{peer_ratio:.2f}x' if peer_ratio else '—'} | {row.error} |"
        )
    lines += ["", "Commands (PORT: the server's free port, N: seconds per run):", ""]
    lines += ["```"] + [f"{row.key}: {row.command}" for row in part.rows] + ["```"]
    return lines


def section(part: CpuPart) -> list[str]:
    if not part.rows:
        return []
    lines = ["## CPU per request (µs, per process; median of runs)", ""]
    lines += [
        "Every server on the server core, the load tool on the other; CPU = utime + stime "
        "from /proc/<pid>/stat around each run, divided by the requests the tool completed. "
        "The front's rows count every process a request crosses (processes under 1 µs "
        "left out); x base compares the row's first process with its base row's.",
        "",
    ]
    lines += [*table(part), "", "### Goals (CPU part)", "", *goal_lines(part), ""]
    watchdog = watchdog_lines(part)
    if watchdog:
        lines += ["### The stall watchdog's cost (on vs POLYLOOP_STALL_WATCHDOG=0)", ""]
        lines += [*watchdog, ""]
    uvloop = uvloop_lines(part)
    if uvloop:
        lines += [
            f"### The front on uvloop (WEB_LOOP=uvloop; made the default only at ≥ {UVLOOP_BAR}x"
            " on every route)",
            "",
        ]
        lines += [*uvloop, ""]
    return lines


def as_json(part: CpuPart) -> dict:
    return {
        "rows": [
            {
                "key": r.key,
                "label": r.label,
                "base": r.base,
                "main": r.main,
                "command": r.command,
                "rate": r.rate,
                "us_per_request": r.us(),
                "runs": [vars(run) for run in r.runs],
                "error": r.error,
            }
            for r in part.rows
        ],
        "delay_200_seconds": part.delay_runs,
        "delay_200_resolver_cpu_seconds": part.delay_cpu,
        "delay_note": part.delay_note,
    }
