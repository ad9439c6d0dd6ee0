"""How many questions leave the resolver, and when (issue 8, items 3, 4, 5 and 10).

A counting UDP relay (tests/gevent/relay.py) sits between the Resolver and the real dns
service (conftest's subprocess), so each test sees the questions that actually reach the
server. No name outside polyloop.test is ever looked up here: the system resolver is
replaced by one that fails the test if it is called.
Run: .venv/bin/python -m pytest -c tests/gevent/pytest.ini tests/gevent
"""

from __future__ import annotations

import os
import resource
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import gevent
import gevent.socket
import pytest

from services.resolver.api import ResolverApp
from services.resolver.metrics import ResolverCollector
from services.resolver.request import Limits
from services.resolver.resolve import Resolver
from tests.gevent.conftest import post_resolve
from tests.gevent.relay import CountingRelay


@pytest.fixture
def relay(dns_port: int) -> Iterator[CountingRelay]:
    relay = CountingRelay(dns_port)
    yield relay
    relay.close()


@pytest.fixture
def no_system_lookup(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name handed to the system resolver; the lookup itself fails the test."""
    asked: list[str] = []

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list:
        asked.append(host)
        raise AssertionError(f"{host} was sent to the system resolver")

    monkeypatch.setattr(gevent.socket, "getaddrinfo", getaddrinfo)
    return asked


def distinct(count: int, delay_ms: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"n{index}-{tag}.delay-{delay_ms}.polyloop.test" for index in range(count)]


def test_a_name_slower_than_two_seconds_resolves_with_one_query_per_type(
    relay: CountingRelay,
) -> None:
    resolver = Resolver("127.0.0.1", relay.port)
    started = time.monotonic()
    [result] = resolver.resolve_many(distinct(1, 2500), 5.0)
    elapsed = time.monotonic() - started
    assert (result["error"], result["addresses"]) == (None, ["192.0.2.254"])
    assert 2.4 <= elapsed < 4.0
    assert relay.by_type == {"A": 1, "AAAA": 1}


def test_a_lost_question_is_asked_again_once_a_newer_one_was_answered(dns_port: int) -> None:
    # host-7's A is dropped; the names asked after it are answered: it was lost, not slow
    relay = CountingRelay(dns_port, lose_first=[("host-7.polyloop.test", "A")])
    try:
        resolver = Resolver("127.0.0.1", relay.port, retry_after=0.05)
        results = resolver.resolve_many(["host-7.polyloop.test", *distinct(20, 10)], 5.0)
    finally:
        relay.close()
    assert [result["error"] for result in results] == [None] * 21
    assert results[0]["addresses"] == ["192.0.2.7", "2001:db8::7"]
    assert relay.asked["host-7.polyloop.test", "A"] == 2
    assert relay.asked["host-7.polyloop.test", "AAAA"] == 1
    assert resolver.lookups.heard.resent == 1
    collected = ResolverCollector(ResolverApp(resolver, Limits()), resolver).collect()
    samples = {s.name: s.value for family in collected for s in family.samples}
    assert samples["polyloop_resolver_questions_resent_total"] == 1


def test_a_slow_name_asked_alone_is_never_asked_again(relay: CountingRelay) -> None:
    # silent for far longer than retry_after, but nothing newer was answered meanwhile
    resolver = Resolver("127.0.0.1", relay.port, retry_after=0.05)
    [result] = resolver.resolve_many(distinct(1, 600), 5.0)
    assert result["error"] is None
    assert relay.by_type == {"A": 1, "AAAA": 1}
    assert resolver.lookups.heard.resent == 0


def test_a_name_past_the_timeout_is_asked_once_and_ends_at_the_timeout(
    relay: CountingRelay,
) -> None:
    resolver = Resolver("127.0.0.1", relay.port)
    started = time.monotonic()
    [result] = resolver.resolve_many(distinct(1, 3000), 1.0)
    assert result["error"] == "timeout"
    assert time.monotonic() - started < 1.5
    assert relay.by_type == {"A": 1, "AAAA": 1}


def test_a_ttl_0_answer_does_not_push_a_cached_one_out(relay: CountingRelay) -> None:
    # room for one name's two answers: a stored TTL-0 answer would evict host-1's
    resolver = Resolver("127.0.0.1", relay.port, cache_size=2)
    assert resolver.resolve_many(["host-1.polyloop.test"], 5.0)[0]["error"] is None
    assert relay.queries == 2
    for name in distinct(3, 10):
        assert resolver.resolve_many([name], 5.0)[0]["error"] is None
    assert relay.queries == 8
    again = resolver.resolve_many(["host-1.polyloop.test"], 5.0)[0]
    assert again["addresses"] == ["192.0.2.1", "2001:db8::1"]
    assert relay.queries == 8  # still cached
    assert len(resolver.lookups.cache) == 2


def concurrently(resolver: Resolver, batches: list[list[str]], timeout: float) -> Counter:
    jobs = [gevent.spawn(resolver.resolve_many, names, timeout) for names in batches]
    gevent.joinall(jobs, timeout=timeout + 5, raise_error=True)
    return Counter(result["error"] for job in jobs for result in job.get(timeout=0))


def test_lookups_in_flight_are_bounded_across_requests(relay: CountingRelay) -> None:
    resolver = Resolver("127.0.0.1", relay.port, max_lookups=4)
    outcomes = concurrently(resolver, [distinct(8, 100) for _ in range(3)], 5.0)
    assert outcomes == {None: 24}  # they queued, then resolved
    assert relay.most_in_flight <= 4 * 2  # four names, A and AAAA each
    assert relay.by_type == {"A": 24, "AAAA": 24}


def test_a_name_that_never_got_a_slot_is_overloaded(relay: CountingRelay) -> None:
    resolver = Resolver("127.0.0.1", relay.port, max_lookups=2)
    outcomes = concurrently(resolver, [distinct(8, 300) for _ in range(3)], 1.0)
    assert set(outcomes) <= {None, "timeout", "overloaded"}
    assert outcomes[None] >= 4  # two at a time, 0.3 s each, for 1 s
    # only names holding a slot at a deadline (two per request, the deadlines a hair apart)
    assert outcomes["timeout"] <= 2 * 3
    assert outcomes["overloaded"] >= 10
    assert relay.most_in_flight <= 2 * 2


def test_out_of_sockets_is_said_so_not_servfail(relay: CountingRelay) -> None:
    resolver = Resolver("127.0.0.1", relay.port)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # a socket (the UDP one each question needs) cannot be made while the limit holds
    resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_fd(), hard))
    try:
        results = resolver.resolve_many(distinct(2, 10), 2.0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [result["error"] for result in results] == ["out_of_sockets"] * 2
    assert relay.queries == 0


def _lowest_free_fd() -> int:
    # a new descriptor takes the lowest free number: below it, every one is in use
    fd = os.dup(0)
    os.close(fd)
    return fd


def test_a_name_outside_the_zone_is_refused_and_never_looked_up(
    relay: CountingRelay, no_system_lookup: list[str]
) -> None:
    app = ResolverApp(Resolver("127.0.0.1", relay.port), Limits())
    names = ["nosuch.invalid", "www.polyloop.test", "localhost", "polyloop.testing"]
    results = post_resolve(app, {"names": names}).json()["results"]
    assert [result["error"] for result in results] == ["refused", None, "refused", "refused"]
    assert results[0]["elapsed_ms"] == 0.0
    assert no_system_lookup == []
    assert relay.by_type == {"A": 1, "AAAA": 1}  # www only


def test_with_external_on_names_outside_go_to_the_system_resolver(
    relay: CountingRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the system resolver is stood in for: no name leaves this machine in a test
    asked: list[str] = []

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list:
        asked.append(host)
        return [(2, 1, 6, "", ("198.51.100.7", 0))]

    monkeypatch.setattr(gevent.socket, "getaddrinfo", getaddrinfo)
    resolver = Resolver("127.0.0.1", relay.port, external=True)
    results = resolver.resolve_many(["outside.invalid", "www.polyloop.test"], 5.0)
    assert [(result["error"], result["addresses"]) for result in results] == [
        (None, ["198.51.100.7"]),
        (None, ["192.0.2.10", "2001:db8::10"]),
    ]
    assert asked == ["outside.invalid"]
    assert relay.by_type == {"A": 1, "AAAA": 1}  # the zone still goes to the dns service
