"""The zone authority of the ``dns`` service, in-process (no socket, no reactor).

Run: .venv/bin/pytest tests/unit/test_dns_zone.py
"""

from __future__ import annotations

import ipaddress

import pytest
from twisted.internet import defer
from twisted.names import dns, error
from twisted.python.failure import Failure

from services.dns import make_zone
from services.dns.zone import ZONE_FILE, ZoneAuthority


def outcome(deferred: defer.Deferred) -> object:
    """What an already-fired Deferred holds (a result or a Failure), consumed."""
    results: list[object] = []
    deferred.addBoth(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


def answer(deferred: defer.Deferred) -> tuple[list, list, list]:
    result = outcome(deferred)
    assert not isinstance(result, Failure), result
    return result


def failure_of(deferred: defer.Deferred) -> Failure:
    result = outcome(deferred)
    assert isinstance(result, Failure), f"expected a failure, got {result!r}"
    return result


@pytest.fixture(scope="module")
def zone() -> ZoneAuthority:
    return ZoneAuthority(ZONE_FILE)


def ask(zone: ZoneAuthority, name: str, qtype: int = dns.A) -> defer.Deferred:
    return zone.query(dns.Query(name, qtype, dns.IN))


def test_committed_zone_file_is_what_the_generator_writes() -> None:
    assert ZONE_FILE.read_text(encoding="ascii") == make_zone.render()


def test_soa_and_ns_at_the_apex(zone: ZoneAuthority) -> None:
    assert zone.origin_name == b"polyloop.test"
    (soa,), _, _ = answer(ask(zone, "polyloop.test", dns.SOA))
    assert soa.payload.mname.name == b"ns.polyloop.test."
    (ns,), _, _ = answer(ask(zone, "polyloop.test", dns.NS))
    assert ns.payload.name.name.rstrip(b".") == b"ns.polyloop.test"
    assert ns.auth


def test_www_is_192_0_2_10_authoritatively(zone: ZoneAuthority) -> None:
    (record,), authority, _ = answer(ask(zone, "www.polyloop.test"))
    assert record.payload.dottedQuad() == "192.0.2.10"
    assert record.auth
    assert authority == []


@pytest.mark.parametrize(
    ("host", "v4", "v6"), [("www", 10, "10"), ("ns", 53, "53"), ("probe", 10, "10")]
)
def test_named_hosts_have_an_aaaa_too(zone: ZoneAuthority, host: str, v4: int, v6: str) -> None:
    # every named host of the demo zone has both families, as each host-N does
    (a,), _, _ = answer(ask(zone, f"{host}.polyloop.test", dns.A))
    assert a.payload.dottedQuad() == f"192.0.2.{v4}"
    (aaaa,), _, _ = answer(ask(zone, f"{host}.polyloop.test", dns.AAAA))
    assert ipaddress.IPv6Address(aaaa.payload.address) == ipaddress.IPv6Address(f"2001:db8::{v6}")
    assert aaaa.auth


def test_every_name_with_an_a_has_an_aaaa(zone: ZoneAuthority) -> None:
    families = {
        name: {record.TYPE for record in records} & {dns.A, dns.AAAA}
        for name, records in zone.records.items()
    }
    assert {name for name, types in families.items() if types == {dns.A}} == set()
    assert len([name for name, types in families.items() if types]) == 250 + 3


def test_the_probe_name_lives_a_day(zone: ZoneAuthority) -> None:
    """The stack's probe name (services.common.probes) outlives any experiment in a
    resolver's cache: the resolver's steady call never waits for the dns service."""
    (record,), _, _ = answer(ask(zone, "probe.polyloop.test"))
    assert record.payload.dottedQuad() == "192.0.2.10"
    assert record.ttl == 86400


def test_names_are_case_insensitive(zone: ZoneAuthority) -> None:
    (record,), _, _ = answer(ask(zone, "WWW.PolyLoop.TEST"))
    assert record.payload.dottedQuad() == "192.0.2.10"


@pytest.mark.parametrize("n", [1, 2, 10, 99, 250])
def test_host_n_has_documentation_a_and_aaaa(zone: ZoneAuthority, n: int) -> None:
    (a,), _, _ = answer(ask(zone, f"host-{n}.polyloop.test", dns.A))
    assert a.payload.dottedQuad() == f"192.0.2.{n}"
    (aaaa,), _, _ = answer(ask(zone, f"host-{n}.polyloop.test", dns.AAAA))
    address = ipaddress.IPv6Address(aaaa.payload.address)
    assert address == ipaddress.IPv6Address(f"2001:db8::{n}")
    assert address in ipaddress.IPv6Network("2001:db8::/32")


def test_every_address_of_the_zone_is_a_documentation_address(zone: ZoneAuthority) -> None:
    v4 = ipaddress.IPv4Network("192.0.2.0/24")
    v6 = ipaddress.IPv6Network("2001:db8::/32")
    count = 0
    for records in zone.records.values():
        for record in records:
            if record.TYPE == dns.A:
                assert ipaddress.IPv4Address(record.address) in v4
                count += 1
            elif record.TYPE == dns.AAAA:
                assert ipaddress.IPv6Address(record.address) in v6
                count += 1
    assert count == 2 * (250 + 3)


def test_host_0_and_host_251_do_not_exist(zone: ZoneAuthority) -> None:
    for name in ("host-0.polyloop.test", "host-251.polyloop.test"):
        failure_of(ask(zone, name)).trap(error.AuthoritativeDomainError)


def test_unknown_name_in_the_zone_is_authoritative_nxdomain(zone: ZoneAuthority) -> None:
    failure_of(ask(zone, "nope.polyloop.test")).trap(error.AuthoritativeDomainError)


def test_known_name_without_that_type_is_nodata_with_soa(zone: ZoneAuthority) -> None:
    answers, authority, _ = answer(ask(zone, "www.polyloop.test", dns.MX))
    assert answers == []
    assert [r.type for r in authority] == [dns.SOA]


@pytest.mark.parametrize("name", ["example.com", "polyloop.test.example.com", "test"])
def test_names_outside_the_zone_are_not_ours(zone: ZoneAuthority, name: str) -> None:
    failure = failure_of(ask(zone, name))
    failure.trap(error.DomainError)
    assert not failure.check(error.AuthoritativeDomainError)


def test_any_gets_the_minimal_rfc8482_answer(zone: ZoneAuthority) -> None:
    answers, authority, additional = answer(ask(zone, "host-1.polyloop.test", dns.ALL_RECORDS))
    assert len(answers) == 1
    (hinfo,) = answers
    assert hinfo.type == dns.HINFO
    assert hinfo.payload.cpu == b"RFC8482"
    assert hinfo.auth
    assert authority == additional == []


def test_any_for_an_unknown_name_is_still_nxdomain(zone: ZoneAuthority) -> None:
    failure_of(ask(zone, "nope.polyloop.test", dns.ALL_RECORDS)).trap(
        error.AuthoritativeDomainError
    )


@pytest.mark.parametrize("qtype", [dns.AXFR, dns.IXFR])
def test_zone_transfers_are_refused(zone: ZoneAuthority, qtype: int) -> None:
    failure_of(ask(zone, "polyloop.test", qtype)).trap(error.DNSQueryRefusedError)


def test_a_zone_file_without_soa_is_rejected(tmp_path) -> None:
    broken = tmp_path / "broken.zone"
    broken.write_text("$ORIGIN polyloop.test.\nwww IN A 192.0.2.10\n", encoding="ascii")
    with pytest.raises(ValueError, match="no SOA"):
        ZoneAuthority(broken)
