"""The compose profile `observe`: a real Prometheus scraping every service's metrics port.

Needs the stack in containers with the profile: `COMPOSE_PROFILES=observe make up`
(Prometheus's UI published on POLYLOOP_BIND:PROMETHEUS_PORT, default 127.0.0.1:9090).
Marked `compose`: deselected when the stack runs as local processes (there is no Prometheus).
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request

import pytest

from tests.stack import Stack, unavailable

pytestmark = pytest.mark.compose

SERVICES = {"tcp-echo", "udp-echo", "resolver", "dns", "web"}
DEADLINE = 60.0  # scrapes every 2 s; the first ones of a fresh start may still be due


@pytest.fixture(scope="module")
def prometheus(in_containers: str, stack: Stack) -> str:
    port = os.environ.get("PROMETHEUS_PORT", "").strip() or "9090"
    url = f"http://{stack.host}:{port}"
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            assert response.status == 200
    except OSError:
        unavailable(f"Prometheus at {url} (COMPOSE_PROFILES=observe make up)")
    return url


def api(url: str, path: str, **params: str) -> dict:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}/api/v1/{path}{query}", timeout=5) as response:
        document = json.loads(response.read())
    assert document["status"] == "success", document
    return document["data"]


def poll(check, what: str):
    """``check()`` until it returns something true, within DEADLINE; then that."""
    deadline = time.monotonic() + DEADLINE
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not within {DEADLINE:.0f} s"
        time.sleep(1)  # Prometheus scrapes every 2 s: polling interval, not synchronisation


def test_every_target_is_up(prometheus: str) -> None:
    def all_up() -> dict[str, float] | None:
        results = api(prometheus, "query", query="up")["result"]
        values = {r["metric"]["job"]: float(r["value"][1]) for r in results}
        return values if set(values) == SERVICES and set(values.values()) == {1.0} else None

    assert poll(all_up, "up == 1 for all five services") == dict.fromkeys(SERVICES, 1.0)
    targets = api(prometheus, "targets")["activeTargets"]
    assert {t["labels"]["job"]: t["health"] for t in targets} == dict.fromkeys(SERVICES, "up")


def test_the_loop_lag_series_exist_for_all_five(prometheus: str) -> None:
    def lag_jobs() -> set[str] | None:
        query = "polyloop_event_loop_lag_seconds_count"
        jobs = {r["metric"]["job"] for r in api(prometheus, "query", query=query)["result"]}
        return jobs if jobs == SERVICES else None

    assert poll(lag_jobs, "the lag histogram of every service") == SERVICES


def test_the_recording_rules_give_a_rate_and_a_lag_p99_per_service(prometheus: str) -> None:
    def recorded() -> dict[str, set[str]] | None:
        found = {}
        for rule in ("job:polyloop_requests:rate30s", "job:polyloop_event_loop_lag_seconds:p99_1m"):
            results = api(prometheus, "query", query=rule)["result"]
            found[rule] = {r["metric"]["job"] for r in results}
        return found if all(jobs == SERVICES for jobs in found.values()) else None

    assert poll(recorded, "the recording rules for every service")
