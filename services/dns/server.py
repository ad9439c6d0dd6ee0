"""The DNS server of the stack: Twisted's ``DNSServerFactory`` with an authoritative policy.

Wired as Twisted's ``override_server.py`` and ``names.tap.makeService`` do: one factory
(the controller) built from ``authorities=[...]``, a ``ServerDatagramProtocol`` for UDP
and the factory itself for TCP, both on the same port. No ``clients`` and no ``caches``:
it never recurses (RA stays clear) and never answers from anything but its zone.

What the subclass changes in the answers Twisted gives by default:

- a name outside the zone is REFUSED (Twisted says NXDOMAIN), and so is any
  ``DNSQueryRefusedError`` raised by an authority (a delay above the maximum, AXFR, IXFR);
- NXDOMAIN inside the zone is authoritative (AA set) and carries the SOA (RFC 2308);
- every error goes out as a proper response (Twisted's ``allowQuery`` and ``handleOther``
  paths echo the query with QR clear): another opcode than QUERY gets NOTIMP, no question
  or several questions FORMERR, another class than IN REFUSED;
- a message that is itself a response (QR set) is dropped, never answered: two servers
  must not be able to ping-pong replies at each other;
- RD is copied into replies to a QUERY as RFC 1035 asks (never into NOTIMP: RD means
  something for QUERY only), and NODATA answers carry AA;
- EDNS (RFC 6891) with Twisted's own ``_EDNSMessage``: a query with an OPT gets an OPT
  back (UDP payload ``EDNS_UDP_PAYLOAD``, the DO bit copied), version > 0 gets BADVERS,
  several OPTs FORMERR, unknown options are ignored. A UDP reply fits the requester's
  payload size (512 without EDNS) or is truncated whole-record (TC set, question kept);
- a TSIG-signed query (RFC 8945) gets NOTAUTH with TSIG error BADKEY, unsigned and without
  data: this server holds no keys;
- TCP connections that stay silent for ``tcp_idle_timeout`` seconds are closed.

Malformed messages are answered FORMERR with the header only (never by repeating what
could not be parsed: a 64-octet label, a name over 255 octets, a compression-pointer
loop, a message cut short), or dropped when shorter than a header. Twisted's own
``DNSMixin._handleResponse`` would drop them all silently and log each one; here each is
counted by reason in ``malformed.counts`` and summarised in one log line per interval.

Try it: dig +norec @127.0.0.1 -p 1053 www.polyloop.test +edns=0
"""

from __future__ import annotations

import logging
import struct
import time

from twisted.internet import interfaces
from twisted.names import dns, error, server
from twisted.protocols.policies import TimeoutMixin

from services.common import probes
from services.common.faults import Faults
from services.dns.config import DnsConfig
from services.dns.delay import DelayingAuthority
from services.dns.summary import CountSummary
from services.dns.zone import ZoneAuthority

log = logging.getLogger(__name__)

