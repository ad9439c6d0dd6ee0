"""Random payloads at each socket service of the running stack (hypothesis, bounded).

Needs the stack (`make up`): tcp-echo, udp-echo and dns on their host ports. Each
property runs a bounded number of examples with a per-example deadline, targets only
127.0.0.1, and keeps no example database (nothing is written in the repo).
- tcp-echo: any bytes, in any chunking, come back unchanged and in order.
- udp-echo: a datagram within the limit is echoed unchanged; one over it gets no reply;
  a reply is never larger than its request.
- dns: random bytes never stop the server: a valid query right after is still answered.
"""

from __future__ import annotations

import os
import socket

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stack import Stack, tcp_answers, unavailable

MAX_DATAGRAM = int(os.environ.get("UDP_ECHO_MAX_DATAGRAM", "").strip() or "4096")
BOUNDED = settings(
    max_examples=60,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", autouse=True)
def services_answer(stack: Stack) -> None:
    if not tcp_answers(stack.host, stack.tcp_echo_port):
        unavailable(f"tcp-echo on {stack.host}:{stack.tcp_echo_port}")
    try:
        ask_www(stack)
    except (dns.exception.DNSException, OSError):
        unavailable(f"dns on {stack.host}:{stack.dns_port}")


def ask_www(stack: Stack) -> dns.message.Message:
    query = dns.message.make_query("www.polyloop.test", "A")
    return dns.query.udp(query, stack.host, port=stack.dns_port, timeout=2)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, received = [], 0
    while received < size:
        chunk = sock.recv(min(65536, size - received))
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


@BOUNDED
@given(chunks=st.lists(st.binary(min_size=1, max_size=8192), min_size=1, max_size=8))
def test_tcp_echo_returns_any_bytes_unchanged(stack: Stack, chunks: list[bytes]) -> None:
    with socket.create_connection((stack.host, stack.tcp_echo_port), timeout=5) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
        expected = b"".join(chunks)
        assert recv_exactly(sock, len(expected)) == expected


@BOUNDED
@given(payload=st.binary(min_size=1, max_size=MAX_DATAGRAM + 512))
def test_udp_echo_never_amplifies_and_drops_oversize(stack: Stack, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.connect((stack.host, stack.udp_echo_port))
        sock.send(payload)
        sock.send(b"marker")  # served in order: once the marker is back, the payload was decided
        first = sock.recv(65535)
        if len(payload) > MAX_DATAGRAM:
            assert first == b"marker"
        else:
            assert first == payload
            assert sock.recv(65535) == b"marker"


@BOUNDED
@given(garbage=st.binary(min_size=0, max_size=600))
def test_dns_survives_random_bytes(stack: Stack, garbage: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(garbage, (stack.host, stack.dns_port))
    response = ask_www(stack)
    assert response.rcode() == dns.rcode.NOERROR
    assert [rr.address for rr in response.answer[0]] == ["192.0.2.10"]
