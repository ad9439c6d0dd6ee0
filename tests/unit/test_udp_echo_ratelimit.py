"""SourceRateLimiter: token buckets per source IP, driven by an injected clock."""

from __future__ import annotations

import pytest

from services.udp_echo.ratelimit import SourceRateLimiter
from tests.clock import FakeClock


def test_bursts_then_refills_at_the_rate() -> None:
    clock = FakeClock(0.0)
    limiter = SourceRateLimiter(rate=2, burst=4, clock=clock)
    assert [limiter.allow("a") for _ in range(5)] == [True] * 4 + [False]
    clock.now += 0.5  # one token
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    clock.now += 100  # refills up to the burst, not beyond
    assert sum(limiter.allow("a") for _ in range(10)) == 4


def test_a_denied_datagram_does_not_cost_a_token() -> None:
    clock = FakeClock(0.0)
    limiter = SourceRateLimiter(rate=1, burst=1, clock=clock)
    assert limiter.allow("a")
    for _ in range(100):
        assert not limiter.allow("a")
    clock.now += 1.0
    assert limiter.allow("a")


def test_the_least_recently_seen_source_is_evicted_first() -> None:
    clock = FakeClock(0.0)
    limiter = SourceRateLimiter(rate=1, burst=1, max_sources=2, clock=clock)
    assert limiter.allow("a")
    assert limiter.allow("b")
    assert not limiter.allow("a")  # a is now the most recent
    assert limiter.allow("c")  # evicts b, not a
    assert len(limiter) == 2
    assert not limiter.allow("a")  # still remembered, still empty
    assert limiter.evicted == 1


def test_each_eviction_is_counted_and_signalled() -> None:
    limiter = SourceRateLimiter(rate=1, max_sources=3, clock=FakeClock(0.0))
    signals: list[int] = []
    limiter.on_evict = lambda: signals.append(limiter.evicted)
    for n in range(10):
        limiter.allow(f"10.0.0.{n}")
    assert limiter.evicted == 7
    assert signals == list(range(1, 8))
    assert len(limiter) == 3


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        SourceRateLimiter(rate=0)
