"""The slow corner of the zone: ``X.delay-N.polyloop.test`` answers after N milliseconds.

``DelayingAuthority`` wraps the public ``query()`` of another authority (the zone). For
a name ``X.delay-N.<zone>`` (X any one label, N in milliseconds) it answers through
``task.deferLater(clock, N / 1000, ...)``: the reactor keeps serving every other query
meanwhile, which is the point of the demo (compare a sequential and a concurrent
resolve of a few slow names). The clock is injected so unit tests advance a
``task.Clock`` instead of sleeping.

- ``A`` (and ``ANY``) get ``192.0.2.254`` (``DELAY_ADDRESS``, RFC 5737, outside the
  ``host-N`` range), other types an empty NODATA answer; TTL 0 so a cache in between
  never hides the delay.
- N above ``max_delay_ms`` is REFUSED at once, not honoured; so is a delayed query
  beyond ``max_pending`` already waiting (a flood cannot pile up timers without bound).
  Counted: ``refused_over_max`` (a client's choice, not logged) and
  ``saturated.counts["refused"]``, logged as one summary line per ``stats_interval``
  seconds while saturated, never one line per refused query.
- Every other name goes to the wrapped authority unchanged.

Try it: dig +norec @127.0.0.1 -p 1053 a.delay-1500.polyloop.test   (answers after 1.5 s)
"""

from __future__ import annotations

import logging
import re

from twisted.internet import defer, interfaces, task
from twisted.names import common, dns, error

from services.dns.summary import CountSummary

DELAY_ADDRESS = "192.0.2.254"
DELAY_LABEL = re.compile(rb"delay-([0-9]{1,10})")

log = logging.getLogger(__name__)


class DelayingAuthority(common.ResolverBase):
    """Answer ``X.delay-N.<zone>`` after N ms; pass every other query to ``zone``."""

    def __init__(
        self,
        zone: interfaces.IResolver,
        clock: interfaces.IReactorTime,
        *,
        max_delay_ms: int = 10_000,
        max_pending: int = 10_000,
        stats_interval: float = 10.0,
    ) -> None:
        super().__init__()
        self.zone = zone
        self.clock = clock
        self.max_delay_ms = max_delay_ms
        self.max_pending = max_pending
        self.pending = 0  # delayed answers waiting now
        self.refused_over_max = 0
        self.saturated = CountSummary(
            "delayed queries saturated, refusing",
            ("refused",),
            clock,
            stats_interval,
            log,
            context=lambda: {"pending": self.pending, "max_pending": self.max_pending},
        )
        self.soa = zone.soa
        self._suffix = b"." + zone.soa[0].lower()

    def query(self, query: dns.Query, timeout=None) -> defer.Deferred:
        delay_ms = self.delay_of(query.name.name)
        if delay_ms is None:
            return self.zone.query(query, timeout)
        if delay_ms > self.max_delay_ms:
            self.refused_over_max += 1
            return defer.fail(error.DNSQueryRefusedError(query.name.name))
        if self.pending >= self.max_pending:
            self.saturated.count("refused")
            return defer.fail(error.DNSQueryRefusedError(query.name.name))
        self.pending += 1
        answered = task.deferLater(self.clock, delay_ms / 1000, self._answer, query)
        return answered.addBoth(self._done)

    def _lookup(self, name, cls, type, timeout=None):
        # the lookupXxx() helpers of ResolverBase, routed through query() as well
        return self.query(dns.Query(name, type, cls), timeout)

    def delay_of(self, name: bytes) -> int | None:
        """N for a name ``X.delay-N.<zone>`` (any case), else None."""
        name = name.lower()
        if b"delay-" not in name or not name.endswith(self._suffix):
            return None  # the common case, every query of the zone's own names
        labels = name[: -len(self._suffix)].split(b".")
        if len(labels) != 2 or not labels[0]:
            return None
        match = DELAY_LABEL.fullmatch(labels[1])
        return int(match.group(1)) if match else None

    def _answer(self, query: dns.Query) -> tuple[list, list, list]:
        if query.type in (dns.A, dns.ALL_RECORDS):
            record = dns.Record_A(DELAY_ADDRESS, ttl=0)
            return [dns.RRHeader(query.name.name, dns.A, dns.IN, 0, record, auth=True)], [], []
        apex, soa = self.soa
        return [], [dns.RRHeader(apex, dns.SOA, dns.IN, 0, soa, auth=True)], []

    def _done(self, result):
        self.pending -= 1
        return result
