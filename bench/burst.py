"""The resolver's headline under load: bursts of 256 names of 100 ms, quiet and beside Locust.

    python -m bench --only burst           # part of make bench: a local stack of its own
    python -m bench.burst --running        # the running stack (containers or make up),
                                           # its addresses from RESOLVER_PORT, DNS_PORT, ...
    python -m bench.burst --running --dns-pid "$(docker inspect -f '{{.State.Pid}}' CID)"

Each phase sends ``REQUESTS`` consecutive ``POST /resolve`` of ``NAMES`` distinct
``<unique>.delay-100.polyloop.test`` names (concurrent, timeout 5 s) straight to the resolver:
first on a quiet stack, then while a ``LOCUST_USERS``-user Locust run (``make load``'s mix of
every user type) loads the whole stack. Per request: the wall time, the names that failed,
and the names' own ``elapsed_ms`` (p50, max). Per phase: the datagrams the dns service's UDP
socket dropped (the ``drops`` column of ``/proc/<pid>/net/udp``, its port's row) and the
``RcvbufErrors`` of its network namespace (``/proc/<pid>/net/snmp``: the whole host in local
mode, the dns container's own namespace in compose).

The bounds: every quiet request within ``QUIET_BOUND`` seconds, at least ``LOADED_WANTED`` of
the loaded ones within ``LOADED_BOUND``, no drop at the dns socket.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import ROOT, Servers
from bench.stack import post_json, start
from services.dns import receive

LOG = logging.getLogger("bench.burst")
REQUESTS = 20
NAMES = 256
DELAY_MS = 100
TIMEOUT = 5.0
QUIET_BOUND = 0.35
LOADED_BOUND = 0.5
LOADED_WANTED = 19
LOCUST_USERS = 20
LOCUST_RATE = 10
STACK = ("dns", "tcp_echo", "udp_echo", "resolver", "web")


@dataclass
class Request:
    seconds: float
    failed: int
    name_p50_ms: float
    name_max_ms: float
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class Phase:
    name: str
    bound: float
    wanted: int
    requests: list[Request] = field(default_factory=list)
    drops: int | None = None  # at the dns service's UDP socket
    rcvbuf_errors: int | None = None  # in the dns service's network namespace
    note: str = ""

    @property
    def within(self) -> int:
        return sum(1 for r in self.requests if r.seconds <= self.bound and not r.failed)

    @property
    def reached(self) -> bool:
        return len(self.requests) >= self.wanted and self.within >= self.wanted and not self.drops


def socket_drops(pid: int, port: int) -> int | None:
    """The ``drops`` of the UDP socket bound to ``port`` in the network namespace of ``pid``
    (the dns service's own reading of it, from its process's /proc view)."""
    return receive.drops(port, Path(f"/proc/{pid}/net"))


def rcvbuf_errors(pid: int) -> int | None:
    """``Udp: RcvbufErrors`` of the network namespace of ``pid``."""
    try:
        return rcvbuf_errors_in(Path(f"/proc/{pid}/net/snmp").read_text())
    except OSError:
        return None


def rcvbuf_errors_in(proc_net_snmp: str) -> int | None:
    udp = [line.split() for line in proc_net_snmp.splitlines() if line.startswith("Udp:")]
    if len(udp) < 2 or "RcvbufErrors" not in udp[0]:
        return None
    return int(udp[1][udp[0].index("RcvbufErrors")])


def one_request(url: str, names: int = NAMES, delay_ms: int = DELAY_MS) -> Request:
    nonce = time.monotonic_ns()
    batch = [f"b{i}-{nonce}.delay-{delay_ms}.polyloop.test" for i in range(names)]
    started = time.monotonic()
    try:
        answer = post_json(url, {"names": batch, "mode": "concurrent", "timeout": TIMEOUT}, 20)
    except (OSError, ValueError) as exc:
        return Request(time.monotonic() - started, names, 0.0, 0.0, {type(exc).__name__: names})
    seconds = time.monotonic() - started
    results = answer.get("results", [])
    elapsed = sorted(float(r.get("elapsed_ms") or 0) for r in results) or [0.0]
    errors: dict[str, int] = {}
    for r in results:
        if r.get("error"):
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    return Request(seconds, sum(errors.values()), statistics.median(elapsed), elapsed[-1], errors)


def run_phase(phase: Phase, url: str, dns_pid: int | None, dns_port: int, count: int) -> Phase:
    before = (socket_drops(dns_pid, dns_port), rcvbuf_errors(dns_pid)) if dns_pid else (None, None)
    for _ in range(count):
        request = one_request(url)
        phase.requests.append(request)
        LOG.info(
            "burst %-6s %.3f s  failed %d  names p50 %.0f ms max %.0f ms %s",
            phase.name,
            request.seconds,
            request.failed,
            request.name_p50_ms,
            request.name_max_ms,
            request.errors or "",
        )
    if dns_pid:
        after = (socket_drops(dns_pid, dns_port), rcvbuf_errors(dns_pid))
        if before[0] is not None and after[0] is not None:
            phase.drops = after[0] - before[0]
        if before[1] is not None and after[1] is not None:
            phase.rcvbuf_errors = after[1] - before[1]
    return phase


class Locust:
    """A headless Locust run of loadtest/ (every user type) for as long as the block lasts."""

    def __init__(self, env: dict[str, str], log: Path, users: int = LOCUST_USERS) -> None:
        self.env = env
        self.log = log
        self.users = users
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Locust:
        locust = Path(sys.executable).with_name("locust")
        argv = [str(locust), "-f", "loadtest", "--headless", "-u", str(self.users)]
        argv += ["-r", str(LOCUST_RATE), "-t", "600s", "--only-summary"]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
                argv,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"locust exited ({self.proc.returncode}); see {self.log}")
            if b"All users spawned" in self.log.read_bytes():
                time.sleep(2.0)  # let the users' first requests start: load, not a ramp
                return self
            time.sleep(0.2)
        raise RuntimeError(f"locust did not spawn its users in 30 s; see {self.log}")

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def measure(
    resolver_url: str,
    dns_pid: int | None,
    dns_port: int,
    locust_env: dict[str, str],
    log_dir: Path,
    requests: int = REQUESTS,
) -> list[Phase]:
    quiet = Phase("quiet", QUIET_BOUND, requests)
    loaded = Phase(f"{LOCUST_USERS}-user Locust", LOADED_BOUND, LOADED_WANTED * requests // 20)
    for _ in range(3):  # warm: the resolver's and the dns service's first burst
        one_request(resolver_url)
    run_phase(quiet, resolver_url, dns_pid, dns_port, requests)
    try:
        with Locust(locust_env, log_dir / "locust.log"):
            run_phase(loaded, resolver_url, dns_pid, dns_port, requests)
    except RuntimeError as exc:
        loaded.note = str(exc)[:200]
    return [quiet, loaded]


def run(log_dir: Path, requests: int = REQUESTS) -> list[Phase]:
    """A local stack of its own, NOT pinned to the server core (the stack, Locust and the
    bursts share both cores, as on a laptop running the demo); every phase measured."""
    with Servers(log_dir / "burst") as servers:
        ports = start(servers, STACK, pinned=False)
        pids = {name: proc.pid for name, proc in servers.procs}
        url = f"http://127.0.0.1:{ports.resolver}/resolve"
        return measure(url, pids["dns"], ports.dns, ports.env(), log_dir / "burst", requests)


def _ms(seconds: float) -> str:
    return f"{seconds:.3f}"


def section(phases: list[Phase]) -> list[str]:
    if not phases:
        return []
    lines = [
        f"## Resolver bursts: {NAMES} names of delay-{DELAY_MS} per request, "
        f"{max(len(p.requests) for p in phases)} requests per phase",
        "",
        "Straight to POST /resolve (concurrent, timeout 5 s); the stack unpinned on every core. "
        "Drops: the dns service's UDP socket (/proc/<pid>/net/udp); RcvbufErrors: its "
        "network namespace (the whole host in local mode).",
        "",
        "| phase | within bound | median s | p95 s | max s | failed names | names p50 / max ms "
        "| dns socket drops | RcvbufErrors | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in phases:
        secs = sorted(r.seconds for r in p.requests)
        if not secs:
            lines.append(f"| {p.name} | — | — | — | — | — | — | — | — | {p.note} |")
            continue
        p95 = secs[min(len(secs) - 1, round(0.95 * len(secs)) - 1)]
        failed = sum(r.failed for r in p.requests)
        names = (
            f"{statistics.median(r.name_p50_ms for r in p.requests):.0f} / "
            f"{max(r.name_max_ms for r in p.requests):.0f}"
        )
        lines.append(
            f"| {p.name} | {p.within}/{len(p.requests)} ≤ {p.bound:g} s | "
            f"{_ms(statistics.median(secs))} | {_ms(p95)} | {_ms(secs[-1])} | {failed} | {names} "
            f"| {'—' if p.drops is None else p.drops} "
            f"| {'—' if p.rcvbuf_errors is None else p.rcvbuf_errors} | {p.note} |"
        )
    lines += ["", *goal_lines(phases), ""]
    return lines


def goal_lines(phases: list[Phase]) -> list[str]:
    out = []
    for p in phases:
        mark = "reached" if p.reached else "NOT reached"
        drops = "" if p.drops is None else f", {p.drops} dropped at the dns socket"
        out.append(
            f"- burst, {p.name}: {p.within}/{len(p.requests)} within {p.bound:g} s "
            f"(≥ {p.wanted} wanted){drops} — {mark}"
        )
    return out


def as_json(phases: list[Phase]) -> list[dict]:
    return [
        {
            "phase": p.name,
            "bound": p.bound,
            "wanted": p.wanted,
            "within": p.within,
            "drops": p.drops,
            "rcvbuf_errors": p.rcvbuf_errors,
            "requests": [vars(r) for r in p.requests],
            "note": p.note,
        }
        for p in phases
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__)
    parser.add_argument("--running", action="store_true", help="measure the running stack")
    parser.add_argument("--dns-pid", type=int, help="the dns process (host pid) for its drops")
    parser.add_argument("--dns-port", type=int, help="its UDP port as it sees it (53 in compose)")
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.running:
        host = "127.0.0.1"
        url = f"http://{host}:{os.environ.get('RESOLVER_PORT', '8053')}/resolve"
        dns_port = args.dns_port or int(os.environ.get("DNS_PORT", "1053"))
        phases = measure(url, args.dns_pid, dns_port, {}, args.out / "burst", args.requests)
    else:
        phases = run(args.out / "logs", args.requests)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    sys.stdout.write("\n".join([f"load average after: {load}", "", *section(phases)]) + "\n")
    (args.out / "burst.json").parent.mkdir(parents=True, exist_ok=True)
    (args.out / "burst.json").write_text(json.dumps(as_json(phases), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
