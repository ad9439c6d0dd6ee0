"""The DNS server of the stack: Twisted's ``DNSServerFactory`` with an authoritative policy.

Wired as Twisted's ``override_server.py`` and ``names.tap.makeService`` do: one factory
(the controller) built from ``authorities=[...]``, a ``DNSDatagramProtocol`` for UDP and
the factory itself for TCP, both on the same port. No ``clients`` and no ``caches``: it
never recurses (RA stays clear) and never answers from anything but its zone.

What the subclass changes in the answers Twisted gives by default:

- a name outside the zone is REFUSED (Twisted says NXDOMAIN), and so is any
  ``DNSQueryRefusedError`` raised by an authority (a delay above the maximum, AXFR);
- NXDOMAIN inside the zone is authoritative (AA set) and carries the SOA (RFC 2308);
- every error goes out as a proper response (Twisted's ``allowQuery`` and ``handleOther``
  paths echo the query with QR clear): another opcode than QUERY gets NOTIMP, no question
  or several questions FORMERR, another class than IN REFUSED;
- a message that is itself a response (QR set) is dropped, never answered: two servers
  must not be able to ping-pong replies at each other;
- RD is copied into the reply as RFC 1035 asks, and NODATA answers carry AA;
- TCP connections that stay silent for ``tcp_idle_timeout`` seconds are closed.

Malformed packets never reach this code: ``DNSMixin._handleResponse`` drops what
``Message.fromStr`` cannot parse (logged), and the reactor logs anything else a bad
datagram raises, so one bad packet never stalls the others (see the tests).

Try it: dig @127.0.0.1 -p 1053 www.polyloop.test
"""

from __future__ import annotations

import logging
import time

from twisted.internet import interfaces
from twisted.names import dns, error, server
from twisted.protocols.policies import TimeoutMixin

from services.dns.config import DnsConfig
from services.dns.delay import DelayingAuthority
from services.dns.zone import ZoneAuthority

log = logging.getLogger(__name__)

# the label values of polyloop_dns_queries_total and _refused_total: closed sets
RCODE_NAMES = {
    dns.OK: "NOERROR",
    dns.EFORMAT: "FORMERR",
    dns.ESERVER: "SERVFAIL",
    dns.ENAME: "NXDOMAIN",
    dns.ENOTIMP: "NOTIMP",
    dns.EREFUSED: "REFUSED",
    dns.EBADVERSION: "BADVERS",
}
QTYPE_NAMES = {
    dns.A: "A",
    dns.AAAA: "AAAA",
    dns.ALL_RECORDS: "ANY",
    dns.SOA: "SOA",
    dns.NS: "NS",
    dns.TXT: "TXT",
    dns.MX: "MX",
    dns.CNAME: "CNAME",
    dns.PTR: "PTR",
    dns.AXFR: "AXFR",
    dns.IXFR: "IXFR",
}
REFUSED_REASONS = ("out_of_zone", "zone_transfer", "class", "delay_limit")


class IdleTimeoutDNSProtocol(dns.DNSProtocol, TimeoutMixin):
    """DNS over TCP (RFC 7766) that closes a connection silent for too long."""

    def connectionMade(self) -> None:
        self.callLater = self.controller.clock.callLater
        super().connectionMade()
        self.setTimeout(self.controller.tcp_idle_timeout)

    def stringReceived(self, data: bytes) -> None:
        self.resetTimeout()
        super().stringReceived(data)

    def writeMessage(self, message: dns.Message) -> None:
        # a slow (delayed) answer counts as activity, so it is not cut by the timeout
        self.resetTimeout()
        super().writeMessage(message)

    def connectionLost(self, reason) -> None:
        self.setTimeout(None)
        super().connectionLost(reason)


