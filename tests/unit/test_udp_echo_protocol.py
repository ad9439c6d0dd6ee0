"""ServerUdpEchoProtocol in-process, on a fake transport that records every sendto."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from services.udp_echo.protocol import DROP_REASONS, ServerUdpEchoProtocol
from services.udp_echo.ratelimit import SourceRateLimiter
from tests.clock import FakeClock

CLIENT = ("192.0.2.7", 40000)


class RecordingTransport:
    """Just enough of a DatagramTransport: remembers what was sent where. Like asyncio's
    and uvloop's, its sendto() sends nothing for empty data; what goes out through a
    duplicate of its socket is recorded in the same list, marked in ``via_socket``."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []
        self.via_socket: list[tuple[bytes, Any]] = []
        self.socket = RecordingSocket(self)

    def sendto(self, data: bytes, addr: Any = None) -> None:
        if data:
            self.sent.append((bytes(data), addr))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 9999), "socket": self.socket}.get(name, default)


class RecordingSocket:
    def __init__(self, transport: RecordingTransport) -> None:
        self.transport = transport
        self.duplicates = 0
        self.closed = 0
        self.fail_with: OSError | None = None

    def dup(self) -> RecordingSocket:
        self.duplicates += 1
        return self

    def sendto(self, data: bytes, addr: Any) -> int:
        if self.fail_with is not None:
            raise self.fail_with
        self.transport.sent.append((bytes(data), addr))
        self.transport.via_socket.append((bytes(data), addr))
        return len(data)

    def close(self) -> None:
        self.closed += 1


def make_protocol(**kwargs: Any) -> tuple[ServerUdpEchoProtocol, RecordingTransport]:
    protocol = ServerUdpEchoProtocol(**kwargs)
    transport = RecordingTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def test_echoes_the_same_bytes_to_the_sender() -> None:
    protocol, transport = make_protocol()
    protocol.datagram_received(b"hello, world!", CLIENT)
    protocol.datagram_received(b"", ("198.51.100.1", 5353))
    assert transport.sent == [(b"hello, world!", CLIENT), (b"", ("198.51.100.1", 5353))]
    assert transport.via_socket == [(b"", ("198.51.100.1", 5353))]
    assert protocol.echoed == 2
    assert protocol.received == 2


def test_an_empty_datagram_is_echoed_through_a_duplicate_of_the_socket() -> None:
    protocol, transport = make_protocol()
    for _ in range(3):
        protocol.datagram_received(b"", CLIENT)
    protocol.datagram_received(b"full", CLIENT)
    assert transport.sent == [(b"", CLIENT)] * 3 + [(b"full", CLIENT)]
    assert transport.via_socket == [(b"", CLIENT)] * 3, "only the empty ones"
    assert transport.socket.duplicates == 1, "made once, when first needed"
    assert protocol.echoed == 4
    protocol.connection_lost(None)
    assert transport.socket.closed == 1


def test_an_empty_echo_on_a_full_socket_is_a_backpressure_drop() -> None:
    protocol, transport = make_protocol()
    transport.socket.fail_with = BlockingIOError(11, "Resource temporarily unavailable")
    protocol.datagram_received(b"", CLIENT)
    assert (protocol.echoed, protocol.dropped["backpressure"]) == (0, 1)
    transport.socket.fail_with = ConnectionRefusedError(111, "Connection refused")
    protocol.datagram_received(b"", CLIENT)
    assert (protocol.echoed, protocol.errors) == (0, 1)
    assert protocol.received == 1, "an error is not a datagram drop"


def test_echoes_to_an_ipv6_sender() -> None:
    protocol, transport = make_protocol()
    sender = ("2001:db8::1", 40000, 0, 0)
    protocol.datagram_received(b"v6", sender)
    assert transport.sent == [(b"v6", sender)]


@pytest.mark.parametrize("port", [0, 7, 19, 53, 123, 1023])
def test_never_replies_to_a_privileged_source_port(port: int) -> None:
    protocol, transport = make_protocol()
    protocol.datagram_received(b"ping-pong?", ("192.0.2.7", port))
    assert transport.sent == []
    assert protocol.dropped["privileged_port"] == 1
    assert protocol.received == 1
    assert protocol.echoed == 0


def test_replies_from_port_1024_up() -> None:
    protocol, transport = make_protocol()
    protocol.datagram_received(b"x", ("192.0.2.7", 1024))
    assert transport.sent == [(b"x", ("192.0.2.7", 1024))]


def test_oversize_datagram_is_dropped_and_counted_not_echoed() -> None:
    protocol, transport = make_protocol(max_datagram=16)
    protocol.datagram_received(b"x" * 17, CLIENT)
    protocol.datagram_received(b"y" * 16, CLIENT)
    assert transport.sent == [(b"y" * 16, CLIENT)]
    assert protocol.dropped["oversize"] == 1
    assert protocol.echoed == 1


def test_a_reply_is_never_larger_than_its_request() -> None:
    # a seeded random mix of sizes around the cap and ports around the guard
    rng = random.Random(20260)
    protocol, transport = make_protocol(max_datagram=32)
    for _ in range(2000):
        data = rng.randbytes(rng.randint(0, 64))
        addr = ("192.0.2.7", rng.choice([0, 7, 19, 1023, 1024, 1025, 40000, 65535]))
        before = len(transport.sent)
        protocol.datagram_received(data, addr)
        new = transport.sent[before:]
        assert len(new) <= 1
        if new:
            assert new[0] == (data, addr)
            assert len(new[0][0]) <= len(data) <= 32
            assert addr[1] >= 1024
    assert protocol.received == 2000
    assert protocol.echoed == len(transport.sent)
    assert protocol.echoed + sum(protocol.dropped.values()) == protocol.received
    assert all(protocol.dropped[reason] > 0 for reason in ("privileged_port", "oversize"))


