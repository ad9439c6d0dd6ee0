"""The headline of issue 10: what ``GET /api/live`` says each service served agrees with
Locust's own count of what it sent, for the protocol users that never touch the front.

Needs every service running with its metrics port (``make up``, or local processes) and
the front at ``stack.web_url``. Locust runs as a subprocess (it patches its process with
gevent), headless, ``TcpEchoUser``, ``UdpEchoUser`` and ``DnsUser`` only, for ~20 s; each
sends straight to its service, so only the services' own metrics can see that traffic.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.stack import ROOT, Stack, tcp_answers, unavailable

# Locust's request type (CSV "Type") -> the service that served it
SERVICES = {"TCP": "tcp-echo", "UDP": "udp-echo", "DNS": "dns"}
USERS = ("TcpEchoUser", "UdpEchoUser", "DnsUser")
RUN_SECONDS = 20
TOLERANCE = 0.10


def live(stack: Stack) -> dict:
    with urllib.request.urlopen(f"{stack.web_url}/api/live", timeout=5) as response:
        return json.loads(response.read())


def counters(picture: dict) -> dict[str, float]:
    return {
        name: picture["services"][name]["metrics"].get("polyloop_requests_total", -1.0)
        for name in SERVICES.values()
    }


def settled_counters(stack: Stack, deadline: float = 15.0) -> dict[str, float]:
    """The counters once two readings 1.2 s apart agree (every scrape after the last request)."""
    end = time.monotonic() + deadline
    last = counters(live(stack))
    while True:
        time.sleep(1.2)  # one scrape a second: a reading newer than the last one
        now = counters(live(stack))
        if now == last:
            return now
        assert time.monotonic() < end, f"the counters never settled: {last} then {now}"
        last = now


@pytest.fixture(scope="module")
def metrics_up(stack: Stack) -> None:
    if not tcp_answers(stack.host, stack.web_port):
        unavailable(f"the web front on {stack.host}:{stack.web_port}")
    picture = live(stack)
    down = {
        name: picture["services"][name]["error"]
        for name in SERVICES.values()
        if picture["services"][name]["state"] != "up"
    }
    if down:
        unavailable(f"the metrics ports of {down}")


def locust_counts(csv_prefix: Path) -> dict[str, int]:
    counts = dict.fromkeys(SERVICES, 0)
    with open(f"{csv_prefix}_stats.csv", newline="") as file:
        for row in csv.DictReader(file):
            if row["Type"] in counts:
                counts[row["Type"]] += int(row["Request Count"])
    return counts


def test_api_live_counts_what_locust_sent_to_each_service(
    stack: Stack, metrics_up: None, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env.update(stack.address_env())
    prefix = tmp_path / "live"
    command = [
        str(Path(sys.executable).with_name("locust")),
        "-f", "loadtest", "--headless", "-u", "30", "-r", "30",
        "-t", f"{RUN_SECONDS}s", "--stop-timeout", "3", "--csv", str(prefix),
        "--only-summary", *USERS,
    ]  # fmt: skip
    before = settled_counters(stack)
    started = time.monotonic()
    rates: dict[str, list[float]] = {name: [] for name in SERVICES.values()}
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as locust:
        try:
            while locust.poll() is None:
                assert time.monotonic() - started < RUN_SECONDS + 40, "Locust did not stop"
                elapsed = time.monotonic() - started
                if 4 < elapsed < RUN_SECONDS - 2:  # the steady part of the run
                    picture = live(stack)["services"]
                    for name, series in rates.items():
                        series.append(picture[name]["rate"])
                time.sleep(1.0)
            _out, err = locust.communicate(timeout=30)
        finally:
            if locust.poll() is None:
                locust.kill()
    assert locust.returncode in {0, 1}, err[-3000:]  # 1: some request failed; counted too
    sent = locust_counts(prefix)
    after = settled_counters(stack)

    served = {kind: after[name] - before[name] for kind, name in SERVICES.items()}
    for kind, name in SERVICES.items():
        assert sent[kind] > 100, f"Locust sent only {sent[kind]} {kind} requests"
        ratio = served[kind] / sent[kind]
        assert abs(ratio - 1) <= TOLERANCE, (
            f"{name}: /api/live counted {served[kind]:.0f}, Locust sent {sent[kind]}"
        )
        # the rate the dashboard draws is the same traffic, per second
        mean_rate = sum(rates[name]) / len(rates[name])
        locust_rate = sent[kind] / RUN_SECONDS
        assert abs(mean_rate / locust_rate - 1) <= 0.25, (name, mean_rate, locust_rate)