class AuthoritativeServerFactory(server.DNSServerFactory):
    """A ``DNSServerFactory`` that answers only for its zones and never recurses."""

    protocol = IdleTimeoutDNSProtocol

    def __init__(
        self,
        authorities: list[interfaces.IResolver],
        *,
        tcp_idle_timeout: float = 30.0,
        clock: interfaces.IReactorTime | None = None,
    ) -> None:
        super().__init__(authorities=authorities)
        self.tcp_idle_timeout = tcp_idle_timeout
        # replies sent, by (rcode name, qtype name), and refusals by reason: plain counts
        # read by metrics.DnsCollector at scrape time
        self.replies: dict[tuple[str, str], int] = {}
        self.refused = dict.fromkeys(REFUSED_REASONS, 0)
        self.delaying: DelayingAuthority | None = None
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock

    def messageReceived(self, message: dns.Message, proto, address=None) -> None:
        if message.answer:
            return
        # Twisted's sendReply() computes the processing time from this, verbose or not
        message.timeReceived = time.time()
        if message.opCode != dns.OP_QUERY:
            self._reply(message, proto, address, dns.ENOTIMP)
        elif len(message.queries) != 1:
            self._reply(message, proto, address, dns.EFORMAT)
        elif message.queries[0].cls != dns.IN:
            self._reply(message, proto, address, dns.EREFUSED)
        else:
            super().messageReceived(message, proto, address)

    def sendReply(self, protocol, message: dns.Message, address) -> None:
        self._count(message)
        super().sendReply(protocol, message, address)

    def _count(self, message: dns.Message) -> None:
        query = message.queries[0] if message.queries else None
        rcode = RCODE_NAMES.get(message.rCode, "other")
        qtype = "none" if query is None else QTYPE_NAMES.get(query.type, "other")
        key = (rcode, qtype)
        self.replies[key] = self.replies.get(key, 0) + 1
        if message.rCode == dns.EREFUSED:
            self.refused[self._refused_reason(query)] += 1

    def _refused_reason(self, query: dns.Query | None) -> str:
        if query is not None and query.type in (dns.AXFR, dns.IXFR):
            return "zone_transfer"
        if query is not None and query.cls != dns.IN:
            return "class"
        if (
            query is not None
            and self.delaying is not None
            and self.delaying.delay_of(query.name.name) is not None
        ):
            return "delay_limit"
        return "out_of_zone"

    def allowQuery(self, message: dns.Message, protocol, address) -> bool:
        # messageReceived() already answered what Twisted's default would refuse
        return True

    def gotResolverError(self, failure, protocol, message, address) -> None:
        if failure.check(error.AuthoritativeDomainError):
            soa = self._soa_above(message.queries[0].name.name)
            self._reply(message, protocol, address, dns.ENAME, auth=True, authority=soa)
        elif failure.check(error.DomainError):
            # out of the chain, DomainError means no authority holds the name (not ours);
            # its subclass DNSQueryRefusedError is an authority saying no (delay, AXFR)
            self._reply(message, protocol, address, dns.EREFUSED)
        else:
            log.error(
                "lookup failed, answering SERVFAIL",
                exc_info=(failure.type, failure.value, failure.getTracebackObject()),
                extra={"query": str(message.queries[0])},
            )
            self._reply(message, protocol, address, dns.ESERVER)

    def _responseFromMessage(self, message, rCode=dns.OK, **sections) -> dns.Message:
        response = super()._responseFromMessage(message, rCode=rCode, **sections)
        response.recDes = message.recDes
        # NODATA (no answer, the zone's SOA in authority) is an authoritative answer too
        response.auth = response.auth or any(r.isAuthoritative() for r in response.authority)
        response.opCode = message.opCode
        return response

    def _reply(self, message, proto, address, rCode, *, auth=False, authority=None) -> None:
        response = self._responseFromMessage(message, rCode=rCode, authority=authority)
        response.auth = auth
        self.sendReply(proto, response, address)

    def _soa_above(self, name: bytes) -> list[dns.RRHeader]:
        """The SOA of the authority holding ``name``, for a negative answer (RFC 2308)."""
        for resolver in self.resolver.resolvers:
            apex, soa = getattr(resolver, "soa", None) or (None, None)
            if apex is not None and _is_within(name, apex):
                ttl = min(soa.minimum, soa.ttl if soa.ttl is not None else soa.minimum)
                return [dns.RRHeader(apex, dns.SOA, dns.IN, ttl, soa, auth=True)]
        return []


def _is_within(name: bytes, apex: bytes) -> bool:
    name, apex = name.lower().rstrip(b"."), apex.lower().rstrip(b".")
    return name == apex or name.endswith(b"." + apex)


def build_factory(config: DnsConfig, clock: interfaces.IReactorTime) -> AuthoritativeServerFactory:
    """The whole server but its ports: the zone, the delaying authority, the factory."""
    zone = ZoneAuthority(config.zone_file)
    delaying = DelayingAuthority(
        zone,
        clock,
        max_delay_ms=config.max_delay_ms,
        max_pending=config.max_pending_delays,
    )
    factory = AuthoritativeServerFactory(
        authorities=[delaying], tcp_idle_timeout=config.tcp_idle_timeout, clock=clock
    )
    factory.delaying = delaying  # its pending count is a metric
    return factory
