"""Block vs latency, per loop: what a second client sees while a fault is set.

    .venv/bin/python -m bench.fault_contrast [--ms 500] [--seconds 3]   (the stack up, `make up`)

About 50 s with the defaults (four loops x three runs of ``--seconds``, 1.5 s after a fault).

For each of the four loops (tcp-echo Twisted, udp-echo asyncio, dns Twisted Names,
resolver gevent), through the front's fault API only (``PUT /api/faults/{service}``):

- ``baseline``: no fault;
- ``block``: ``block_ms`` every second (the loop itself sleeps);
- ``latency``: ``latency_ms`` per answer (the framework's timer).

While each is set, two clients run side by side for ``--seconds``, each doing round trips
one after another on the service's own published port: the table gives the round trips of
the SECOND client (median, max), both clients' throughput together, and the loop's lag p99
over the window from its metrics port (local mode: 127.0.0.1, the ``*_METRICS_PORT``
variables). The fault is cleared after each run (then 1.5 s for a block in progress to
end). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable

import dns.message
import dns.query

from bench.idle_lag import PORTS, histogram, quantile

HOST = "127.0.0.1"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, "").strip() or default)


def _front(method: str, path: str, body: dict | None = None) -> dict:
    url = f"http://{HOST}:{_port('WEB_PORT', 8080)}{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http only
        return json.load(response)


def tcp_client() -> Callable[[], None]:
    sock = socket.create_connection((HOST, _port("TCP_ECHO_PORT", 8000)), timeout=10)

    def once() -> None:
        sock.sendall(b"ping")
        assert sock.recv(100) == b"ping"

    return once


def udp_client() -> Callable[[], None]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    address = (HOST, _port("UDP_ECHO_PORT", 9999))

    def once() -> None:
        sock.sendto(b"ping", address)
        assert sock.recv(100) == b"ping"

    return once


def dns_client() -> Callable[[], None]:
    port = _port("DNS_PORT", 1053)

    def once() -> None:
        query = dns.message.make_query("www.polyloop.test", "A")
        dns.query.udp(query, HOST, port=port, timeout=10)

    return once


def resolver_client() -> Callable[[], None]:
    url = f"http://{HOST}:{_port('RESOLVER_PORT', 8053)}/resolve"
    body = json.dumps({"names": ["www.polyloop.test"]}).encode()

    def once() -> None:
        request = urllib.request.Request(url, data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http only
            response.read()

    return once


CLIENTS = {
    "tcp-echo": ("Twisted", tcp_client),
    "udp-echo": ("asyncio", udp_client),
    "dns": ("Twisted Names", dns_client),
    "resolver": ("gevent", resolver_client),
}


def run(service: str, seconds: float) -> tuple[list[float], int]:
    """Two clients side by side for ``seconds``: (the second's round trips, calls of both)."""
    make = CLIENTS[service][1]
    trips: list[list[float]] = [[], []]
    stop = time.monotonic() + seconds

    def loop(index: int) -> None:
        once = make()
        while time.monotonic() < stop:
            started = time.monotonic()
            once()
            trips[index].append(time.monotonic() - started)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    return trips[1], len(trips[0]) + len(trips[1])


def lag_p99(service: str, before: dict[float, float]) -> float | None:
    after, _, _ = histogram(_port(*PORTS[service]))
    return quantile(0.99, {bound: after[bound] - before.get(bound, 0) for bound in after})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m bench.fault_contrast",
        description=__doc__.split("\n")[0],
        epilog=(
            "Needs the stack up (make up). Four loops x three runs (baseline, block, latency) of"
            " --seconds each, plus 1.5 s after each fault: about 50 s with the defaults."
            " Prints a Markdown table."
        ),
    )
    parser.add_argument(
        "--ms", type=int, default=500, help="block and latency, in ms (default: %(default)s)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="how long the two clients run per loop and fault (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    faults = {
        "baseline": None,
        f"block {args.ms} ms every s": {"block_ms": args.ms, "block_every_second": True},
        f"latency {args.ms} ms": {"latency_ms": args.ms},
    }
    print(
        "| loop | fault | 2nd client round trip median / max (ms) | calls/s (2 clients) |"
        " lag p99 (ms) |"
    )
    print("|---|---|---|---|---|")
    for service, (loop_name, _) in CLIENTS.items():
        for label, spec in faults.items():
            before, _, _ = histogram(_port(*PORTS[service]))
            if spec is not None:
                _front("PUT", f"/api/faults/{service}", {**spec, "duration_s": 60})
            try:
                second, calls = run(service, args.seconds)
            finally:
                if spec is not None:
                    _front("DELETE", f"/api/faults/{service}")
                    # a block in progress at the DELETE still ends, and its late tick
                    # lands: let it, before the next row's histogram is read
                    time.sleep(1.5)
            p99 = lag_p99(service, before)
            p99_text = "-" if p99 is None else f"{p99 * 1000:.1f}"
            print(
                f"| {service} ({loop_name}) | {label} | "
                f"{statistics.median(second) * 1000:.1f} / {max(second) * 1000:.1f} | "
                f"{calls / args.seconds:.0f} | {p99_text} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
