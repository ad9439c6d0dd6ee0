"""``Resolver.resolve_many`` and ``POST /resolve`` against the real dns service.

Needs nothing running: a dns service subprocess is started on a free port (conftest).
Run: .venv/bin/pytest tests/gevent -p no:cacheprovider
"""

from __future__ import annotations

import time
import uuid

import gevent
import pytest

from services.resolver.api import ResolverApp
from services.resolver.resolve import Resolver
from tests.gevent.conftest import post_resolve


def slow(count: int, delay_ms: int) -> list[str]:
    """Distinct names answered after ``delay_ms`` (distinct, so nothing can be cached)."""
    tag = uuid.uuid4().hex[:8]
    return [f"n{index}-{tag}.delay-{delay_ms}.polyloop.test" for index in range(count)]


def timed(resolver: Resolver, names: list[str], timeout: float, mode: str) -> tuple[float, list]:
    started = time.monotonic()
    results = resolver.resolve_many(names, timeout, mode)
    return time.monotonic() - started, results


def test_results_come_back_in_request_order(app: ResolverApp) -> None:
    names = [
        "host-3.polyloop.test",
        "nope.polyloop.test",
        "a.delay-200.polyloop.test",
        "www.polyloop.test",
        "host-250.polyloop.test",
    ]
    reply = post_resolve(app, {"names": names})
    assert reply.status == 200
    document = reply.json()
    assert document["mode"] == "concurrent"
    assert document["elapsed_ms"] >= 200
    results = document["results"]
    assert [result["name"] for result in results] == names
    assert [result["error"] for result in results] == [None, "not_found", None, None, None]
    assert results[0]["addresses"] == ["192.0.2.3", "2001:db8::3"]
    assert results[1]["addresses"] == []
    assert results[2]["addresses"] == ["192.0.2.254"]
    assert results[3]["addresses"] == ["192.0.2.10", "2001:db8::10"]
    assert results[4]["addresses"] == ["192.0.2.250", "2001:db8::250"]
    for result in results:
        assert set(result) == {"name", "addresses", "error", "elapsed_ms"}
        assert result["elapsed_ms"] >= 0


def test_nxdomain_is_not_found(app: ResolverApp) -> None:
    reply = post_resolve(app, {"names": ["host-999.polyloop.test", "no.such.polyloop.test"]})
    assert [result["error"] for result in reply.json()["results"]] == ["not_found"] * 2


def test_a_name_over_the_timeout_is_reported_while_the_others_return(app: ResolverApp) -> None:
    names = ["a.delay-3000.polyloop.test", "host-1.polyloop.test", "www.polyloop.test"]
    started = time.monotonic()
    reply = post_resolve(app, {"names": names, "timeout": 0.5})
    elapsed = time.monotonic() - started
    results = reply.json()["results"]
    assert [result["error"] for result in results] == ["timeout", None, None]
    assert results[0]["addresses"] == []
    assert results[0]["elapsed_ms"] >= 450
    assert results[1]["addresses"] == ["192.0.2.1", "2001:db8::1"]
    # the request ends at its timeout, not when the slow answer would arrive
    assert elapsed < 2.5


@pytest.mark.parametrize("timeout", [5e-324, 1e-9])
@pytest.mark.parametrize("mode", ["concurrent", "sequential"])
def test_a_budget_spent_on_arrival_is_a_timeout_not_overload(
    app: ResolverApp, timeout, mode
) -> None:
    """Nothing else is running: no slot was ever waited for, so no name is "overloaded"."""
    names = [*slow(2, 200), "host-3.polyloop.test"]
    reply = post_resolve(app, {"names": names, "timeout": timeout, "mode": mode})
    assert reply.status == 200
    assert [result["error"] for result in reply.json()["results"]] == ["timeout"] * 3


