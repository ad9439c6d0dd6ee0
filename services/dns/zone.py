"""The zone ``polyloop.test``, loaded from the BIND file kept next to this module.

``ZoneAuthority`` is Twisted's ``BindAuthority`` with three answers changed for a
public-facing demo server:

- ``ANY`` gets the minimal answer of RFC 8482 (one synthesized ``HINFO "RFC8482" ""``),
  not every RRset of the name: no amplification, nothing a client should rely on.
- ``AXFR`` and ``IXFR`` (zone transfers) are refused: over UDP a transfer would be a 20 kB
  reply to a 40 B query, and this server has no secondaries.
- The rest is BindAuthority's: records of the zone, NODATA (empty answer + SOA) for a
  known name without that type, ``AuthoritativeDomainError`` (NXDOMAIN) for an unknown
  name of the zone, ``DomainError`` for a name outside it (the server answers REFUSED).

Try it (with the service running): dig +norec @127.0.0.1 -p 1053 host-7.polyloop.test AAAA
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer
from twisted.names import authority, dns, error

ZONE_FILE = Path(__file__).with_name("polyloop.test.zone")
# RFC 8482 section 4.2: the synthesized record's TTL is the implementer's choice
ANY_TTL = 3600


class ZoneAuthority(authority.BindAuthority):
    """The records of one BIND zone file, answered authoritatively."""

    def __init__(self, filename: str | Path = ZONE_FILE) -> None:
        super().__init__(str(filename))
        if self.soa is None:
            raise ValueError(f"{filename}: the zone has no SOA record")

    @property
    def origin_name(self) -> bytes:
        """The zone apex, lower case, without the final dot: ``b"polyloop.test"``."""
        return self.soa[0].lower()

    def _lookup(self, name, cls, type, timeout=None):
        if type == dns.IXFR:
            # not in ResolverBase's type table, so it lands here rather than lookupZone
            return defer.fail(error.DNSQueryRefusedError(name))
        if type == dns.ALL_RECORDS:
            return self._minimal_any(name)
        return super()._lookup(name, cls, type, timeout)

    def _minimal_any(self, name: bytes) -> defer.Deferred:
        if name.lower() not in self.records:
            # NXDOMAIN inside the zone, DomainError outside, exactly as for other types
            return super()._lookup(name, dns.IN, dns.ALL_RECORDS)
        hinfo = dns.Record_HINFO(cpu=b"RFC8482", os=b"", ttl=ANY_TTL)
        answer = dns.RRHeader(name, dns.HINFO, dns.IN, ANY_TTL, hinfo, auth=True)
        return defer.succeed(([answer], [], []))

    def lookupZone(self, name, timeout=None):
        return defer.fail(error.DNSQueryRefusedError(name))
