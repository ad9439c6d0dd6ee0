"""The resolver's answer cache (zone answers for their TTL, never a delay-N answer), and
its move to a new dns address.

A counting UDP relay sits between the Resolver and the real dns service (conftest's
subprocess), so the test sees how many queries actually reach the server.
Run: .venv/bin/pytest tests/gevent -p no:cacheprovider
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.resolver.resolve import Resolver
from tests.gevent.relay import CountingRelay


@pytest.fixture
def relay(dns_port: int) -> Iterator[CountingRelay]:
    relay = CountingRelay(dns_port)
    yield relay
    relay.close()


def resolve_twice(resolver: Resolver, name: str) -> list[dict]:
    return [resolver.resolve_many([name], 5.0)[0] for _ in range(2)]


def test_a_cached_answer_is_not_asked_again(relay: CountingRelay) -> None:
    resolver = Resolver("127.0.0.1", relay.port, cache_size=100)
    first, second = resolve_twice(resolver, "host-5.polyloop.test")
    assert first["addresses"] == second["addresses"] == ["192.0.2.5", "2001:db8::5"]
    assert relay.queries == 2  # A and AAAA, once


def test_without_a_cache_every_lookup_is_asked(relay: CountingRelay) -> None:
    resolver = Resolver("127.0.0.1", relay.port, cache_size=0)
    resolve_twice(resolver, "host-5.polyloop.test")
    assert relay.queries == 4


def test_delay_answers_have_ttl_0_and_are_always_asked(relay: CountingRelay) -> None:
    resolver = Resolver("127.0.0.1", relay.port, cache_size=100)
    first, second = resolve_twice(resolver, "x.delay-50.polyloop.test")
    assert first["error"] is None and second["error"] is None
    assert second["elapsed_ms"] >= 50
    assert relay.queries == 4


def test_use_server_moves_the_questions_to_a_new_address(dns_port: int) -> None:
    # the dns subprocess listens on 127.0.0.1 only: 127.0.0.2 stands for its old address
    resolver = Resolver("127.0.0.2", dns_port, cache_size=0)
    assert resolver.resolve_many(["www.polyloop.test"], 1.0)[0]["error"] is not None
    resolver.use_server("127.0.0.1")
    (result,) = resolver.resolve_many(["www.polyloop.test"], 5.0)
    assert result["addresses"] == ["192.0.2.10", "2001:db8::10"]


class _NoGreenlets:
    """Stands in for Pool and gevent.spawn: any greenlet started is a failure."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a greenlet was started for names already known")


@pytest.mark.parametrize("mode", ["concurrent", "sequential"])
def test_a_batch_of_known_names_is_answered_without_a_greenlet(
    relay: CountingRelay, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    import gevent

    from services.resolver import resolve

    resolver = Resolver("127.0.0.1", relay.port, cache_size=100)
    names = ["host-5.polyloop.test", "www.polyloop.test", "example.com"]
    first = resolver.resolve_many(names, 5.0, mode)
    monkeypatch.setattr(resolve, "Pool", _NoGreenlets)
    monkeypatch.setattr(gevent, "spawn", _NoGreenlets)
    again = resolver.resolve_many(names, 5.0, mode)
    assert [(r["name"], r["addresses"], r["error"]) for r in again] == [
        ("host-5.polyloop.test", ["192.0.2.5", "2001:db8::5"], None),
        ("www.polyloop.test", ["192.0.2.10", "2001:db8::10"], None),
        ("example.com", [], "refused"),
    ]
    assert [r["addresses"] for r in again] == [r["addresses"] for r in first]
    assert all(r["elapsed_ms"] < 50 for r in again)
    assert relay.queries == 4  # the first batch's two names, A and AAAA; none since


def test_one_name_to_ask_sends_the_whole_batch_through_the_pool(relay: CountingRelay) -> None:
    resolver = Resolver("127.0.0.1", relay.port, cache_size=100)
    resolver.resolve_many(["host-5.polyloop.test"], 5.0)
    results = resolver.resolve_many(["host-5.polyloop.test", "x.delay-50.polyloop.test"], 5.0)
    assert [r["error"] for r in results] == [None, None]
    assert results[1]["elapsed_ms"] >= 50  # asked, not answered from a cache
    assert relay.queries == 4
