"""Each fault's effect on tcp-echo, udp-echo and dns, in-process, set over /faults.

The service's loop (a Twisted reactor, an asyncio loop) runs in a thread of the test,
with its metrics port; the test sets a fault the way the front will (``PUT /faults`` with
the token) and watches with real clients on 127.0.0.1:

- block N ms: a second client's round trip, started after the PUT, ends ≥ N ms after it;
- latency N ms: two clients are answered side by side, not one after the other, and the
  loop never lags (its lag histogram gets no late tick);
- fail X %: within a binomial bound (5 sigma) over a few hundred calls;
- expiry: with an injected clock, no sleeping.
(The gevent resolver: tests/gevent/test_resolver_faults.py.)
"""

from __future__ import annotations

import asyncio
import math
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest
from twisted.internet import threads

from services.common.control import ControlSettings
from services.common.faults import Faults
from services.dns.config import DnsConfig
from services.dns.server import ServerDatagramProtocol, build_factory
from services.tcp_echo.config import TcpEchoConfig
from services.tcp_echo.protocol import Echo, EchoFactory
from services.udp_echo.config import UdpEchoConfig
from services.udp_echo.protocol import ServerUdpEchoProtocol
from tests.clock import FakeClock
from tests.control_port import put_faults
from tests.scrape import lag_over, scrape, value
from tests.unit.test_loop_lag_services import loop_in_a_thread, reactor_in_a_thread
from tests.unit.watched import start_metrics

TOKEN = secrets.token_urlsafe(16)
CONTROL = ControlSettings(admin_token=TOKEN)  # the token each service's config carries
BLOCK_MS = 500
LATENCY_MS = 600
CALLS = 300
PERCENT = 30


@dataclass
class Running:
    """A service in-process: its port, its metrics port, its fault state."""

    port: int
    metrics_port: int
    faults: Faults

    def put(self, **spec: Any) -> dict:
        return put_faults(self.metrics_port, TOKEN, **spec)

    def lag_over(self, bound: str) -> float:
        return lag_over(scrape(f"http://127.0.0.1:{self.metrics_port}/metrics"), bound)

    def put_block(self) -> None:
        """Set a block and return once the loop is in it (its "blocked now" gauge, read on
        the control port while the loop is stuck): the PUT's answer may otherwise reach
        the test before the loop even started the block."""
        self.put(block_ms=BLOCK_MS)
        deadline = time.monotonic() + 5
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        while value(scrape(url), "polyloop_event_loop_blocked_max_seconds") < 0.1:
            assert time.monotonic() < deadline, "the loop never started the block"


def within_binomial(count: int, calls: int = CALLS, percent: float = PERCENT) -> bool:
    mean = calls * percent / 100
    sigma = math.sqrt(calls * percent / 100 * (1 - percent / 100))
    return abs(count - mean) <= 5 * sigma


@pytest.fixture
def tcp_echo() -> Iterator[Running]:
    with reactor_in_a_thread() as reactor:

        def setup() -> Running:
            factory = EchoFactory.forProtocol(Echo, clock=reactor)
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")
            started = start_metrics(
                "tcp-echo", reactor, factory, TcpEchoConfig(metrics_port=0, metrics=CONTROL)
            )
            return Running(port.getHost().port, started.server.port, factory.faults)

        yield threads.blockingCallFromThread(reactor, setup)