# RFC 6891 section 6.2.5 and the 2020 DNS flag day: fits any path's MTU without fragments
EDNS_UDP_PAYLOAD = 1232
# RFC 1035 section 2.3.4 (a name's wire form, length octets included) and 4.2.1 (no EDNS)
MAX_NAME_OCTETS = 255
MAX_LABEL_OCTETS = 63
PLAIN_UDP_PAYLOAD = 512
HEADER = struct.Struct("!HHHHHH")  # id, flags, qd/an/ns/ar counts
QR_BIT = 0x8000
EBADVERS = 16  # RFC 6891: the extended RCODE, upper 8 bits in the OPT
ENOTAUTH = 9  # RFC 8945: NOTAUTH
TSIG_BADKEY = 17  # RFC 8945: the TSIG RR's error field
# "short": no header, nothing to answer; the others are answered FORMERR
MALFORMED_REASONS = ("short", "truncated", "bad_name", "bad_pointer", "bad_edns", "bad_tsig")
# the label values of polyloop_dns_queries_total and _refused_total: closed sets
RCODE_NAMES = {
    dns.OK: "NOERROR",
    dns.EFORMAT: "FORMERR",
    dns.ESERVER: "SERVFAIL",
    dns.ENAME: "NXDOMAIN",
    dns.ENOTIMP: "NOTIMP",
    dns.EREFUSED: "REFUSED",
    ENOTAUTH: "NOTAUTH",
    EBADVERS: "BADVERS",
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


class Malformed(Exception):
    """A message that cannot be answered but with FORMERR; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Reply(dns._EDNSMessage):
    """A reply: Twisted's EDNS message with a size ``limit`` applied the RFC's way.

    ``Message.encode`` cuts an oversized message at ``maxSize`` bytes, in the middle of a
    record, counts unchanged; a reply over ``limit`` here drops every record but the OPT
    and sets TC, so the client retries over TCP (RFC 2181 section 9). A TSIG record goes
    last, after the OPT that ``_toMessage`` appends (RFC 8945 section 4.2).
    """

    limit = 0  # octets; 0: none (TCP)

    def toStr(self) -> bytes:
        message = self._toMessage()
        message.maxSize = 0
        if len(message.additional) > 1:
            message.additional.sort(key=lambda record: record.type == dns.TSIG)
        wire = message.toStr()
        if self.limit and len(wire) > self.limit:
            message.answers, message.authority = [], []
            message.additional = [r for r in message.additional if r.type == dns.OPT]
            message.trunc = True
            wire = message.toStr()
        return wire


class PlainReply(dns.Message):
    """The reply to a query without EDNS: a plain ``Message`` (no OPT to add, so none of
    ``_EDNSMessage``'s conversion, a third of the cost of answering), cut the same way as
    ``Reply`` when it does not fit ``limit``."""

    limit = 0  # octets; 0: none (TCP)

    def toStr(self) -> bytes:
        self.maxSize = 0
        wire = super().toStr()
        if self.limit and len(wire) > self.limit:
            self.answers, self.authority, self.additional = [], [], []
            self.trunc = True
            wire = super().toStr()
        return wire


class ServerDatagramProtocol(dns.DNSDatagramProtocol):
    """DNS over UDP for a server: every datagram goes to the controller as bytes, so it
    decides what a malformed one gets (Twisted's client-side parsing would drop it)."""

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        self.controller.wireReceived(data, self, addr)


class IdleTimeoutDNSProtocol(dns.DNSProtocol, TimeoutMixin):
    """DNS over TCP (RFC 7766) that closes a connection silent for too long."""

    def connectionMade(self) -> None:
        self.callLater = self.controller.clock.callLater
        super().connectionMade()
        self.setTimeout(self.controller.tcp_idle_timeout)

    def stringReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self.controller.wireReceived(data, self, None)

    def writeMessage(self, message: dns.Message) -> None:
        # a slow (delayed) answer counts as activity, so it is not cut by the timeout
        self.resetTimeout()
        super().writeMessage(message)

    def connectionLost(self, reason) -> None:
        self.setTimeout(None)
        super().connectionLost(reason)


class AuthoritativeServerFactory(server.DNSServerFactory):
    """A ``DNSServerFactory`` that answers only for its zones and never recurses.

    Counters (totals since start): ``malformed.counts`` by reason, ``replies`` by rcode.
    """

    protocol = IdleTimeoutDNSProtocol

    def __init__(
        self,
        authorities: list[interfaces.IResolver],
        *,
        tcp_idle_timeout: float = 30.0,
        clock: interfaces.IReactorTime | None = None,
        stats_interval: float = 10.0,
    ) -> None:
        super().__init__(authorities=authorities)
        self.tcp_idle_timeout = tcp_idle_timeout
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.malformed = CountSummary(
            "malformed DNS messages", MALFORMED_REASONS, clock, stats_interval, log
        )
        # replies by (rcode name, qtype name), refusals by reason: plain counts read by
        # metrics.DnsCollector at scrape time
        self.answered: dict[tuple[str, str], int] = {}
        self.refused = dict.fromkeys(REFUSED_REASONS, 0)
        # answers to the stack's own probe name (services.common.probes), counted apart
        self.probes = 0
        self.delaying: DelayingAuthority | None = None
        # off and empty; the loop's start (services.common.loops) gives it the reactor's hooks
        self.faults = Faults()

    def wireReceived(self, data: bytes, proto, address=None) -> None:
        """One message off the wire (UDP datagram or TCP frame): parse, check, answer."""
        if len(data) < HEADER.size:
            self.malformed.count("short")
            return
        _, flags, *counts = HEADER.unpack_from(data)
        if flags & QR_BIT:
            return  # a response: never answered (no ping-pong between two servers)
        message = dns.Message()
        try:
            decode(message, data, counts)
        except Malformed as bad:
            self._reply_malformed(message, proto, address, bad.reason)
            return
        self.messageReceived(message, proto, address)

    def messageReceived(self, message: dns.Message, proto, address=None) -> None:
        if message.answer:
            return
        if not hasattr(message, "ednsVersion"):  # not checked yet (edns_view sets it)
            try:
                message = edns_view(message)
            except Malformed as bad:
                self._reply_malformed(message, proto, address, bad.reason)
                return
        if message.opCode != dns.OP_QUERY:
            self._reply(message, proto, address, dns.ENOTIMP)
        elif message.ednsVersion is not None and message.ednsVersion > 0:
            self._reply(message, proto, address, EBADVERS)
        elif message.additional and message.additional[-1].type == dns.TSIG:
            self._reply_badkey(message, proto, address)
        elif len(message.queries) != 1:
            self._reply(message, proto, address, dns.EFORMAT)
        elif message.queries[0].cls != dns.IN:
            self._reply(message, proto, address, dns.EREFUSED)
        elif self.faults.active:  # the one check the hot path pays for the faults
            self._faulty(message, proto, address)
        else:
            # Twisted's messageReceived would ask allowQuery and dispatch on the opcode:
            # both decided above
            self.handleQuery(message, proto, address)

    def _faulty(self, message: dns.Message, proto, address) -> None:
        """A fault is set: answer SERVFAIL (fail), or look up after its latency."""
        spec = self.faults.current()
        if spec is not None and self.faults.should_fail(spec):
            self._reply(message, proto, address, dns.ESERVER)
        elif spec is not None and spec.latency_ms:
            # the reactor's own timer: this query waits, every other one is answered
            self.clock.callLater(spec.latency_s, self.handleQuery, message, proto, address)
        else:
            self.handleQuery(message, proto, address)

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

    def sendReply(self, protocol, message: Reply | PlainReply, address) -> None:
        """Write the reply and count it (Twisted's own also formats a line for its verbose
        log on every reply, verbose or not)."""
        if address is None:
            message.limit = 0  # over TCP a reply is never truncated
            protocol.writeMessage(message)
        else:
            protocol.writeMessage(message, address)
        query = message.queries[0] if message.queries else None
        if query is not None and probes.is_probe_name(query.name.name):
            # the stack's own question (healthcheck, the front's probes): never served
            self.probes += 1
            return
        rcode = message.rCode
        key = (
            RCODE_NAMES.get(rcode, "other"),
            "none" if query is None else QTYPE_NAMES.get(query.type, "other"),
        )
        self.answered[key] = self.answered.get(key, 0) + 1
        if rcode == dns.EREFUSED:
            self.refused[self._refused_reason(query)] += 1

    @property
    def replies(self) -> dict[int, int]:
        """Replies sent so far, by rcode (summed from ``answered``)."""
        by_name = dict.fromkeys(RCODE_NAMES.values(), 0)
        for (rcode, _), count in list(self.answered.items()):
            by_name[rcode] = by_name.get(rcode, 0) + count
        return {rcode: by_name[name] for rcode, name in RCODE_NAMES.items()}

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

    def stopFactory(self) -> None:
        # the TCP port closed (shutdown): log what the last interval counted
        self.malformed.flush()
        for resolver in self.resolver.resolvers:
            saturated = getattr(resolver, "saturated", None)
            if isinstance(saturated, CountSummary):
                saturated.flush()

    def _responseFromMessage(
        self, message, rCode=dns.OK, answers=None, authority=None, additional=None
    ) -> Reply | PlainReply:
        """Twisted's own (``server.DNSServerFactory._responseFromMessage``), with an EDNS
        reply only for an EDNS query and this server's rules for RD, AA and the size."""
        requested = getattr(message, "ednsVersion", None)
        answers, authority = answers or [], authority or []
        response = dns._responseFromMessage(
            PlainReply if requested is None else Reply,
            message,
            rCode=rCode,
            recAv=self.canRecurse,
            # NODATA (no answer, the zone's SOA in authority) is an authoritative answer too
            auth=any(r.auth for r in answers) or any(r.auth for r in authority),
            # RD means something in a QUERY only; the reply to a QUERY repeats it (RFC 1035)
            recDes=message.recDes and message.opCode == dns.OP_QUERY,
            opCode=message.opCode,
        )
        response.answers, response.authority = answers, authority
        response.additional = additional or []
        if requested is None:
            response.limit = PLAIN_UDP_PAYLOAD  # no OPT in the query: none in the reply
        else:
            response.ednsVersion = 0  # the only version there is (BADVERS says so too)
            response.dnssecOK = message.dnssecOK  # RFC 3225 section 3: DO is copied
            response.maxSize = EDNS_UDP_PAYLOAD  # what we accept, advertised in our OPT
            # the requester's size, but never below 512 (RFC 6891 6.2.5) nor above ours
            response.limit = min(max(message.maxSize, PLAIN_UDP_PAYLOAD), EDNS_UDP_PAYLOAD)
        return response

    def _reply(self, message, proto, address, rCode, *, auth=False, authority=None) -> None:
        response = self._responseFromMessage(message, rCode=rCode, authority=authority)
        response.auth = auth
        self.sendReply(proto, response, address)

    def _reply_malformed(self, message: dns.Message, proto, address, reason: str) -> None:
        """FORMERR (NOTIMP for another opcode than QUERY) with the header only: what could
        not be parsed is never repeated, and an OPT that may be broken gets none back."""
        self.malformed.count(reason)
        query = message.opCode == dns.OP_QUERY
        reply = PlainReply(
            id=message.id,
            answer=True,
            opCode=message.opCode,
            recDes=message.recDes and query,
            rCode=dns.EFORMAT if query else dns.ENOTIMP,
        )
        self.sendReply(proto, reply, address)

    def _reply_badkey(self, message, proto, address) -> None:
        """RFC 8945 section 5.2.1: an unknown key gets NOTAUTH, TSIG error BADKEY, and an
        unsigned TSIG (empty MAC) naming the key and algorithm the client used."""
        signed = next(r for r in message.additional if r.type == dns.TSIG)
        tsig = dns.Record_TSIG(
            algorithm=signed.payload.algorithm.name,
            timeSigned=int(time.time()),
            fudge=signed.payload.fudge,
            MAC=b"",
            originalID=signed.payload.originalID,
            error=TSIG_BADKEY,
        )
        record = dns.RRHeader(signed.name.name, dns.TSIG, dns.ANY, 0, tsig)
        response = self._responseFromMessage(message, rCode=ENOTAUTH, additional=[record])
        self.sendReply(proto, response, address)

    def _soa_above(self, name: bytes) -> list[dns.RRHeader]:
        """The SOA of the authority holding ``name``, for a negative answer (RFC 2308)."""
        for resolver in self.resolver.resolvers:
            apex, soa = getattr(resolver, "soa", None) or (None, None)
            if apex is not None and _is_within(name, apex):
                ttl = min(soa.minimum, soa.ttl if soa.ttl is not None else soa.minimum)
                return [dns.RRHeader(apex, dns.SOA, dns.IN, ttl, soa, auth=True)]
        return []


def decode(message: dns.Message, data: bytes, counts: list[int] | None = None) -> None:
    """Decode ``data`` (at least a header long) into ``message``, then check it; raise
    ``Malformed`` with the reason. The header is decoded first, so even a malformed
    ``message`` has its id, opcode and flags for the FORMERR. ``counts``: the header's four
    section counts, when the caller already unpacked them.

    Stricter than ``Message.fromStr``, which stops quietly where a section is cut short
    and accepts labels over 63 octets (and would write them back in a reply).
    """
    try:
        message.fromStr(data)
    except ValueError as exc:  # a compression loop, or too many pointers (DNSDecodeError)
        raise Malformed("bad_pointer") from exc
    except EOFError as exc:
        raise Malformed("truncated") from exc
    if counts is None:
        counts = list(HEADER.unpack_from(data)[2:])
    found = [
        len(message.queries),
        len(message.answers),
        len(message.authority),
        len(message.additional),
    ]
    if found != counts:
        raise Malformed("truncated")


def edns_view(message: dns.Message) -> dns.Message:
    """The message as Twisted's ``_EDNSMessage`` (its OPT read into attributes), once its
    names, its OPT (RFC 6891 6.1.1: one at most, owned by the root) and its TSIG (RFC 8945
    5.1: one at most, the last record) are checked; else ``Malformed``. Without an OPT
    it is the message itself with ``ednsVersion = None``, as ``_EDNSMessage`` would say
    (a plain query, the common case, skips the copy)."""
    for query in message.queries:
        if not _valid_name(query.name.name):
            raise Malformed("bad_name")
    opts: list[dns.RRHeader] = []
    additional = message.additional
    if message.answers or message.authority or additional:
        for section in (message.answers, message.authority, additional):
            for record in section:
                if not _valid_name(record.name.name):
                    raise Malformed("bad_name")
        opts = [record for record in additional if record.type == dns.OPT]
        if len(opts) > 1 or any(opt.name.name for opt in opts):
            raise Malformed("bad_edns")
        tsigs = [i for i, record in enumerate(additional) if record.type == dns.TSIG]
        if tsigs and tsigs != [len(additional) - 1]:
            raise Malformed("bad_tsig")
    if not opts:
        message.ednsVersion = None
        message.dnssecOK = False
        return message
    try:
        return dns._EDNSMessage._fromMessage(message)
    except EOFError as exc:  # an option's length runs past the OPT's data
        raise Malformed("bad_edns") from exc


def _valid_name(name: bytes) -> bool:
    # the wire form of a name of n octets (dots included) is n + 2 octets: one length
    # octet per label and the root's zero octet; a name this short has no long label
    if len(name) <= MAX_LABEL_OCTETS:
        return True
    return len(name) + 2 <= MAX_NAME_OCTETS and (
        max(map(len, name.split(b"."))) <= MAX_LABEL_OCTETS
    )


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
        stats_interval=config.stats_interval,
    )
    factory = AuthoritativeServerFactory(
        authorities=[delaying],
        tcp_idle_timeout=config.tcp_idle_timeout,
        clock=clock,
        stats_interval=config.stats_interval,
    )
    factory.delaying = delaying  # its pending count is a metric
    return factory
