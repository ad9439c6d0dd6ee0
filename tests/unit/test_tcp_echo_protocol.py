"""tcp-echo's Echo and EchoFactory in-process: StringTransport for the socket, task.Clock
for time. Nothing needs to be running."""

from __future__ import annotations

import pytest
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from services.tcp_echo.protocol import Echo, EchoFactory

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


class TcpTransport(StringTransport):
    """A StringTransport that answers the TCP-only call Echo makes and knows its protocol."""

    no_delay = False
    protocol: Echo

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay = enabled


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


@pytest.fixture
def events() -> list[dict]:
    return []


@pytest.fixture
def factory(clock: task.Clock, events: list[dict]) -> EchoFactory:
    factory = EchoFactory.forProtocol(
        Echo, clock=clock, max_connections=3, idle_timeout=10.0, drain_seconds=2.0
    )
    factory.log = Logger(observer=events.append)
    return factory


def connect(factory: EchoFactory) -> tuple[Echo, TcpTransport]:
    protocol = factory.buildProtocol(PEER)
    assert protocol is not None, "refused below the limit"
    transport = TcpTransport(peerAddress=PEER)
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport


def disconnect(transport: TcpTransport) -> None:
    """What the reactor does once a closed socket is gone."""
    transport.protocol.connectionLost(Failure(ConnectionDone()))


def elapse(clock: task.Clock, seconds: float) -> None:
    """Let time pass in small steps, so a timer re-armed on the way fires on time."""
    clock.pump([0.25] * round(seconds / 0.25))


def test_echoes_bytes_unchanged_and_in_order(factory: EchoFactory) -> None:
    _, transport = connect(factory)
    chunks = [b"hello", b"\x00\xff\r\n", bytes(range(256)) * 256, b"", b"end"]
    for chunk in chunks:
        transport.protocol.dataReceived(chunk)
    assert transport.value() == b"".join(chunks)
    assert factory.bytes_echoed == len(b"".join(chunks))


def test_sets_tcp_nodelay(factory: EchoFactory) -> None:
    _, transport = connect(factory)
    assert transport.no_delay is True


def test_registers_as_streaming_producer_of_its_transport(factory: EchoFactory) -> None:
    echo, transport = connect(factory)
    assert transport.producer is echo
    assert transport.streaming is True


def test_full_write_buffer_pauses_reading_until_it_drains(factory: EchoFactory) -> None:
    echo, transport = connect(factory)
    # the transport calls these on its producer as its write buffer fills and drains
    transport.producer.pauseProducing()
    assert transport.producerState == "paused"
    transport.producer.resumeProducing()
    assert transport.producerState == "producing"
    transport.protocol.dataReceived(b"still echoing")
    assert transport.value() == b"still echoing"
    assert echo in factory.protocols


def test_counts_open_and_total_connections(factory: EchoFactory) -> None:
    _, first = connect(factory)
    connect(factory)
    assert (factory.open_connections, factory.connections_total) == (2, 2)
    disconnect(first)
    assert (factory.open_connections, factory.connections_total) == (1, 2)
    assert len(factory.protocols) == 1


def test_refuses_beyond_the_limit_counts_and_logs_once_per_burst(
    factory: EchoFactory, events: list[dict]
) -> None:
    transports = [connect(factory)[1] for _ in range(3)]
    for _ in range(5):
        assert factory.buildProtocol(PEER) is None
    assert factory.connections_refused == 5
    assert factory.open_connections == 3
    warnings = [e for e in events if e["log_level"] == LogLevel.warn]
    assert len(warnings) == 1
    assert warnings[0]["limit"] == 3

    disconnect(transports[0])
    connect(factory)
    assert [e.get("refused") for e in events if e["log_level"] == LogLevel.info] == [5]

    assert factory.buildProtocol(PEER) is None  # a new burst is logged again
    assert len([e for e in events if e["log_level"] == LogLevel.warn]) == 2
    assert factory.connections_refused == 6