def tcp_round_trip(port: int, message: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(message)
        return client.recv(100)


def test_tcp_echo_block_stalls_a_second_client(tcp_echo: Running) -> None:
    with socket.create_connection(("127.0.0.1", tcp_echo.port), timeout=5) as client:
        client.sendall(b"warm")
        assert client.recv(100) == b"warm"
        started = time.monotonic()
        tcp_echo.put_block()
        client.sendall(b"second")
        assert client.recv(100) == b"second"
        assert time.monotonic() - started >= BLOCK_MS / 1000
    assert tcp_echo.faults.blocks == 1


def test_tcp_echo_latency_delays_each_answer_without_blocking(tcp_echo: Running) -> None:
    before = tcp_echo.lag_over("0.25")
    tcp_echo.put(latency_ms=LATENCY_MS)
    a = socket.create_connection(("127.0.0.1", tcp_echo.port), timeout=5)
    b = socket.create_connection(("127.0.0.1", tcp_echo.port), timeout=5)
    with a, b:
        started = time.monotonic()
        a.sendall(b"a")
        b.sendall(b"b")
        assert a.recv(10) == b"a"
        assert b.recv(10) == b"b"
        elapsed = time.monotonic() - started
    assert LATENCY_MS / 1000 <= elapsed < 2 * LATENCY_MS / 1000  # side by side, not in turn
    assert tcp_echo.lag_over("0.25") == before  # the reactor never stalled


def test_tcp_echo_fail_closes_a_share_of_the_connections(tcp_echo: Running) -> None:
    tcp_echo.put(fail_percent=PERCENT)
    closed = sum(tcp_round_trip(tcp_echo.port) == b"" for _ in range(CALLS))
    assert within_binomial(closed), closed
    assert tcp_echo.faults.failed == closed


def test_tcp_echo_fault_expires_by_itself(tcp_echo: Running) -> None:
    clock = FakeClock()
    tcp_echo.faults.clock = clock
    tcp_echo.put(fail_percent=100, duration_s=10)
    assert tcp_round_trip(tcp_echo.port) == b""
    clock.now += 10
    assert tcp_round_trip(tcp_echo.port) == b"ping"
    assert not tcp_echo.faults.active


@pytest.fixture
def udp_echo() -> Iterator[Running]:
    with loop_in_a_thread() as loop:

        async def setup() -> Running:
            transport, protocol = await loop.create_datagram_endpoint(
                ServerUdpEchoProtocol, local_addr=("127.0.0.1", 0)
            )
            started = start_metrics(
                "udp-echo", loop, protocol, UdpEchoConfig(metrics_port=0, metrics=CONTROL)
            )
            port = transport.get_extra_info("sockname")[1]
            return Running(port, started.server.port, protocol.faults)

        yield asyncio.run_coroutine_threadsafe(setup(), loop).result(10)


def udp_client() -> socket.socket:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    return client


def test_udp_echo_block_stalls_a_second_client(udp_echo: Running) -> None:
    with udp_client() as client:
        started = time.monotonic()
        udp_echo.put_block()
        client.sendto(b"second", ("127.0.0.1", udp_echo.port))
        assert client.recv(100) == b"second"
        assert time.monotonic() - started >= BLOCK_MS / 1000
    assert udp_echo.faults.blocks == 1


def test_udp_echo_latency_delays_each_answer_without_blocking(udp_echo: Running) -> None:
    before = udp_echo.lag_over("0.25")
    udp_echo.put(latency_ms=LATENCY_MS)
    with udp_client() as a, udp_client() as b:
        started = time.monotonic()
        a.sendto(b"a", ("127.0.0.1", udp_echo.port))
        b.sendto(b"b", ("127.0.0.1", udp_echo.port))
        assert a.recv(10) == b"a"
        assert b.recv(10) == b"b"
        elapsed = time.monotonic() - started
    assert LATENCY_MS / 1000 <= elapsed < 2 * LATENCY_MS / 1000
    assert udp_echo.lag_over("0.25") == before


def test_udp_echo_fail_drops_a_share_of_the_datagrams(udp_echo: Running) -> None:
    udp_echo.put(fail_percent=PERCENT)
    echoed = 0
    with udp_client() as client:
        for i in range(CALLS):
            # one at a time, each answered or counted dropped before the next: no loss
            # of the loopback itself is mistaken for a fault
            client.sendto(b"%d" % i, ("127.0.0.1", udp_echo.port))
            deadline = time.monotonic() + 5
            while udp_echo.faults.failed + echoed < i + 1:
                assert time.monotonic() < deadline, "neither echoed nor dropped"
                client.settimeout(0.01)
                try:
                    client.recv(100)
                    echoed += 1
                except TimeoutError:
                    pass
    dropped = CALLS - echoed
    assert within_binomial(dropped), dropped
    assert udp_echo.faults.failed == dropped
    samples = scrape(f"http://127.0.0.1:{udp_echo.metrics_port}/metrics")
    assert value(samples, "polyloop_udp_echo_datagrams_dropped_total", reason="fault") == dropped


def test_udp_echo_fault_expires_by_itself(udp_echo: Running) -> None:
    clock = FakeClock()
    udp_echo.faults.clock = clock
    udp_echo.put(fail_percent=100, duration_s=10)
    with udp_client() as client:
        client.sendto(b"lost", ("127.0.0.1", udp_echo.port))
        deadline = time.monotonic() + 5
        while udp_echo.faults.failed < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)  # polling a counter with a deadline, not synchronising
        clock.now += 10
        client.sendto(b"back", ("127.0.0.1", udp_echo.port))
        assert client.recv(100) == b"back"
    assert not udp_echo.faults.active


@pytest.fixture
def dns_server() -> Iterator[Running]:
    with reactor_in_a_thread() as reactor:

        def setup() -> Running:
            config = DnsConfig(metrics_port=0, metrics=CONTROL)
            factory = build_factory(config, reactor)
            protocol = ServerDatagramProtocol(controller=factory, reactor=reactor)
            port = reactor.listenUDP(0, protocol, interface="127.0.0.1")
            started = start_metrics("dns", reactor, factory, config)
            return Running(port.getHost().port, started.server.port, factory.faults)

        yield threads.blockingCallFromThread(reactor, setup)


def query(port: int) -> int:
    message = dns.message.make_query("www.polyloop.test", "A")
    return dns.query.udp(message, "127.0.0.1", port=port, timeout=5).rcode()


def test_dns_block_stalls_a_second_client(dns_server: Running) -> None:
    started = time.monotonic()
    dns_server.put_block()
    assert query(dns_server.port) == dns.rcode.NOERROR
    assert time.monotonic() - started >= BLOCK_MS / 1000
    assert dns_server.faults.blocks == 1


def test_dns_latency_delays_each_answer_without_blocking(dns_server: Running) -> None:
    before = dns_server.lag_over("0.25")
    dns_server.put(latency_ms=LATENCY_MS)
    with udp_client() as a, udp_client() as b:
        started = time.monotonic()
        for client in (a, b):
            wire = dns.message.make_query("www.polyloop.test", "A").to_wire()
            client.sendto(wire, ("127.0.0.1", dns_server.port))
        for client in (a, b):
            assert dns.message.from_wire(client.recv(512)).rcode() == dns.rcode.NOERROR
        elapsed = time.monotonic() - started
    assert LATENCY_MS / 1000 <= elapsed < 2 * LATENCY_MS / 1000
    assert dns_server.lag_over("0.25") == before


def test_dns_fail_answers_servfail_to_a_share(dns_server: Running) -> None:
    dns_server.put(fail_percent=PERCENT)
    servfail = sum(query(dns_server.port) == dns.rcode.SERVFAIL for _ in range(CALLS))
    assert within_binomial(servfail), servfail
    assert dns_server.faults.failed == servfail


def test_dns_fault_expires_by_itself(dns_server: Running) -> None:
    clock = FakeClock()
    dns_server.faults.clock = clock
    dns_server.put(fail_percent=100, duration_s=10)
    assert query(dns_server.port) == dns.rcode.SERVFAIL
    clock.now += 10
    assert query(dns_server.port) == dns.rcode.NOERROR
