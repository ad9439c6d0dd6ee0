"""What seeing inside a loop costs: tcp-echo and udp-echo with metrics on and off.

"on" is the shipped service as it runs in the stack (POLYLOOP_METRICS=1): the lag timer
ticks on its loop every POLYLOOP_LAG_INTERVAL, its metrics port answers from a thread,
and this harness scrapes that port once a second during the whole run, as the front
does. "off" is POLYLOOP_METRICS=0: no timer, no port, no scrape (the plain counters the
services always keep stay: they are their own statistics). Both run side by side, are
loaded by the same C client and measured round-robin (bench/echo.py); the cost is
1 - on/off of the medians. Goal: <= 3 % at 10 connections.

    .venv/bin/python -m bench --only metrics
    .venv/bin/python -m bench.metrics_cost --quick
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import urllib.request
from pathlib import Path

from bench import build
from bench.echo import PY, QUIET, Cell, Target, measure
from bench.procs import ROOT, free_port

LOG = logging.getLogger("bench.metrics")
SCRAPE_EVERY = 1.0  # seconds, as the front's live view
GOAL = 0.03  # at 10 connections


def targets(group: str, metrics_port: int) -> list[Target]:
    """The shipped service of ``group`` ("tcp" or "udp"), metrics on and off."""
    module, port_var, metrics_var = {
        "tcp": ("services.tcp_echo", "TCP_ECHO_PORT", "TCP_ECHO_METRICS_PORT"),
        "udp": ("services.udp_echo", "UDP_ECHO_PORT", "UDP_ECHO_METRICS_PORT"),
    }[group]
    extra = {"UDP_ECHO_STATS_INTERVAL": "0"} if group == "udp" else {}
    on = {**QUIET, **extra, "POLYLOOP_METRICS": "1", metrics_var: str(metrics_port)}
    off = {**QUIET, **extra, "POLYLOOP_METRICS": "0"}
    return [
        Target(
            "off",
            f"{module} metrics off",
            lambda p: [PY, "-m", module],
            lambda p: {**off, port_var: str(p)},
        ),
        Target(
            "on",
            f"{module} metrics on + 1 scrape/s",
            lambda p: [PY, "-m", module],
            lambda p: {**on, port_var: str(p)},
        ),
    ]


class Scraper(threading.Thread):
    """GET /metrics every second until stopped; counts the scrapes that answered."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.stopped = threading.Event()
        self.answered = 0

    def run(self) -> None:
        while not self.stopped.wait(SCRAPE_EVERY):
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:  # noqa: S310
                    response.read()
                self.answered += 1
            except OSError:
                pass  # not started yet, or already stopped


def run(
    tools: build.Toolbox, repeats: int, duration: float, warmup: float, logs: Path, conns: list[int]
) -> tuple[list[str], dict[str, list[Cell]]]:
    """Measure both groups; the markdown lines of the result and the raw cells."""
    lines = [
        "## Metrics cost (lag timer + metrics port + 1 scrape/s, vs POLYLOOP_METRICS=0)",
        "",
        "| service | conns | off rt/s | on rt/s | cost | off runs | on runs | scrapes answered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    raw: dict[str, list[Cell]] = {}
    for group in ("tcp", "udp"):
        metrics_port = free_port()
        scraper = Scraper(metrics_port)
        scraper.start()
        try:
            cells = measure(
                group, targets(group, metrics_port), tools, conns, repeats, duration, warmup, logs
            )
        finally:
            scraper.stopped.set()
        raw[group] = cells
        by = {(c.target, c.conns): c for c in cells}
        for n in conns:
            off, on = by["off", n].median, by["on", n].median
            cost = f"{1 - on / off:+.1%}" if on and off else "—"
            if n == 10 and on and off:
                # a cost inside the runs' own spread is noise, not a measurement
                if abs(1 - on / off) <= _spread(by["off", n].runs):
                    verdict = "within the runs' spread"
                else:
                    verdict = "reached" if 1 - on / off <= GOAL else "NOT reached"
                cost += f" (goal ≤ 3 %: {verdict})"
            lines.append(
                f"| {group}-echo | {n} | {_fmt(off)} | {_fmt(on)} | {cost} | "
                f"{_range(by['off', n].runs)} | {_range(by['on', n].runs)} | {scraper.answered} |"
            )
    return lines, raw


def _spread(runs: list[float]) -> float:
    """(max - min) / median of the runs: how much one cell varies by itself."""
    if len(runs) < 2:
        return 0.0
    ordered = sorted(runs)
    return (ordered[-1] - ordered[0]) / ordered[len(ordered) // 2]


def _range(runs: list[float]) -> str:
    return f"{min(runs):,.0f} to {max(runs):,.0f}" if runs else "—"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m bench.metrics_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="1 run of 1 s per cell")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client, server = build.compile_c()  # only the C client and server: no apt tools
    tools = build.Toolbox(client=client, server=server)
    repeats, duration, warmup = (1, 1.0, 0.2) if args.quick else (5, 3.0, 1.0)
    lines, _ = run(tools, repeats, duration, warmup, args.out / "logs", [1, 10, 100])
    write(lines, args.out)
    return 0


def write(lines: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    (out / "metrics-cost.md").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    sys.exit(main())