def test_idle_connection_is_closed_after_the_timeout(
    factory: EchoFactory, clock: task.Clock
) -> None:
    _, transport = connect(factory)
    elapse(clock, 9.0)
    transport.protocol.dataReceived(b"still here")  # activity restarts the countdown
    elapse(clock, 9.5)
    assert not transport.disconnecting, "closed before 10 s of silence"
    elapse(clock, 3.0)  # 12.5 s of silence: at most a quarter past the timeout
    assert transport.disconnecting
    assert not transport.disconnected, "a clean close first, not an abort"
    assert transport.producer is None, "a registered producer would hold the close open"
    assert factory.idle_timeouts == 1


def test_steady_traffic_is_never_idle(factory: EchoFactory, clock: task.Clock) -> None:
    _, transport = connect(factory)
    for _ in range(40):
        transport.protocol.dataReceived(b".")
        elapse(clock, 2.0)
    assert not transport.disconnecting
    assert factory.idle_timeouts == 0


def test_timed_out_peer_that_never_reads_is_aborted_after_the_grace(
    factory: EchoFactory, clock: task.Clock
) -> None:
    _, transport = connect(factory)
    elapse(clock, 10.0)
    assert transport.disconnecting and not transport.disconnected
    elapse(clock, 2.0)
    assert transport.disconnected
    assert factory.aborted == 1


def test_closed_connection_leaves_no_timer_behind(factory: EchoFactory, clock: task.Clock) -> None:
    _, transport = connect(factory)
    disconnect(transport)
    assert clock.getDelayedCalls() == []


def test_idle_timeout_zero_disables_it(clock: task.Clock) -> None:
    factory = EchoFactory.forProtocol(Echo, clock=clock, idle_timeout=0)
    _, transport = connect(factory)
    assert clock.getDelayedCalls() == []
    assert not transport.disconnecting


def test_close_all_flushes_then_aborts_laggards_and_fires_when_none_left(
    factory: EchoFactory, clock: task.Clock
) -> None:
    _, polite = connect(factory)
    _, stuck = connect(factory)
    drained = factory.close_all(2.0)
    assert polite.disconnecting and stuck.disconnecting
    disconnect(polite)  # its buffer flushed, the socket closed
    assert not drained.called
    clock.advance(2.0)
    assert stuck.disconnected and not polite.disconnected
    disconnect(stuck)
    assert drained.called
    assert factory.open_connections == 0


def test_close_all_without_connections_fires_at_once(factory: EchoFactory) -> None:
    assert factory.close_all(2.0).called


def test_is_a_half_closeable_protocol(factory: EchoFactory) -> None:
    # without it Twisted treats the peer's FIN as the end of the connection, echo unsent
    echo, _ = connect(factory)
    assert IHalfCloseableProtocol.providedBy(echo)


def test_half_close_flushes_what_was_echoed_then_closes(factory: EchoFactory) -> None:
    echo, transport = connect(factory)
    transport.protocol.dataReceived(b"hello\n")
    echo.readConnectionLost()
    assert transport.value() == b"hello\n"
    assert transport.disconnecting, "loseConnection: the buffer flushes, then the socket closes"
    assert not transport.disconnected, "a clean close, not an abort"
    assert transport.producer is None, "a registered producer would hold the close open"
    assert factory.half_closed == 1


def test_half_closed_peer_that_never_reads_is_aborted_at_the_idle_timeout(
    factory: EchoFactory, clock: task.Clock
) -> None:
    echo, transport = connect(factory)
    transport.protocol.dataReceived(b"a lot the peer will never read")
    echo.readConnectionLost()
    elapse(clock, 9.0)
    assert not transport.disconnected, "a slow reader gets the idle timeout to take its echo"
    elapse(clock, 4.0)
    assert transport.disconnected
    assert (factory.idle_timeouts, factory.aborted) == (1, 1)


def test_half_close_with_nothing_left_to_send_frees_the_slot_at_once(
    factory: EchoFactory,
) -> None:
    # the socket closes on the reactor's next pass; a reconnect meanwhile must find room
    echo, _ = connect(factory)
    echo.readConnectionLost()
    assert factory.open_connections == 0
    assert factory.buildProtocol(PEER) is not None


def test_half_close_with_echo_still_buffered_keeps_the_slot_until_closed(
    factory: EchoFactory,
) -> None:
    echo, transport = connect(factory)
    transport._tempDataLen = 4096  # what Twisted's FileDescriptor has yet to write
    echo.readConnectionLost()
    assert factory.open_connections == 1
    disconnect(transport)
    assert factory.open_connections == 0
