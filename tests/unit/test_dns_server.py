"""The ``dns`` server factory in-process: Twisted's DNS protocols over fake transports.

UDP goes through ``ServerDatagramProtocol(controller=factory)`` exactly as in production,
with a transport that records what would be sent; TCP through the factory's protocol
on a ``StringTransport``; time is a ``task.Clock``. Run:
.venv/bin/pytest tests/unit/test_dns_server.py
"""

from __future__ import annotations

import random
import struct

import pytest
from twisted.internet import address, task
from twisted.internet.testing import StringTransport
from twisted.names import dns

from services.dns.config import DnsConfig
from services.dns.delay import DELAY_ADDRESS
from services.dns.server import (
    AuthoritativeServerFactory,
    ServerDatagramProtocol,
    build_factory,
)

CLIENT = ("127.0.0.1", 40000)


class DatagramRecorder:
    """The part of a UDP transport DNSDatagramProtocol uses: write(data, addr)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


class UdpServer:
    def __init__(self, factory: AuthoritativeServerFactory) -> None:
        self.transport = DatagramRecorder()
        self.protocol = ServerDatagramProtocol(controller=factory)
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.datagramReceived(data, CLIENT)

    def replies(self) -> list[dns.Message]:
        messages = []
        for data, addr in self.transport.sent:
            assert addr == CLIENT
            message = dns.Message()
            message.fromStr(data)
            messages.append(message)
        self.transport.sent.clear()
        return messages


def query_bytes(
    name: str, qtype: int = dns.A, *, qid: int = 4242, cls: int = dns.IN, **flags: int
) -> bytes:
    message = dns.Message(id=qid, recDes=1, **flags)
    message.queries = [dns.Query(name, qtype, cls)]
    return message.toStr()


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


@pytest.fixture
def factory(clock: task.Clock) -> AuthoritativeServerFactory:
    return build_factory(DnsConfig(tcp_idle_timeout=5.0, max_delay_ms=10_000), clock)


@pytest.fixture
def udp(factory: AuthoritativeServerFactory) -> UdpServer:
    return UdpServer(factory)


def ask(udp: UdpServer, name: str, qtype: int = dns.A, **kwargs: int) -> dns.Message:
    udp.send(query_bytes(name, qtype, **kwargs))
    (reply,) = udp.replies()
    return reply


def addresses(reply: dns.Message) -> list[str]:
    return [
        record.payload.dottedQuad() if record.type == dns.A else str(record.payload.address)
        for record in reply.answers
    ]


def test_www_answer_is_authoritative_and_never_recursive(udp: UdpServer) -> None:
    reply = ask(udp, "www.polyloop.test", qid=777)
    assert reply.id == 777
    assert reply.answer
    assert reply.rCode == dns.OK
    assert reply.auth
    assert not reply.recAv, "RA must stay clear: this server never recurses"
    assert reply.recDes, "RD is copied from the query"
    assert [q.name.name for q in reply.queries] == [b"www.polyloop.test"]
    assert addresses(reply) == ["192.0.2.10"]


def test_host_250_aaaa(udp: UdpServer) -> None:
    reply = ask(udp, "host-250.polyloop.test", dns.AAAA)
    assert reply.rCode == dns.OK
    assert [r.type for r in reply.answers] == [dns.AAAA]


def test_unknown_name_in_zone_is_authoritative_nxdomain_with_soa(udp: UdpServer) -> None:
    reply = ask(udp, "no-such-host.polyloop.test")
    assert reply.rCode == dns.ENAME
    assert reply.auth
    assert reply.answers == []
    (soa,) = reply.authority
    assert soa.type == dns.SOA
    assert soa.ttl == 60, "negative TTL is min(SOA TTL, SOA minimum), RFC 2308"


def test_nodata_is_authoritative(udp: UdpServer) -> None:
    reply = ask(udp, "www.polyloop.test", dns.MX)
    assert reply.rCode == dns.OK
    assert reply.auth
    assert reply.answers == []
    assert [r.type for r in reply.authority] == [dns.SOA]


@pytest.mark.parametrize("name", ["example.com", "www.example.org", "localhost", "test"])
def test_names_outside_the_zone_are_refused(udp: UdpServer, name: str) -> None:
    reply = ask(udp, name)
    assert reply.answer, "REFUSED goes out as a response (QR set)"
    assert reply.rCode == dns.EREFUSED
    assert not reply.auth
    assert not reply.recAv
    assert reply.answers == []


def test_any_query_gets_one_hinfo(udp: UdpServer) -> None:
    reply = ask(udp, "host-1.polyloop.test", dns.ALL_RECORDS)
    assert reply.rCode == dns.OK
    assert [(r.type, r.payload.cpu) for r in reply.answers] == [(dns.HINFO, b"RFC8482")]


@pytest.mark.parametrize("qtype", [dns.AXFR, dns.IXFR])
def test_zone_transfers_are_refused(udp: UdpServer, qtype: int) -> None:
    assert ask(udp, "polyloop.test", qtype).rCode == dns.EREFUSED


def test_chaos_class_is_refused(udp: UdpServer) -> None:
    assert ask(udp, "version.bind", dns.TXT, cls=dns.CH).rCode == dns.EREFUSED


def test_delay_answers_later_and_does_not_hold_other_queries(
    udp: UdpServer, clock: task.Clock
) -> None:
    udp.send(query_bytes("x.delay-300.polyloop.test", qid=1))
    assert udp.replies() == []
    fast = ask(udp, "www.polyloop.test", qid=2)
    assert addresses(fast) == ["192.0.2.10"]
    clock.advance(0.3)
    (slow,) = udp.replies()
    assert slow.id == 1
    assert addresses(slow) == [DELAY_ADDRESS]


def test_delay_over_the_maximum_is_refused(udp: UdpServer, clock: task.Clock) -> None:
    reply = ask(udp, "x.delay-10001.polyloop.test")
    assert reply.rCode == dns.EREFUSED
    assert clock.getDelayedCalls() == []


def test_a_response_is_never_answered(udp: UdpServer) -> None:
    udp.send(query_bytes("www.polyloop.test", answer=1))
    assert udp.replies() == []


def test_no_question_is_formerr(udp: UdpServer) -> None:
    udp.send(dns.Message(id=9).toStr())
    (reply,) = udp.replies()
    assert reply.answer
    assert reply.rCode == dns.EFORMAT


def test_two_questions_is_formerr(udp: UdpServer) -> None:
    message = dns.Message(id=9)
    message.queries = [dns.Query("www.polyloop.test"), dns.Query("host-1.polyloop.test")]
    udp.send(message.toStr())
    (reply,) = udp.replies()
    assert reply.rCode == dns.EFORMAT


@pytest.mark.parametrize("opcode", [dns.OP_INVERSE, dns.OP_STATUS, dns.OP_NOTIFY, 5])
def test_other_opcodes_are_not_implemented_and_answered_as_responses(
    udp: UdpServer, opcode: int
) -> None:
    udp.send(query_bytes("www.polyloop.test", opCode=opcode))  # with RD set
    (reply,) = udp.replies()
    assert reply.answer
    assert reply.rCode == dns.ENOTIMP
    assert not reply.recDes, "RD belongs to queries: never copied into NOTIMP"


def malformed_packets(seed: int = 8482, count: int = 300) -> list[bytes]:
    rnd = random.Random(seed)
    valid = query_bytes("www.polyloop.test")
    packets = [b"", b"\x00", valid[:5], valid[:11], valid[:12], valid[:-1]]
    for qdcount in (2, 255, 65535):  # absurd counts with the data of one question
        packets.append(valid[:4] + struct.pack("!H", qdcount) + valid[6:])
    packets.append(valid[:6] + struct.pack("!HHH", 65535, 65535, 65535) + valid[12:])
    # a name that is a compression pointer to itself
    packets.append(valid[:12] + b"\xc0\x0c" + struct.pack("!HH", dns.A, dns.IN))
    for _ in range(count):
        packets.append(rnd.randbytes(rnd.randrange(1, 80)))
        flipped = bytearray(valid)
        for _ in range(3):
            flipped[rnd.randrange(len(flipped))] = rnd.randrange(256)
        packets.append(bytes(flipped))
    return packets


def test_a_pointer_loop_gets_formerr_with_the_header_only(udp: UdpServer) -> None:
    valid = query_bytes("www.polyloop.test", qid=99)
    udp.send(valid[:12] + b"\xc0\x0c" + struct.pack("!HH", dns.A, dns.IN))
    (reply,) = udp.replies()
    assert (reply.id, reply.answer, reply.rCode) == (99, 1, dns.EFORMAT)
    assert reply.queries == []
    assert reply.recDes, "a QUERY's RD is copied, even into FORMERR"


def test_counts_replies_by_rcode(udp: UdpServer, factory: AuthoritativeServerFactory) -> None:
    ask(udp, "www.polyloop.test")
    ask(udp, "nope.polyloop.test")
    ask(udp, "example.com")
    ask(udp, "www.polyloop.test", opCode=dns.OP_STATUS)
    nonzero = {rcode: n for rcode, n in factory.replies.items() if n}
    assert nonzero == {dns.OK: 1, dns.ENAME: 1, dns.EREFUSED: 1, dns.ENOTIMP: 1}


def test_malformed_packets_never_crash_nor_stall_the_server(udp: UdpServer) -> None:
    for packet in malformed_packets():
        udp.send(packet)  # must not raise
    for reply in udp.replies():
        # whatever parsed as a query got a well-formed response, never a reflected query
        assert reply.answer
    assert addresses(ask(udp, "www.polyloop.test")) == ["192.0.2.10"]


def test_tcp_answers_length_prefixed(factory: AuthoritativeServerFactory) -> None:
    protocol = factory.buildProtocol(address.IPv4Address("TCP", *CLIENT))
    transport = StringTransport()
    protocol.makeConnection(transport)
    data = query_bytes("host-1.polyloop.test")
    protocol.dataReceived(struct.pack("!H", len(data)) + data)
    raw = transport.value()
    (length,) = struct.unpack("!H", raw[:2])
    assert len(raw) == 2 + length
    reply = dns.Message()
    reply.fromStr(raw[2:])
    assert addresses(reply) == ["192.0.2.1"]


def test_tcp_garbage_drops_nothing_but_that_connection(factory: AuthoritativeServerFactory) -> None:
    protocol = factory.buildProtocol(address.IPv4Address("TCP", *CLIENT))
    transport = StringTransport()
    protocol.makeConnection(transport)
    for packet in malformed_packets(count=20):
        protocol.dataReceived(struct.pack("!H", len(packet)) + packet)
    transport.clear()
    data = query_bytes("www.polyloop.test")
    protocol.dataReceived(struct.pack("!H", len(data)) + data)
    reply = dns.Message()
    reply.fromStr(transport.value()[2:])
    assert addresses(reply) == ["192.0.2.10"]


def test_silent_tcp_clients_are_disconnected(
    factory: AuthoritativeServerFactory, clock: task.Clock
) -> None:
    protocol = factory.buildProtocol(address.IPv4Address("TCP", *CLIENT))
    transport = StringTransport()
    protocol.makeConnection(transport)
    clock.advance(4.9)
    data = query_bytes("www.polyloop.test")
    protocol.dataReceived(struct.pack("!H", len(data)) + data)
    clock.advance(4.9)
    assert not transport.disconnecting, "activity resets the idle timer"
    clock.advance(0.1)
    assert transport.disconnecting
