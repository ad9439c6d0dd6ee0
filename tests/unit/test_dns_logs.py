"""Log lines stay bounded under a flood (issue 8 item 13): the ``dns`` server in-process,
its real UDP protocol over a recording transport, ``task.Clock`` for time; both log
channels are captured (the stdlib loggers and Twisted's own ``twisted.logger``).
Nothing needs to be running. Run: .venv/bin/pytest tests/unit/test_dns_logs.py

Before: 20,000 three-byte datagrams gave one INFO line each (3 MB of log), and a saturated
delay limit logged every refused query (3,861 lines in one test).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator

import pytest
from twisted.internet import task
from twisted.logger import globalLogPublisher
from twisted.names import dns

from services.dns.config import DnsConfig
from services.dns.server import AuthoritativeServerFactory, ServerDatagramProtocol, build_factory

INTERVAL = 10.0
CLIENT = ("127.0.0.1", 40000)


class DatagramRecorder:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(data)


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


@pytest.fixture
def factory(clock: task.Clock) -> AuthoritativeServerFactory:
    config = DnsConfig(max_pending_delays=10, stats_interval=INTERVAL)
    return build_factory(config, clock)


@pytest.fixture
def udp(factory: AuthoritativeServerFactory) -> tuple[ServerDatagramProtocol, DatagramRecorder]:
    transport = DatagramRecorder()
    protocol = ServerDatagramProtocol(controller=factory)
    protocol.makeConnection(transport)
    return protocol, transport


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], int]]:
    """How many log lines either channel has emitted since the test began."""
    twisted_events: list[dict] = []
    globalLogPublisher.addObserver(twisted_events.append)
    caplog.set_level(logging.DEBUG)
    try:
        yield lambda: len(caplog.records) + len(twisted_events)
    finally:
        globalLogPublisher.removeObserver(twisted_events.append)


def delayed_query(n: int) -> bytes:
    message = dns.Message(id=n % 65536)
    message.queries = [dns.Query(f"q{n}.delay-5000.polyloop.test")]
    return message.toStr()


def summaries(records: list[logging.LogRecord], message: str) -> list[logging.LogRecord]:
    return [record for record in records if record.getMessage() == message]


def test_a_flood_of_malformed_datagrams_is_one_line_per_interval(
    udp: tuple[ServerDatagramProtocol, DatagramRecorder],
    factory: AuthoritativeServerFactory,
    clock: task.Clock,
    lines: Callable[[], int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, transport = udp
    loop = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
    for _ in range(20_000):
        protocol.datagramReceived(b"\x00\x01\x02", CLIENT)  # shorter than a header
    for _ in range(1_000):
        protocol.datagramReceived(loop, CLIENT)
    assert lines() == 0, "nothing logged per datagram"
    clock.advance(INTERVAL)
    (line,) = summaries(caplog.records, "malformed DNS messages")
    assert line.since_last == {"short": 20_000, "bad_pointer": 1_000}
    assert lines() == 1
    # the loops were answered (FORMERR), the three-byte datagrams could not be
    assert len(transport.sent) == 1_000

    for _ in range(500):
        protocol.datagramReceived(b"\x00", CLIENT)
    clock.advance(INTERVAL)
    assert lines() == 2
    assert summaries(caplog.records, "malformed DNS messages")[-1].since_last == {"short": 500}
    assert factory.malformed.counts["short"] == 20_500

    clock.advance(10 * INTERVAL)
    assert lines() == 2, "a quiet server logs nothing more"
    assert clock.getDelayedCalls() == [], "and keeps no timer pending"


def test_saturated_delays_are_one_line_per_interval_with_counts(
    udp: tuple[ServerDatagramProtocol, DatagramRecorder],
    factory: AuthoritativeServerFactory,
    clock: task.Clock,
    lines: Callable[[], int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, transport = udp
    for n in range(10 + 3_861):  # 10 fill the limit, the rest are refused
        protocol.datagramReceived(delayed_query(n), CLIENT)
    refused = [reply for reply in transport.sent if reply[3] & 0x0F == dns.EREFUSED]
    assert len(refused) == 3_861
    assert lines() == 0
    clock.advance(INTERVAL)  # the 10 delayed answers go out at 5 s, the summary at 10 s
    (line,) = summaries(caplog.records, "delayed queries saturated, refusing")
    assert line.since_last == {"refused": 3_861}
    assert line.pending == 0
    assert lines() == 1
    (delaying,) = factory.resolver.resolvers
    assert delaying.saturated.counts == {"refused": 3_861}


def test_the_last_counts_are_logged_when_the_server_stops(
    udp: tuple[ServerDatagramProtocol, DatagramRecorder],
    factory: AuthoritativeServerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, _ = udp
    for _ in range(3):
        protocol.datagramReceived(b"\x00\x01", CLIENT)
    factory.doStart()
    factory.doStop()  # what stopping the TCP port does at shutdown
    (line,) = summaries(caplog.records, "malformed DNS messages")
    assert line.since_last == {"short": 3}


def test_interval_zero_keeps_no_timer_and_logs_only_at_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = task.Clock()
    factory = build_factory(DnsConfig(stats_interval=0), clock)
    protocol = ServerDatagramProtocol(controller=factory)
    protocol.makeConnection(DatagramRecorder())
    caplog.set_level(logging.WARNING)
    for _ in range(100):
        protocol.datagramReceived(b"\x00", CLIENT)
    assert clock.getDelayedCalls() == []
    assert caplog.records == []
    factory.doStart()
    factory.doStop()
    assert len(summaries(caplog.records, "malformed DNS messages")) == 1