def test_sequential_gives_each_name_what_is_left_of_the_budget(resolver: Resolver) -> None:
    fast_slow, slow_one, never = slow(1, 200)[0], slow(1, 3000)[0], slow(1, 200)[0]
    names = ["www.polyloop.test", fast_slow, slow_one, never, "host-2.polyloop.test"]
    elapsed, results = timed(resolver, names, 1.0, "sequential")
    assert [result["error"] for result in results] == [None, None, "timeout", "timeout", "timeout"]
    assert results[2]["elapsed_ms"] > 0  # started, then killed at the deadline
    assert results[3]["elapsed_ms"] == results[4]["elapsed_ms"] == 0  # never started
    assert elapsed < 2.5


def test_concurrent_is_not_serialised(resolver: Resolver) -> None:
    sequential, results = timed(resolver, slow(10, 100), 10, "sequential")
    assert all(result["error"] is None for result in results)
    assert sequential >= 1.0
    concurrent, results = timed(resolver, slow(10, 100), 10, "concurrent")
    assert all(result["error"] is None for result in results)
    assert concurrent < sequential / 3


def test_the_pool_bounds_concurrency(dns_port: int) -> None:
    resolver = Resolver("127.0.0.1", dns_port, pool_size=2)
    elapsed, results = timed(resolver, slow(6, 100), 10, "concurrent")
    assert all(result["error"] is None for result in results)
    assert elapsed >= 0.3  # three waves of two


def test_a_full_pool_still_ends_at_the_timeout(dns_port: int) -> None:
    resolver = Resolver("127.0.0.1", dns_port, pool_size=1)
    names = ["www.polyloop.test", *slow(3, 3000)]
    elapsed, results = timed(resolver, names, 0.5, "concurrent")
    assert [result["error"] for result in results] == [None, "timeout", "timeout", "timeout"]
    assert results[1]["elapsed_ms"] > 0  # spawned when www was done, killed at the deadline
    assert results[3]["elapsed_ms"] == 0  # never spawned: the pool was full until the end
    assert elapsed < 2.5


class Watched(Resolver):
    """Remembers every greenlet that looked a name up (the A child and the AAAA one too)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.greenlets: list[gevent.Greenlet] = []
        ask, answer = self.lookups.ask, self.lookups._answer

        def watched_ask(name: str, deadline: float) -> list[str]:
            self.greenlets.append(gevent.getcurrent())
            return ask(name, deadline)

        def watched_answer(key: str, rdtype: str, deadline: float) -> object:
            self.greenlets.append(gevent.getcurrent())
            return answer(key, rdtype, deadline)

        self.lookups.ask = watched_ask
        self.lookups._answer = watched_answer


@pytest.mark.parametrize("mode", ["concurrent", "sequential"])
def test_timed_out_greenlets_are_killed(dns_port: int, mode: str) -> None:
    resolver = Watched("127.0.0.1", dns_port)
    _, results = timed(resolver, [*slow(3, 3000), "www.polyloop.test"], 0.3, mode)
    assert results[0]["error"] == "timeout"
    assert len(resolver.greenlets) >= 3  # one lookup and its two queries, at least
    assert all(greenlet.dead for greenlet in resolver.greenlets)


@pytest.mark.parametrize("mode", ["concurrent", "sequential"])
def test_the_threadpool_backend_gives_the_same_answers(dns_port: int, mode: str) -> None:
    names = ["www.polyloop.test", "host-42.polyloop.test", "nope.polyloop.test"]
    threaded = Resolver("127.0.0.1", dns_port, backend="threadpool").resolve_many(names, 5, mode)
    cooperative = Resolver("127.0.0.1", dns_port).resolve_many(names, 5, mode)
    for left, right in zip(threaded, cooperative, strict=True):
        assert (left["name"], left["addresses"], left["error"]) == (
            right["name"],
            right["addresses"],
            right["error"],
        )


def test_the_threadpool_backend_reports_timeouts(dns_port: int) -> None:
    resolver = Resolver("127.0.0.1", dns_port, backend="threadpool")
    elapsed, results = timed(
        resolver, ["a.delay-3000.polyloop.test", "www.polyloop.test"], 0.5, "concurrent"
    )
    assert [result["error"] for result in results] == ["timeout", None]
    assert elapsed < 2.5
