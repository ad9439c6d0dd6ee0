"""Each running service's event-loop lag p99 over a window, read from its metrics ports.

    .venv/bin/python -m bench.idle_lag [--seconds 30]      (the stack up, e.g. `make up` local mode)

Scrapes every service's metrics port (TCP_ECHO_METRICS_PORT ... WEB_METRICS_PORT, README
defaults, on 127.0.0.1) at the start and the end of the window and computes, from the
lag histogram's bucket deltas, the p99 as Prometheus's ``histogram_quantile`` does
(linear within a bucket), plus the mean. Idle: nothing else should load the stack then.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

PORTS = {
    "tcp-echo": ("TCP_ECHO_METRICS_PORT", 9101),
    "udp-echo": ("UDP_ECHO_METRICS_PORT", 9102),
    "resolver": ("RESOLVER_METRICS_PORT", 9103),
    "dns": ("DNS_METRICS_PORT", 9104),
    "web": ("WEB_METRICS_PORT", 9105),
}


def histogram(port: int) -> tuple[dict[float, float], float, float]:
    """(cumulative count per bucket bound, sum, count) of the lag histogram."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "polyloop_event_loop_lag_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets[float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
    return buckets, total, count


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile(q, ...)`` of cumulative bucket counts."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            inside = buckets[bound] - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, buckets[bound]
    return lower


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m bench.idle_lag", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    ports = {
        name: int(os.environ.get(var, "").strip() or default)
        for name, (var, default) in PORTS.items()
    }
    start = {name: histogram(port) for name, port in ports.items()}
    time.sleep(args.seconds)  # the measurement window itself
    lines = [
        f"idle loop lag over {args.seconds:g} s (load average {os.getloadavg()[0]:.1f})",
        "| service | ticks | p99 ms | mean ms |",
        "|---|---|---|---|",
    ]
    for name, port in ports.items():
        buckets, total, count = histogram(port)
        (b0, t0, c0) = start[name]
        delta = {bound: buckets[bound] - b0.get(bound, 0.0) for bound in buckets}
        ticks = count - c0
        p99 = quantile(0.99, delta)
        mean = (total - t0) / ticks * 1000 if ticks else None
        lines.append(
            f"| {name} | {ticks:.0f} | {p99 * 1000:.2f} | {mean:.2f} |"
            if p99 is not None and mean is not None
            else f"| {name} | {ticks:.0f} | — | — |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
