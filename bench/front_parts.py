"""Where do the front's µs per request go? The front priced one behaviour at a time.

    .venv/bin/python -m bench.front_parts                       # every route, 3 rounds of 3 s
    .venv/bin/python -m bench.front_parts --routes healthz,echo-tcp --repeats 5

The backends start once as local processes (bench/stack.py); then the front starts seven
times beside them, each process with one more of its behaviours taken away
(``bench/servers/web_without.py``: the background work, its loop's watch, the guard around
backend calls, the middleware's work, the middleware itself, its own serving layer), and
last the minimal aiohttp program (``bench/servers/aiohttp_proxy.py``) doing the same
backend calls. wrk loads each in turn, round-robin, with the load of ``make bench``'s cpu
part; the figure is the front process's CPU µs per request (``/proc/<pid>/stat``), the
median of the rounds. Each line's difference from the line above is what the behaviour it
takes away costs; the last difference is the route's own work (body validation, replica
pick, reply check, the answer's extra fields). Not a test: the figures follow the machine,
read them as ratios of one run. The table also goes to reports/bench/front-parts.md.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from dataclasses import dataclass, field

from bench import cpu
from bench.procs import ROOT, Servers, cores, free_port
from bench.servers.web_without import PARTS
from bench.stack import start

LOG = logging.getLogger("bench.front_parts")
WITHOUT = f"{cpu.SERVERS}/web_without.py"
MINIMAL = f"{cpu.SERVERS}/aiohttp_proxy.py"
ROUTES = {key: (label, script, document) for key, label, script, document in cpu.FRONT_ROUTES}
# what each step takes away, as the table says it
TAKEN = {
    "background": "the steady client and the once-a-second scrape",
    "watch": "its loop's watch: lag timer, stall watchdog, control port",
    "guard": "the guard around each backend call (deadline, stats, metrics, problems)",
    "work": "the middleware's work (count, time, Host/Origin, problem+json, headers)",
    "chain": "the middleware itself (aiohttp's chain and its current-app layer)",
    "server": "its serving layer (connection limit, parser problems, access logger)",
}


@dataclass
class Step:
    """One front process: the behaviours taken away from it (cumulative), and per route
    its measured runs (a row of ``bench.cpu``'s kind, measured as that table's are)."""

    name: str
    label: str
    removed: tuple[str, ...]
    minimal: bool = False
    rows: dict[str, cpu.Row] = field(default_factory=dict)

    def row(self, route: str) -> cpu.Row:
        if route not in self.rows:
            label, _, _ = ROUTES[route]
            key = f"{self.name} {route}"
            self.rows[route] = cpu.Row(key, label, self.name, (self.name,), "")
        return self.rows[route]

    def median(self, route: str) -> float | None:
        """The median µs per request of the front process over the route's runs."""
        row = self.rows.get(route)
        return row.main_us if row is not None else None


def steps() -> list[Step]:
    """The front as shipped, then one more behaviour taken away per step, then the floor."""
    out = [Step("shipped", "the front as shipped", ())]
    for i, part in enumerate(PARTS):
        out.append(Step(part, f"- {TAKEN[part]}", PARTS[: i + 1]))
    out.append(Step("minimal", "minimal aiohttp (bench/servers/aiohttp_proxy.py)", (), True))
    return out


def table(route: str, rows: list[Step]) -> list[str]:
    """A markdown table for one route: µs per request, the change from the line above,
    and the ratio to the minimal program (the last line)."""
    floor = rows[-1].median(route)
    out = [
        f"#### {ROUTES[route][0]}",
        "",
        "| step | web µs/request | change | x minimal |",
        "|---|---:|---:|---:|",
    ]
    above: float | None = None
    for step in rows:
        us = step.median(route)
        if us is None:
            out.append(f"| {step.label} | — | | |")
            continue
        label = "route's own work → " + step.label if step.minimal else step.label
        change = "" if above is None else f"{us - above:+.1f}"
        times = f"{us / floor:.2f}x" if floor else ""
        out.append(f"| {label} | {us:.1f} | {change} | {times} |")
        above = us
    return [*out, ""]


def measure(routes: list[str], repeats: int, seconds: float) -> list[Step]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(
            "wrk is not installed (make bench builds the tools: see docs/benchmarks.md)"
        )
    rows = steps()
    server_cpus = cores()[0]
    with Servers(ROOT / "reports" / "bench" / "logs" / "front-parts") as servers:
        ports = start(servers, ("dns", "tcp_echo", "udp_echo", "resolver"))
        fronts: dict[str, tuple[int, int]] = {}
        for step in rows:
            port = free_port()
            env = {**ports.env(), "WEB_PORT": str(port), "WEB_METRICS_PORT": str(free_port())}
            argv = (
                [cpu.PY, MINIMAL, str(port)]
                if step.minimal
                else [cpu.PY, WITHOUT, ",".join(step.removed)]
            )
            fronts[step.name] = (port, servers.start(step.name, argv, env, server_cpus).pid)
        for step in rows:
            url = f"http://127.0.0.1:{fronts[step.name][0]}/healthz"
            servers.wait_until(step.name, lambda url=url: cpu.http_ok(url))
        for round_ in range(repeats):
            for route in routes:
                label, script, document = ROUTES[route]
                path = label.split()[1].rstrip(",")
                for step in rows:
                    port, pid = fronts[step.name]
                    url = f"http://127.0.0.1:{port}{path}"
                    if round_ == 0:
                        cpu.warm(url, document)
                    load, _ = cpu.wrk_load(wrk, url, script)
                    row = step.row(route)
                    cpu.measure_row(row, load, {step.name: pid}, seconds)
                    if row.error:
                        LOG.warning("%s %s: %s", step.name, route, row.error)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m bench.front_parts", description=__doc__
    )
    parser.add_argument("--routes", default=",".join(ROUTES), help=f"of {', '.join(ROUTES)}")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (the median is kept)")
    parser.add_argument("--seconds", type=float, default=3.0, help="of wrk load per measurement")
    args = parser.parse_args(argv)
    routes = [r for r in args.routes.split(",") if r]
    unknown = set(routes) - set(ROUTES)
    if unknown:
        parser.error(f"unknown route(s) {sorted(unknown)}; known: {', '.join(ROUTES)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = measure(routes, args.repeats, args.seconds)
    out = [f"### Where the front's µs go ({args.repeats} rounds of {args.seconds:g} s)", ""]
    for route in routes:
        out += table(route, rows)
    text = "\n".join(out)
    report = ROOT / "reports" / "bench" / "front-parts.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
