"""The compose profile `load`: Locust's own distributed mode from inside the network.

Needs the stack in containers (`make up` with a Docker engine). Starts `locust-master` and
two `locust-worker`s, swarms 10 users for a bounded time through the master's web API,
and checks that both workers report and every user type's requests arrive with no
failure. Stops the profile's containers afterwards; the core stack is left running.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.stack import Stack, compose

pytestmark = pytest.mark.compose

# one request type per user type: WebUser (POST), TcpEchoUser, UdpEchoUser, DnsUser,
# ResolverUser (POST /resolve ...)
EXPECTED = {"TCP", "UDP", "DNS", "POST"}


@pytest.fixture(scope="module")
def locust_url(in_containers: str, stack: Stack) -> Iterator[str]:
    compose(
        "--profile", "load", "up", "--detach", "--wait", "--wait-timeout", "120",
        "--scale", "locust-worker=2", "locust-master", "locust-worker",
        timeout=300,
    )  # fmt: skip
    try:
        yield f"http://{stack.host}:{os.environ.get('LOCUST_PORT', '').strip() or '8089'}"
    finally:
        compose("--profile", "load", "rm", "--stop", "--force", "locust-master", "locust-worker")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, fields: dict | None = None) -> dict:
    data = urllib.parse.urlencode(fields or {}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
        return json.loads(response.read() or b"{}")


def test_master_and_two_workers_generate_load_with_every_user_type(locust_url: str) -> None:
    deadline = time.monotonic() + 60
    while _get(f"{locust_url}/stats/requests").get("worker_count") != 2:
        assert time.monotonic() < deadline, "the two workers never connected to the master"
        time.sleep(0.5)

    started = _post(f"{locust_url}/swarm", {"user_count": 10, "spawn_rate": 10})
    assert started["success"] is True, started
    try:
        deadline = time.monotonic() + 60
        while True:
            stats = _get(f"{locust_url}/stats/requests")
            rows = [row for row in stats["stats"] if row["name"] != "Aggregated"]
            methods = {row["method"] for row in rows}
            resolver = [row for row in rows if row["name"].startswith("/resolve")]
            total = sum(row["num_requests"] for row in rows)
            if methods >= EXPECTED and resolver and total >= 150:
                break
            assert time.monotonic() < deadline, f"only {methods}, {total} requests"
            time.sleep(0.5)
    finally:
        _post(f"{locust_url}/stop")

    assert len(stats["workers"]) == 2
    assert all(worker["user_count"] > 0 for worker in stats["workers"]), stats["workers"]
    failures = {row["name"]: row["num_failures"] for row in rows if row["num_failures"]}
    assert failures == {}, stats.get("errors")