def test_rate_limit_per_source_with_an_injected_clock() -> None:
    clock = FakeClock()
    protocol, transport = make_protocol(limiter=SourceRateLimiter(5, clock=clock))
    other = ("192.0.2.8", 40000)
    for _ in range(8):
        protocol.datagram_received(b"a", CLIENT)
    assert len(transport.sent) == 5  # a burst of one second's worth
    assert protocol.dropped["rate_limited"] == 3
    protocol.datagram_received(b"b", other)  # another source has its own bucket
    assert transport.sent[-1] == (b"b", other)
    clock.now += 0.5  # two and a half tokens back at 5/s
    for _ in range(3):
        protocol.datagram_received(b"c", CLIENT)
    assert [data for data, _ in transport.sent].count(b"c") == 2
    assert protocol.dropped["rate_limited"] == 4


def test_source_table_stays_bounded_under_a_spoofed_flood() -> None:
    limiter = SourceRateLimiter(10, max_sources=100, clock=FakeClock())
    protocol, _ = make_protocol(limiter=limiter)
    for n in range(20_000):
        protocol.datagram_received(b"z", (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 40000))
    assert len(limiter) == 100
    assert limiter.evicted == 20_000 - 100
    assert protocol.echoed == 20_000  # each fake source is within its own rate
    assert protocol.stats()["sources"] == 100


def test_evictions_are_reported_with_the_drops(caplog: pytest.LogCaptureFixture) -> None:
    limiter = SourceRateLimiter(10, max_sources=100, clock=FakeClock())
    protocol, _ = make_protocol(limiter=limiter)
    caplog.set_level(logging.INFO, logger="services.udp_echo.protocol")
    caplog.clear()
    for n in range(250):  # 250 sources through a table of 100: 150 evictions, no drop
        protocol.datagram_received(b"z", (f"10.0.{n >> 8}.{n & 255}", 40000))
    assert protocol.stats()["evicted"] == 150
    assert protocol.log_drops() is True, "evictions alone make a summary line"
    (record,) = caplog.records
    assert record.evicted_since_last == 150  # type: ignore[attr-defined]
    assert record.evicted == 150  # type: ignore[attr-defined]
    assert sum(record.dropped_since_last.values()) == 0  # type: ignore[attr-defined]
    assert protocol.log_drops() is False


async def test_an_eviction_arms_the_periodic_summary() -> None:
    limiter = SourceRateLimiter(10, max_sources=1, clock=FakeClock())
    protocol, _ = make_protocol(limiter=limiter, stats_interval=60.0)
    protocol.datagram_received(b"a", ("10.0.0.1", 40000))
    assert protocol._timer is None, "nothing dropped, nothing evicted: no timer"
    protocol.datagram_received(b"b", ("10.0.0.2", 40000))  # evicts 10.0.0.1
    assert protocol._timer is not None
    protocol.connection_lost(None)


def test_replies_are_dropped_while_the_send_buffer_is_full() -> None:
    protocol, transport = make_protocol()
    protocol.pause_writing()
    protocol.datagram_received(b"later", CLIENT)
    assert transport.sent == []
    assert protocol.dropped["backpressure"] == 1
    protocol.resume_writing()
    protocol.datagram_received(b"now", CLIENT)
    assert transport.sent == [(b"now", CLIENT)]


def test_socket_errors_are_counted_and_survived() -> None:
    protocol, transport = make_protocol()
    protocol.error_received(ConnectionRefusedError(111, "Connection refused"))
    protocol.error_received(OSError(105, "No buffer space available"))
    protocol.datagram_received(b"still here", CLIENT)
    assert transport.sent == [(b"still here", CLIENT)]
    assert protocol.errors == 2
    assert "No buffer space" in protocol.last_error


def test_drops_are_summarised_in_one_log_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, _ = make_protocol(max_datagram=4)
    caplog.set_level(logging.INFO, logger="services.udp_echo.protocol")
    caplog.clear()
    for _ in range(50):
        protocol.datagram_received(b"too big", CLIENT)
        protocol.datagram_received(b"x", ("192.0.2.7", 19))
    assert caplog.records == []  # nothing logged per dropped datagram
    assert protocol.log_drops() is True
    (record,) = caplog.records
    assert record.dropped_since_last == {  # type: ignore[attr-defined]
        **dict.fromkeys(DROP_REASONS, 0),
        "oversize": 50,
        "privileged_port": 50,
    }
    assert protocol.log_drops() is False  # nothing new: no line
    protocol.datagram_received(b"too big", CLIENT)
    assert protocol.log_drops() is True
    assert caplog.records[-1].dropped_since_last["oversize"] == 1  # type: ignore[attr-defined]


def test_connection_lost_resolves_the_waiter_and_logs_totals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, _ = make_protocol()
    caplog.set_level(logging.INFO, logger="services.udp_echo.protocol")
    protocol.datagram_received(b"x", CLIENT)
    protocol.connection_lost(None)
    closed = [r for r in caplog.records if r.getMessage() == "udp echo closed"]
    assert closed[0].echoed == 1  # type: ignore[attr-defined]
