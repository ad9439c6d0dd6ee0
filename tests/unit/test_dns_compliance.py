"""The ``dns`` server against dnspython over real UDP and TCP sockets on 127.0.0.1.

The service's own factory and protocols (``build_factory``, ``ServerDatagramProtocol``,
the factory for TCP, as ``services/dns/__main__.py`` wires them) on a reactor of their own
in a thread (tests/twisted_thread.py). What ISC's DNS compliance testing and issue 8
items 11-12 found: EDNS (RFC 6891), malformed names and pointer loops, IXFR, RD in
NOTIMP, TSIG with an unknown key (RFC 8945). Nothing else needs to be running.
Run: .venv/bin/pytest tests/unit/test_dns_compliance.py
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import pytest
from twisted.internet.error import CannotListenError

from devstack import free_port
from services.dns.config import DnsConfig
from services.dns.make_zone import render
from services.dns.server import (
    EDNS_UDP_PAYLOAD,
    AuthoritativeServerFactory,
    ServerDatagramProtocol,
    build_factory,
)
from tests.twisted_thread import ReactorThread

HOST = "127.0.0.1"
TIMEOUT = 2.0
# a name with 40 A records (~700 octets of answer): more than 512, less than 1232
BIG = "big.polyloop.test"
BIG_RECORDS = 40


@dataclass
class Server:
    factory: AuthoritativeServerFactory
    port: int

    def udp(self, query: dns.message.Message, **kwargs: object) -> dns.message.Message:
        return dns.query.udp(query, HOST, port=self.port, timeout=TIMEOUT, **kwargs)

    def tcp(self, query: dns.message.Message, **kwargs: object) -> dns.message.Message:
        return dns.query.tcp(query, HOST, port=self.port, timeout=TIMEOUT, **kwargs)

    def udp_raw(self, wire: bytes) -> bytes | None:
        """Send raw bytes; the raw reply, or None if none came within the timeout."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.sendto(wire, (HOST, self.port))
            try:
                return sock.recv(65535)
            except TimeoutError:
                return None

    def tcp_raw(self, wire: bytes) -> bytes | None:
        with socket.create_connection((HOST, self.port), timeout=TIMEOUT) as sock:
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            try:
                (length,) = struct.unpack("!H", _read(sock, 2))
                return _read(sock, length)
            except (TimeoutError, EOFError):
                return None


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


@pytest.fixture
def zone_file(tmp_path: Path) -> Path:
    # the real zone plus one name whose answer does not fit 512 octets
    path = tmp_path / "polyloop.test.zone"
    big = "".join(f"big IN A 192.0.2.{n}\n" for n in range(1, BIG_RECORDS + 1))
    path.write_text(render() + big, encoding="ascii")
    return path


@pytest.fixture
def server(zone_file: Path) -> Iterator[Server]:
    runner = ReactorThread()
    factory = build_factory(DnsConfig(zone_file=zone_file), runner.reactor)
    for _ in range(5):
        port = free_port()
        try:
            udp = runner.reactor.listenUDP(
                port, ServerDatagramProtocol(controller=factory), interface=HOST
            )
        except CannotListenError:
            continue
        try:
            runner.reactor.listenTCP(port, factory, interface=HOST)
        except CannotListenError:
            udp.stopListening()
            continue
        break
    else:
        pytest.fail("no port free for the dns server")
    runner.start()
    try:
        yield Server(factory, port)
    finally:
        runner.stop()


def query(name: str = "www.polyloop.test", rdtype: str = "A", **kwargs: object):
    return dns.message.make_query(name, rdtype, **kwargs)


def header(qid: int = 0x1234, flags: int = 0x0100, qd: int = 1, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, 0, 0, ar)


QUESTION_TAIL = b"\x08polyloop\x04test\x00" + struct.pack("!HH", 1, 1)
MALFORMED = {
    "64-octet label": header() + b"\x40" + b"a" * 64 + QUESTION_TAIL,
    "name over 255 octets": header() + (b"\x3f" + b"b" * 63) * 4 + QUESTION_TAIL,
    "compression-pointer loop": header() + b"\xc0\x0c" + struct.pack("!HH", 1, 1),
    "question cut short": header() + b"\x03www\x08polyl",
}


# -- EDNS (RFC 6891) ------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_an_edns_query_gets_an_opt_with_our_payload_size(server: Server, transport: str) -> None:
    reply = getattr(server, transport)(query(use_edns=0, payload=4096))
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.edns == 0
    assert reply.payload == EDNS_UDP_PAYLOAD == 1232
    assert [rr.to_text() for rr in reply.answer] == ["www.polyloop.test. 300 IN A 192.0.2.10"]


def test_a_query_without_edns_gets_no_opt(server: Server) -> None:
    reply = server.udp(query())
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.edns == -1


def test_edns_version_1_is_badvers_with_an_opt_of_version_0(server: Server) -> None:
    reply = server.udp(query(use_edns=1))
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0, "the reply names the version we do support"
    assert reply.answer == []


def test_unknown_edns_options_are_ignored_not_echoed(server: Server) -> None:
    options = [dns.edns.GenericOption(65001, b"polyloop"), dns.edns.GenericOption(3, b"")]
    reply = server.udp(query(use_edns=0, options=options))
    assert reply.rcode() == dns.rcode.NOERROR
    assert len(reply.answer) == 1
    assert reply.options == ()


