"""The running ``dns`` service, asked with dnspython and raw sockets over UDP and TCP.

Needs the service on stack.host:DNS_PORT (default 127.0.0.1:1053): `make up`, or locally
`DNS_PORT=11053 .venv/bin/python -m services.dns` then
`DNS_PORT=11053 .venv/bin/pytest tests/integration/test_dns.py`.
Set DNS_MAX_DELAY_MS here too if the service runs with another maximum than 10000.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.stack import Stack, unavailable

TIMEOUT = 3.0
MAX_DELAY_MS = int(os.environ.get("DNS_MAX_DELAY_MS", "").strip() or "10000")
TRANSPORTS = ["udp", "tcp"]


@pytest.fixture(scope="module", autouse=True)
def dns_answers(stack: Stack) -> None:
    query = dns.message.make_query("www.polyloop.test", "A")
    try:
        dns.query.udp(query, stack.host, port=stack.dns_port, timeout=2)
        dns.query.tcp(query, stack.host, port=stack.dns_port, timeout=2)
    except (OSError, dns.exception.DNSException):
        unavailable(f"the dns service on {stack.host}:{stack.dns_port} (udp+tcp)")


def ask(stack: Stack, transport: str, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.query.udp if transport == "udp" else dns.query.tcp
    return send(query, stack.host, port=stack.dns_port, timeout=TIMEOUT)


def texts(response: dns.message.Message) -> list[str]:
    return sorted(item.to_text() for rrset in response.answer for item in rrset)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_www_is_192_0_2_10(stack: Stack, transport: str) -> None:
    response = ask(stack, transport, "www.polyloop.test")
    assert response.rcode() == dns.rcode.NOERROR
    assert texts(response) == ["192.0.2.10"]
    assert response.flags & dns.flags.AA


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("n", [1, 250])
def test_host_n_a_and_aaaa(stack: Stack, transport: str, n: int) -> None:
    assert texts(ask(stack, transport, f"host-{n}.polyloop.test", "A")) == [f"192.0.2.{n}"]
    assert texts(ask(stack, transport, f"host-{n}.polyloop.test", "AAAA")) == [f"2001:db8::{n}"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_name_in_the_zone_is_nxdomain(stack: Stack, transport: str) -> None:
    response = ask(stack, transport, "no-such-host.polyloop.test")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_names_outside_the_zone_are_refused(stack: Stack, transport: str) -> None:
    response = ask(stack, transport, "example.com")
    assert response.rcode() == dns.rcode.REFUSED
    assert response.answer == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_never_offers_recursion(stack: Stack, transport: str) -> None:
    for name in ("www.polyloop.test", "example.com", "no-such-host.polyloop.test"):
        response = ask(stack, transport, name)
        assert response.flags & dns.flags.QR
        assert not response.flags & dns.flags.RA, name


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_any_is_answered_minimally(stack: Stack, transport: str) -> None:
    response = ask(stack, transport, "host-1.polyloop.test", "ANY")
    assert response.rcode() == dns.rcode.NOERROR
    (rrset,) = response.answer
    assert rrset.rdtype == dns.rdatatype.HINFO
    assert len(rrset) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_delay_over_the_maximum_is_refused(stack: Stack, transport: str) -> None:
    response = ask(stack, transport, f"x.delay-{MAX_DELAY_MS + 1}.polyloop.test")
    assert response.rcode() == dns.rcode.REFUSED
    assert response.answer == []


def wire(name: str, qid: int) -> bytes:
    query = dns.message.make_query(name, "A", id=qid)
    return query.to_wire()


def test_delay_300_over_udp_does_not_block_a_plain_query(stack: Stack) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect((stack.host, stack.dns_port))
        started = time.monotonic()
        sock.send(wire("udp.delay-300.polyloop.test", 1))
        sock.send(wire("www.polyloop.test", 2))
        first = dns.message.from_wire(sock.recv(4096))
        second = dns.message.from_wire(sock.recv(4096))
        elapsed = time.monotonic() - started
    # the plain query sent after the slow one is answered first: nothing waits on the delay
    assert (first.id, second.id) == (2, 1)
    assert texts(first) == ["192.0.2.10"]
    assert second.rcode() == dns.rcode.NOERROR
    assert texts(second) == ["192.0.2.254"]
    # the reactor times its delay on the wall clock (twisted.python.runtime.seconds is
    # time.time), this test on the monotonic one: they may differ by a fraction of a ms
    # (CI measured 299.56 ms), never by the 300 ms the delay is about
    assert elapsed >= 0.295


def read_tcp_message(sock: socket.socket) -> dns.message.Message:
    def read_exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    (length,) = struct.unpack("!H", read_exactly(2))
    return dns.message.from_wire(read_exactly(length))


def test_delay_300_over_tcp_answers_pipelined_queries_out_of_order(stack: Stack) -> None:
    with socket.create_connection((stack.host, stack.dns_port), timeout=TIMEOUT) as sock:
        started = time.monotonic()
        for data in (wire("tcp.delay-300.polyloop.test", 1), wire("www.polyloop.test", 2)):
            sock.sendall(struct.pack("!H", len(data)) + data)
        first = read_tcp_message(sock)
        second = read_tcp_message(sock)
        elapsed = time.monotonic() - started
    assert (first.id, second.id) == (2, 1)
    assert texts(second) == ["192.0.2.254"]
    # the reactor times its delay on the wall clock (twisted.python.runtime.seconds is
    # time.time), this test on the monotonic one: they may differ by a fraction of a ms
    # (CI measured 299.56 ms), never by the 300 ms the delay is about
    assert elapsed >= 0.295


def malformed_packets() -> list[bytes]:
    rnd = random.Random(1035)
    valid = wire("www.polyloop.test", 7)
    absurd_qdcount = valid[:4] + struct.pack("!H", 65535) + valid[6:]
    absurd_counts = valid[:4] + struct.pack("!HHHH", 65535, 65535, 65535, 65535) + valid[12:]
    pointer_loop = valid[:12] + b"\xc0\x0c\x00\x01\x00\x01"
    garbage = [rnd.randbytes(rnd.randrange(1, 200)) for _ in range(50)]
    return [b"\x00", valid[:7], valid[:12], valid[:-3], absurd_qdcount, absurd_counts,
            pointer_loop, *garbage]  # fmt: skip


def test_malformed_udp_packets_then_a_valid_query_is_answered(stack: Stack) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in malformed_packets():
            sock.sendto(packet, (stack.host, stack.dns_port))
    assert texts(ask(stack, "udp", "www.polyloop.test")) == ["192.0.2.10"]


def test_malformed_tcp_messages_then_a_valid_query_is_answered(stack: Stack) -> None:
    for packet in malformed_packets()[:8]:
        with socket.create_connection((stack.host, stack.dns_port), timeout=TIMEOUT) as sock:
            sock.sendall(struct.pack("!H", len(packet)) + packet)
    with socket.create_connection((stack.host, stack.dns_port), timeout=TIMEOUT) as sock:
        sock.sendall(b"\xff\xff" + b"never the announced length")  # then hang up mid-message
    assert texts(ask(stack, "tcp", "www.polyloop.test")) == ["192.0.2.10"]
    assert texts(ask(stack, "udp", "www.polyloop.test")) == ["192.0.2.10"]
