"""The resolver's hub blocked in-process, seen from its metrics port (a real OS thread).

The hub is blocked by the ORIGINAL, unpatched ``time.sleep`` (``monkey.get_original``),
the cardinal sin of cooperative concurrency; a real OS thread of the test scrapes the
resolver's metrics port meanwhile: ``polyloop_event_loop_blocked_seconds`` must show the
block while it lasts, and the lag histogram the late tick afterwards. N real POST
/resolve requests count N. Needs nothing running (the dns service is a subprocess).
Run: .venv/bin/pytest -c tests/gevent/pytest.ini tests/gevent
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import gevent
import pytest
from gevent import monkey

from services.common.loops import Watch
from services.common.loops import gevent as gevent_loop
from services.common.loops.gevent import start_os_thread
from services.resolver.api import ResolverApp
from services.resolver.config import ResolverConfig
from services.resolver.metrics import ResolverCollector
from services.resolver.resolve import Resolver
from services.resolver.server import ResolverServer
from tests.scrape import Samples, lag_over, parse, value

BLOCK = 0.8
N = 12
real_sleep = monkey.get_original("time", "sleep")


def scrape_from_a_real_thread(url: str) -> Samples:
    """Scrape on a new OS thread (its own hub), the main greenlet polling cooperatively."""
    box: list = []

    def run() -> None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                box.append(parse(response.read().decode()))
        except OSError as exc:
            box.append(exc)

    start_os_thread(run)
    deadline = time.monotonic() + 5
    while not box:
        assert time.monotonic() < deadline, "no answer from the metrics thread"
        gevent.sleep(0.01)
    if isinstance(box[0], Exception):
        raise box[0]
    return box[0]


def watch_resolver(app: ResolverApp, resolver: Resolver, config: ResolverConfig) -> Watch | None:
    """What the resolver's ``__main__`` starts: the hub watched, its control port."""
    return gevent_loop.start(
        config,
        ResolverCollector(app, resolver),
        faults=resolver.faults,
        registry=app.metrics.registry,
    )


@pytest.fixture
def resolver_with_metrics(resolver: Resolver, app: ResolverApp) -> Iterator[tuple[str, str]]:
    """(the API's base URL, the metrics URL) of the app with its lag timer and port."""
    started = watch_resolver(app, resolver, ResolverConfig(metrics_port=0))
    assert started is not None
    wsgi = ResolverServer(("127.0.0.1", 0), app, max_connections=10, client_timeout=2.0)
    wsgi.start()
    try:
        yield (
            f"http://127.0.0.1:{wsgi.server_port}",
            f"http://127.0.0.1:{started.server.port}/metrics",
        )
    finally:
        wsgi.stop(timeout=1)
        started.stop()  # no lag greenlet left ticking in the next tests


def test_the_blocked_hub_shows_while_it_lasts(resolver_with_metrics: tuple[str, str]) -> None:
    _, url = resolver_with_metrics
    gevent.sleep(0.2)  # a few ticks of the lag greenlet
    before = scrape_from_a_real_thread(url)
    # idle: below what the block must show (a few ms late as a rule, a loaded runner more)
    assert value(before, "polyloop_event_loop_blocked_seconds") < 0.2
    # the whole hub stops here: only the metrics thread (and the test's) still run
    started = time.monotonic()
    box: list[float] = []

    def watch() -> None:
        while time.monotonic() - started < BLOCK:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    seen = value(
                        parse(response.read().decode()), "polyloop_event_loop_blocked_seconds"
                    )
            except OSError:
                continue
            if seen >= 0.2:
                box.append(seen)
                return

    start_os_thread(watch)
    real_sleep(BLOCK)
    assert box, "the metrics thread never showed the block while it lasted"
    assert 0.2 <= box[0] <= BLOCK
    deadline = time.monotonic() + 5
    while True:
        gevent.sleep(0.05)  # the hub runs again: the late tick lands
        after = scrape_from_a_real_thread(url)
        if lag_over(after, "0.5") > lag_over(before, "0.5"):
            break
        assert time.monotonic() < deadline, "the late tick never reached the histogram"
    assert value(after, "polyloop_event_loop_blocked_seconds") < 0.2


def test_each_resolve_counts_once(resolver_with_metrics: tuple[str, str]) -> None:
    base, url = resolver_with_metrics
    body = json.dumps({"names": ["www.polyloop.test", "host-7.polyloop.test"]}).encode()
    for _ in range(N):
        request = urllib.request.Request(f"{base}/resolve", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    samples = scrape_from_a_real_thread(url)
    assert value(samples, "polyloop_requests_total") == N
    assert value(samples, "polyloop_resolver_lookups_in_flight") == 0