def test_the_do_bit_is_copied_into_the_reply(server: Server) -> None:
    reply = server.udp(query(use_edns=0, want_dnssec=True))
    assert reply.ednsflags & dns.flags.DO


def test_two_opt_records_are_formerr(server: Server) -> None:
    wire = bytearray(query(use_edns=0).to_wire())
    wire[10:12] = struct.pack("!H", 2)  # ARCOUNT: a second OPT follows
    wire += b"\x00" + struct.pack("!HHIH", dns.rdatatype.OPT, 1232, 0, 0)
    reply = dns.message.from_wire(server.udp_raw(bytes(wire)))
    assert reply.rcode() == dns.rcode.FORMERR


@pytest.mark.parametrize(
    ("edns", "expect_truncated"), [(-1, True), (0, False)], ids=["no-edns", "edns-1232"]
)
def test_udp_replies_fit_the_requesters_payload_size(
    server: Server, edns: int, expect_truncated: bool
) -> None:
    # 40 A records: ~700 octets. Without EDNS the limit is 512 (RFC 1035): TC, whole
    # records dropped, so the client retries over TCP and gets them all
    reply = server.udp(query(BIG, use_edns=edns, payload=EDNS_UDP_PAYLOAD))
    assert bool(reply.flags & dns.flags.TC) is expect_truncated
    assert sum(len(rrset) for rrset in reply.answer) == (0 if expect_truncated else BIG_RECORDS)
    assert len(reply.to_wire()) <= (512 if expect_truncated else EDNS_UDP_PAYLOAD)
    full = server.tcp(query(BIG))
    assert not full.flags & dns.flags.TC
    assert sum(len(rrset) for rrset in full.answer) == BIG_RECORDS


def test_a_small_edns_payload_is_taken_as_512(server: Server) -> None:
    # RFC 6891 6.2.5: values below 512 are treated as 512
    reply = server.udp(query("host-1.polyloop.test", use_edns=0, payload=100))
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.TC


# -- malformed queries: FORMERR, parseable, never the bad name repeated -----------------


@pytest.mark.parametrize("transport", ["udp_raw", "tcp_raw"])
@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_queries_get_a_parseable_formerr(
    server: Server, transport: str, name: str
) -> None:
    raw = getattr(server, transport)(MALFORMED[name])
    assert raw is not None, "answered, not silence"
    reply = dns.message.from_wire(raw)  # dnspython could not parse the old reply
    assert reply.id == 0x1234
    assert reply.flags & dns.flags.QR
    assert reply.rcode() == dns.rcode.FORMERR
    assert reply.question == [], "what could not be parsed is not repeated"


def test_malformed_queries_are_counted_by_reason(server: Server) -> None:
    for wire in MALFORMED.values():
        server.udp_raw(wire)
    counts = server.factory.malformed.counts
    assert (counts["bad_name"], counts["bad_pointer"], counts["truncated"]) == (2, 1, 1)


def test_after_malformed_queries_the_server_still_answers(server: Server) -> None:
    for wire in MALFORMED.values():
        server.udp_raw(wire)
    assert server.udp(query()).rcode() == dns.rcode.NOERROR


# -- transfers, opcodes, TSIG --------------------------------------------------------


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_zone_transfers_are_refused(server: Server, rdtype: str, transport: str) -> None:
    reply = getattr(server, transport)(query("polyloop.test", rdtype))
    assert reply.rcode() == dns.rcode.REFUSED
    assert reply.answer == []


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY])
def test_notimp_replies_do_not_carry_rd(server: Server, opcode: int) -> None:
    request = query()  # RD set, as dnspython sets it by default
    request.set_opcode(opcode)
    assert request.flags & dns.flags.RD
    reply = dns.message.from_wire(server.udp_raw(request.to_wire()))
    assert reply.rcode() == dns.rcode.NOTIMP
    assert reply.opcode() == opcode
    assert not reply.flags & dns.flags.RD, "RD belongs to queries only"


def test_a_query_reply_still_copies_rd(server: Server) -> None:
    assert server.udp(query()).flags & dns.flags.RD
    norec = query()
    norec.flags &= ~dns.flags.RD
    assert not server.udp(norec).flags & dns.flags.RD


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_tsig_signed_query_with_an_unknown_key_is_notauth_badkey(
    server: Server, transport: str
) -> None:
    keyring = dns.tsigkeyring.from_text({"nobody-knows.": "c2VjcmV0c2VjcmV0c2VjcmV0"})
    request = query(use_edns=0)
    request.use_tsig(keyring, keyname="nobody-knows.")
    # dnspython checks the TSIG of the reply: BADKEY from the server is PeerBadKey
    with pytest.raises(dns.tsig.PeerBadKey):
        getattr(server, transport)(request)
    raw = getattr(server, transport + "_raw")(request.to_wire())
    reply = dns.message.from_wire(raw, keyring=False)  # read it without checking
    assert reply.rcode() == dns.rcode.NOTAUTH
    assert reply.answer == [], "no data for an unauthenticated query"
    assert reply.tsig_error == dns.rcode.BADKEY
    assert reply.mac == b"", "unsigned (RFC 8945 5.3.2)"
    assert reply.keyname == request.keyname
    assert reply.edns == 0, "the OPT is there too, before the TSIG"
