"""The delaying authority of the ``dns`` service, driven by a ``task.Clock`` (no sleeping).

Run: .venv/bin/pytest tests/unit/test_dns_delay.py
"""

from __future__ import annotations

import pytest
from twisted.internet import defer, task
from twisted.names import dns, error
from twisted.python.failure import Failure

from services.dns.delay import DELAY_ADDRESS, DelayingAuthority
from services.dns.zone import ZONE_FILE, ZoneAuthority


@pytest.fixture(scope="module")
def zone() -> ZoneAuthority:
    return ZoneAuthority(ZONE_FILE)


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


@pytest.fixture
def delaying(zone: ZoneAuthority, clock: task.Clock) -> DelayingAuthority:
    return DelayingAuthority(zone, clock, max_delay_ms=10_000, max_pending=3)


def ask(authority: DelayingAuthority, name: str, qtype: int = dns.A) -> list[object]:
    """Start a query; the returned list gets the result (or Failure) when it fires."""
    results: list[object] = []
    authority.query(dns.Query(name, qtype, dns.IN)).addBoth(results.append)
    return results


def test_delay_300_answers_only_once_300_ms_have_passed(
    delaying: DelayingAuthority, clock: task.Clock
) -> None:
    results = ask(delaying, "x.delay-300.polyloop.test")
    clock.advance(0.299)
    assert results == []
    clock.advance(0.001)
    (answers, authority, _additional) = results[0]
    (record,) = answers
    assert record.type == dns.A
    assert record.payload.dottedQuad() == DELAY_ADDRESS
    assert record.ttl == 0, "a cache must never hide the delay"
    assert record.auth
    assert authority == []


def test_delayed_address_is_a_documentation_address_outside_host_n() -> None:
    first, second, third, fourth = (int(part) for part in DELAY_ADDRESS.split("."))
    assert (first, second, third) == (192, 0, 2)
    assert fourth > 250


def test_delays_run_side_by_side(delaying: DelayingAuthority, clock: task.Clock) -> None:
    slow = ask(delaying, "a.delay-1000.polyloop.test")
    fast = ask(delaying, "b.delay-100.polyloop.test")
    assert delaying.pending == 2
    clock.advance(0.1)
    assert fast and not slow
    clock.advance(0.9)
    assert slow
    assert delaying.pending == 0


def test_any_label_and_any_case(delaying: DelayingAuthority, clock: task.Clock) -> None:
    results = ask(delaying, "Whatever-Label_1.DELAY-5.PolyLoop.Test")
    clock.advance(0.005)
    (record,), _, _ = results[0]
    assert record.payload.dottedQuad() == DELAY_ADDRESS


def test_delay_0_answers_on_the_next_tick(delaying: DelayingAuthority, clock: task.Clock) -> None:
    results = ask(delaying, "x.delay-0.polyloop.test")
    clock.advance(0)
    assert results and not isinstance(results[0], Failure)


def test_other_types_get_nodata_after_the_delay(
    delaying: DelayingAuthority, clock: task.Clock
) -> None:
    results = ask(delaying, "x.delay-50.polyloop.test", dns.AAAA)
    clock.advance(0.049)
    assert results == []
    clock.advance(0.001)
    answers, authority, _ = results[0]
    assert answers == []
    assert [r.type for r in authority] == [dns.SOA]


def test_the_maximum_itself_is_honoured(delaying: DelayingAuthority, clock: task.Clock) -> None:
    results = ask(delaying, "x.delay-10000.polyloop.test")
    clock.advance(9.999)
    assert results == []
    clock.advance(0.001)
    assert results and not isinstance(results[0], Failure)


def test_delay_over_the_maximum_is_refused_at_once(
    delaying: DelayingAuthority, clock: task.Clock
) -> None:
    results = ask(delaying, "x.delay-10001.polyloop.test")
    (failure,) = results
    assert isinstance(failure, Failure)
    failure.trap(error.DNSQueryRefusedError)
    assert clock.getDelayedCalls() == []


def test_pending_delays_are_bounded(delaying: DelayingAuthority, clock: task.Clock) -> None:
    waiting = [ask(delaying, f"n{i}.delay-1000.polyloop.test") for i in range(3)]
    (refused,) = ask(delaying, "n3.delay-1000.polyloop.test")
    refused.trap(error.DNSQueryRefusedError)
    clock.advance(1)
    assert all(result and not isinstance(result[0], Failure) for result in waiting)
    later = ask(delaying, "n4.delay-1.polyloop.test")
    clock.advance(0.001)
    assert later and not isinstance(later[0], Failure)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("www.polyloop.test", "192.0.2.10"),
        ("host-42.polyloop.test", "192.0.2.42"),
    ],
)
def test_other_names_go_to_the_zone_without_delay(
    delaying: DelayingAuthority, clock: task.Clock, name: str, expected: str
) -> None:
    (answers, _, _) = ask(delaying, name)[0]
    assert answers[0].payload.dottedQuad() == expected
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize(
    "name",
    [
        "delay-300.polyloop.test",  # no X label
        "a.b.delay-300.polyloop.test",  # X is one label
        "x.delay-.polyloop.test",
        "x.delay-3x.polyloop.test",
        "x.delay--3.polyloop.test",
        "x.delay-300.polyloop.test.example.com",
    ],
)
def test_names_that_only_look_like_delays_are_not_delayed(
    delaying: DelayingAuthority, clock: task.Clock, name: str
) -> None:
    (failure,) = ask(delaying, name)
    assert isinstance(failure, Failure)
    failure.trap(error.AuthoritativeDomainError, error.DomainError)
    assert not failure.check(error.DNSQueryRefusedError)
    assert clock.getDelayedCalls() == []


def test_lookup_helpers_go_through_query(delaying: DelayingAuthority, clock: task.Clock) -> None:
    results: list[object] = []
    delaying.lookupAddress("x.delay-10.polyloop.test").addBoth(results.append)
    clock.advance(0.01)
    (answers, _, _) = results[0]
    assert answers[0].payload.dottedQuad() == DELAY_ADDRESS


def test_a_delayed_answer_dropped_at_shutdown_leaves_nothing_behind(
    delaying: DelayingAuthority, clock: task.Clock
) -> None:
    query = delaying.query(dns.Query("x.delay-100.polyloop.test", dns.A, dns.IN))
    query.cancel()
    failures: list[Failure] = []
    query.addErrback(failures.append)
    failures[0].trap(defer.CancelledError)
    assert delaying.pending == 0
    assert clock.getDelayedCalls() == []
