"""How fast does udp-echo echo, next to the plainest asyncio datagram echo?

    .venv/bin/python -m bench.udp_cpu [--seconds 1] [--rounds 12] [--window 64] [--size 64]
    .venv/bin/python -m bench.udp_cpu --control    # minimal vs minimal: the noise floor

Starts both servers as processes on free 127.0.0.1 ports (pinned to one CPU, the client
to another), then for `rounds` rounds in ABBA order keeps `window` datagrams in flight
from one blocking client for `seconds` and counts the echoes. Logs, for udp-echo over
minimal: the ratio of median echoes/s, the median of per-round ratios, the ratio of
server CPU time per echo, and the Python cost of one ``datagram_received`` call of each
with a do-nothing transport — the steadiest figure. The port guard, size cap and
switched-off rate limiter should cost under 5 % of an echo. Not a test: the figures
depend on the machine and on whatever else it runs (``--control`` shows how much).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import timeit
from contextlib import ExitStack
from pathlib import Path

from devstack import free_port
from services.common.logging import setup_logging
from services.udp_echo.healthcheck import check as udp_echo_check
from services.udp_echo.protocol import ServerUdpEchoProtocol

log = logging.getLogger("bench.udp_cpu")

# the book's protocol and nothing else: the floor any asyncio UDP echo stands on
MINIMAL_ECHO = """
import asyncio, sys

class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

async def main():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", int(sys.argv[1])))
    await asyncio.Event().wait()

asyncio.run(main())
"""


def start(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen:
    # the command is this interpreter and a constant script or module: nothing untrusted
    proc = subprocess.Popen(  # noqa: S603
        command,
        env={**os.environ, "UDP_ECHO_METRICS_PORT": "0", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while udp_echo_check(port, timeout=0.2, tries=1) is not None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{command} did not start echoing on {port}")
    return proc


def cpu_seconds(pid: int) -> float:
    """On-CPU time of a process so far (Linux): schedstat's nanoseconds, else stat's ticks."""
    schedstat = Path(f"/proc/{pid}/schedstat")
    if schedstat.exists():
        return int(schedstat.read_text().split()[0]) / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def echo_rate(port: int, seconds: float, window: int, size: int) -> float:
    """Echoes per second with `window` datagrams in flight; a lost one is simply re-sent."""
    payload = os.urandom(size)
    echoed = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(0.2)
        for _ in range(window):
            sock.send(payload)
        started = time.perf_counter()
        end = started + seconds
        while time.perf_counter() < end:
            try:
                sock.recv(65535)
            except OSError:  # lost (or an ICMP error for one): refill the window
                for _ in range(window):
                    sock.send(payload)
                continue
            echoed += 1
            sock.send(payload)
        elapsed = time.perf_counter() - started
        # drain what is still in flight so the next round starts clean
        sock.settimeout(0.05)
        try:
            while sock.recv(65535):
                pass
        except TimeoutError:
            pass
    return echoed / elapsed


class _NullTransport:
    def sendto(self, data: bytes, addr: object) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class _MinimalEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


def hot_path_ns(size: int) -> dict[str, float]:
    """ns per datagram_received call with a transport that does nothing: the Python cost only."""
    logging.getLogger("services.udp_echo.protocol").setLevel(logging.WARNING)
    data, addr, calls = os.urandom(size), ("127.0.0.1", 40000), 500_000
    result = {}
    for name, protocol in (("minimal", _MinimalEcho()), ("udp-echo", ServerUdpEchoProtocol())):
        protocol.connection_made(_NullTransport())  # type: ignore[arg-type]
        best = min(
            timeit.repeat(
                lambda p=protocol: p.datagram_received(data, addr), number=calls, repeat=7
            )
        )
        result[name] = round(best / calls * 1e9, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--control",
        action="store_true",
        help="run the minimal echo in both slots: the machine's noise floor for these ratios",
    )
    args = parser.parse_args(argv)
    setup_logging("udp-echo-bench")

    # the client on one CPU, both servers on another: otherwise each process keeps whatever
    # placement the scheduler gave it, and that alone skews a comparison by 10 %
    cpus = sorted(os.sched_getaffinity(0))
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (cpus[0], cpus[0])
    os.sched_setaffinity(0, {client_cpu})
    ports = {"minimal": free_port(), "udp-echo": free_port()}
    rates: dict[str, list[float]] = {name: [] for name in ports}
    # CPU per echo is steadier than echoes/s on a busy machine: it ignores time not scheduled
    cpu_per_echo: dict[str, list[float]] = {name: [] for name in ports}
    pids: dict[str, int] = {}
    with ExitStack() as stack:
        for name, command, env in [
            ("minimal", [sys.executable, "-c", MINIMAL_ECHO, str(ports["minimal"])], {}),
            (
                "udp-echo",
                [sys.executable, "-c", MINIMAL_ECHO, str(ports["udp-echo"])]
                if args.control
                else [sys.executable, "-m", "services.udp_echo"],
                {"UDP_ECHO_PORT": str(ports["udp-echo"]), "LOG_LEVEL": "WARNING"},
            ),
        ]:
            proc = start(command, ports[name], env)
            pids[name] = proc.pid
            os.sched_setaffinity(proc.pid, {server_cpu})
            stack.callback(proc.wait, 10)
            stack.callback(proc.terminate)
        for round_no in range(args.rounds):
            # ABBA order: a trend in the machine's load hits both servers alike
            order = list(ports) if round_no % 2 == 0 else list(reversed(ports))
            for name in order:
                cpu_before = cpu_seconds(pids[name])
                rate = echo_rate(ports[name], args.seconds, args.window, args.size)
                cpu_us = (cpu_seconds(pids[name]) - cpu_before) / (rate * args.seconds) * 1e6
                rates[name].append(rate)
                cpu_per_echo[name].append(cpu_us)
                log.info(
                    "round",
                    extra={
                        "round": round_no,
                        "server": name,
                        "echo_per_s": round(rate),
                        "server_cpu_us_per_echo": round(cpu_us, 2),
                    },
                )
    # neighbours in time share the machine's load: compare each round's pair, then summarise
    pair_ratios = [
        ours / base for ours, base in zip(rates["udp-echo"], rates["minimal"], strict=True)
    ]
    medians = {name: statistics.median(values) for name, values in rates.items()}
    cpu = {name: statistics.median(values) for name, values in cpu_per_echo.items()}
    log.info(
        "udp echo rate",
        extra={
            "median_echo_per_s": {name: round(value) for name, value in medians.items()},
            "ratio": round(medians["udp-echo"] / medians["minimal"], 3),
            "median_pair_ratio": round(statistics.median(pair_ratios), 3),
            "median_server_cpu_us_per_echo": {name: round(us, 2) for name, us in cpu.items()},
            "cpu_ratio": round(cpu["minimal"] / cpu["udp-echo"], 3),
            "hot_path_ns_per_datagram": hot_path_ns(args.size),
            "seconds": args.seconds,
            "rounds": args.rounds,
            "window": args.window,
            "size": args.size,
            "control": args.control,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
