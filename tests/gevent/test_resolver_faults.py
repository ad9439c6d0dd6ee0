"""Each fault's effect on the gevent resolver, in-process, set over its /faults route.

The fault is set the way the front will (``PUT /faults`` on the metrics port, a real OS
thread, with the token); real clients POST /resolve meanwhile:

- block N ms: the ORIGINAL ``time.sleep`` runs in the hub, so a request sent after the
  PUT is answered ≥ N ms after it;
- latency N ms: ``gevent.sleep`` per name, so two requests are answered side by side;
- fail X %: names reported with error ``fault`` within a binomial bound (5 sigma);
- expiry: with an injected clock, no sleeping.
Run: .venv/bin/pytest -c tests/gevent/pytest.ini tests/gevent
"""

from __future__ import annotations

import json
import math
import secrets
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import gevent
import pytest

from services.resolver.api import ResolverApp
from services.resolver.config import ResolverConfig
from services.resolver.resolve import Resolver
from services.resolver.server import ResolverServer
from tests.clock import FakeClock
from tests.control_port import put_faults
from tests.gevent.test_resolver_lag import scrape_from_a_real_thread, watch_resolver
from tests.scrape import lag_over

TOKEN = secrets.token_urlsafe(16)
BLOCK_MS = 500
LATENCY_MS = 600
NAMES = 300
PERCENT = 30


@pytest.fixture
def served(resolver: Resolver, app: ResolverApp) -> Iterator[tuple[str, int]]:
    """(the API's base URL, the metrics port) with the token configured."""
    config = ResolverConfig.from_env({"POLYLOOP_ADMIN_TOKEN": TOKEN, "RESOLVER_METRICS_PORT": "0"})
    started = watch_resolver(app, resolver, config)
    assert started is not None
    wsgi = ResolverServer(("127.0.0.1", 0), app, max_connections=10, client_timeout=5.0)
    wsgi.start()
    try:
        yield f"http://127.0.0.1:{wsgi.server_port}", started.server.port
    finally:
        resolver.faults.clear()
        wsgi.stop(timeout=1)
        started.stop()


def put(metrics_port: int, **spec: Any) -> dict:
    return put_faults(metrics_port, TOKEN, **spec)


def resolve(base: str, names: list[str]) -> list[dict]:
    body = json.dumps({"names": names}).encode()
    request = urllib.request.Request(f"{base}/resolve", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["results"]


def test_block_stalls_the_hub_for_everyone(served: tuple[str, int], resolver: Resolver) -> None:
    base, metrics_port = served
    started = time.monotonic()
    put(metrics_port, block_ms=BLOCK_MS)
    assert resolve(base, ["www.polyloop.test"])[0]["error"] is None
    assert time.monotonic() - started >= BLOCK_MS / 1000
    assert resolver.faults.blocks == 1


def test_latency_delays_each_name_without_blocking(
    served: tuple[str, int], resolver: Resolver
) -> None:
    base, metrics_port = served
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    gevent.sleep(0.2)  # a few ticks of the lag greenlet
    before = lag_over(scrape_from_a_real_thread(url), "0.25")
    put(metrics_port, latency_ms=LATENCY_MS)
    started = time.monotonic()
    jobs = [gevent.spawn(resolve, base, ["www.polyloop.test"]) for _ in range(2)]
    gevent.joinall(jobs, timeout=10, raise_error=True)
    elapsed = time.monotonic() - started
    assert [job.value[0]["error"] for job in jobs] == [None, None]
    assert LATENCY_MS / 1000 <= elapsed < 2 * LATENCY_MS / 1000  # side by side
    assert lag_over(scrape_from_a_real_thread(url), "0.25") == before


def test_fail_reports_a_share_of_the_names_as_errors(
    served: tuple[str, int], resolver: Resolver
) -> None:
    base, metrics_port = served
    put(metrics_port, fail_percent=PERCENT)
    results = []
    for chunk in range(0, NAMES, 50):  # the API's own bound on names per request
        results += resolve(
            base, [f"host-{i % 250 + 1}.polyloop.test" for i in range(chunk, chunk + 50)]
        )
    failed = sum(result["error"] == "fault" for result in results)
    mean = NAMES * PERCENT / 100
    assert abs(failed - mean) <= 5 * math.sqrt(mean * (1 - PERCENT / 100)), failed
    assert resolver.faults.failed == failed
    assert {result["error"] for result in results} <= {None, "fault"}


def test_a_fault_expires_by_itself(served: tuple[str, int], resolver: Resolver) -> None:
    base, metrics_port = served
    clock = FakeClock()
    resolver.faults.clock = clock
    put(metrics_port, fail_percent=100, duration_s=10)
    assert resolve(base, ["www.polyloop.test"])[0]["error"] == "fault"
    clock.now += 10
    assert resolve(base, ["www.polyloop.test"])[0]["error"] is None
    assert not resolver.faults.active
