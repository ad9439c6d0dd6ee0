"""What the front's steady client costs: every process's CPU with it on and off, idle.

    .venv/bin/python -m bench.steady_cost [--seconds 60] [--rounds 1]

Starts the five services as local processes on free 127.0.0.1 ports (``bench.stack``), once
with ``WEB_STEADY=1`` and once with ``WEB_STEADY=0`` (alternating, ``--rounds`` times each),
lets each stack settle, then reads every process's CPU time (user + system,
``/proc/<pid>/stat``) over ``--seconds``. Nothing else loads the stack meanwhile, so the
difference is the steady client's calls and what they cost each service, in % of one core.
Prints a Markdown table; every process it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.cpu import cpu_seconds
from bench.procs import Servers
from bench.stack import start
from services.common.catalogue import NAMES

SETTLE = 5.0  # seconds after start before measuring: imports, first connections, caches


def measure(steady: bool, seconds: float, log_dir: Path) -> dict[str, float]:
    """Each service's CPU, in % of one core, over `seconds` of an idle stack."""
    with Servers(log_dir / ("on" if steady else "off")) as servers:
        start(servers, tuple(s.replace("-", "_") for s in NAMES), {"WEB_STEADY": str(int(steady))})
        pids = {name.replace("_", "-"): proc.pid for name, proc in servers.procs}
        time.sleep(SETTLE)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        time.sleep(seconds)
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        elapsed = time.monotonic() - started
    return {name: 100 * (after[name] - before[name]) / elapsed for name in pids}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.steady_cost", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured per stack")
    parser.add_argument("--rounds", type=int, default=1, help="on/off pairs (mean kept)")
    args = parser.parse_args(argv)
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="steady-cost-") as logs:
        for _ in range(args.rounds):
            for steady in (True, False):
                runs[steady].append(measure(steady, args.seconds, Path(logs)))
    mean = {
        steady: {name: sum(r[name] for r in rs) / len(rs) for name in NAMES}
        for steady, rs in runs.items()
    }
    print(f"CPU, % of one core, idle stack, {args.seconds:g} s x {args.rounds} round(s)\n")
    print("| process | WEB_STEADY=1 | WEB_STEADY=0 | steady client's cost |")
    print("|---|---|---|---|")
    for name in NAMES:
        on, off = mean[True][name], mean[False][name]
        print(f"| {name} | {on:.2f} | {off:.2f} | {on - off:+.2f} |")
    total_on, total_off = sum(mean[True].values()), sum(mean[False].values())
    print(f"| all five | {total_on:.2f} | {total_off:.2f} | {total_on - total_off:+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
