"""The book's ``Echo(Protocol)`` and the factory that serves it under limits.

Every byte received is written back unchanged, in order: raw bytes, not lines. A connection
that opens with the stack's probe mark (``services.common.probes``) is echoed the same way
and counted apart, never as served.
Build it in-process (a test does) or run it with ``python -m services.tcp_echo``;
try it with: printf 'hello\n' | nc -N 127.0.0.1 8000   (prints hello)

- Back-pressure: each ``Echo`` is a streaming producer on its own transport. When the
  transport's write buffer is full (the peer is not reading) the transport calls
  ``pauseProducing`` and ``Echo`` stops reading from the peer; the kernel's flow control
  then holds the sender, so server memory stays bounded. Reading resumes once it drains.
- Max concurrent connections: the factory's ``buildProtocol`` returns ``None`` beyond the
  limit (Twisted's own way to refuse: the port closes the socket at once); the refusal
  is counted and logged once per burst. Not ``policies.LimitTotalConnectionsFactory``:
  its ``ProtocolWrapper`` puts two more Python calls on every chunk echoed.
- Half-close: ``Echo`` is an ``IHalfCloseableProtocol``. When the peer shuts down its
  sending side (``nc -N``, ``shutdown(SHUT_WR)``) the transport calls
  ``readConnectionLost`` instead of dropping the connection: every byte already received
  has been written to the transport by then, so ``Echo`` stops producing and closes
  once the write buffer is flushed. The peer gets all it sent, then EOF.
- Idle timeout: ``TimeoutMixin``; a connection silent for the timeout (up to a quarter
  more) is closed, then aborted if its peer will not take the last bytes within the
  drain grace. A half-closed peer that never reads its echo is aborted at the timeout.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from services.common import probes
from services.common.faults import Faults

# The idle timer ticks this often per timeout and the connection closes after that many
# silent ticks in a row: data only sets a flag, where resetting a timer on every chunk
# (TimeoutMixin.resetTimeout) would cost more than the echo itself. Silence before the
# close: between 1 and 1 + 1/IDLE_TICKS timeouts.
IDLE_TICKS = 4


@implementer(IPushProducer, IHalfCloseableProtocol)
class Echo(Protocol, TimeoutMixin):
    """Echo every byte back; pause reading while the peer does not read; on the peer's
    half-close, finish the echo, then close."""

    factory: EchoFactory
    _abort_call: IDelayedCall | None = None
    _active = False  # data arrived since the last idle tick
    _silent_ticks = 0

    def connectionMade(self) -> None:
        # an echo answers what it was just sent: never hold it back for Nagle
        self.transport.setTcpNoDelay(True)
        self.transport.registerProducer(self, True)
        self.factory.protocols.add(self)
        if self.factory.idle_timeout:
            self.setTimeout(self.factory.idle_timeout / IDLE_TICKS)
        # the first chunk tells a probe connection of the stack's own (services.common.probes)
        # from a client's; decided once here, so that no later chunk pays for the question
        self.dataReceived = self._first_chunk  # type: ignore[method-assign]

    def dataReceived(self, data: bytes) -> None:
        "As soon as any data is received, echo it back."
        factory = self.factory
        if factory.faults.active:  # the one check the hot path pays for the faults
            self._faulty(data)
            return
        self.transport.write(data)
        factory.chunks_echoed += 1
        factory.bytes_echoed += len(data)
        self._active = True

    def _first_chunk(self, data: bytes) -> None:
        # from now on the class's own dataReceived, or the probe's twin of it
        if probes.is_marked(data):
            self.dataReceived = self._probe_chunk  # type: ignore[method-assign]
        else:
            del self.dataReceived
        self.dataReceived(data)

    def _probe_chunk(self, data: bytes) -> None:
        """A probe connection's chunk: echoed the same way, faults included, counted apart."""
        factory = self.factory
        if factory.faults.active:
            self._faulty(data, probe=True)
            return
        self.transport.write(data)
        factory.probe_chunks += 1
        self._active = True

    def _faulty(self, data: bytes, probe: bool = False) -> None:
        """A fault is set: fail (close the connection), or echo after its latency."""
        factory = self.factory
        spec = factory.faults.current()
        if spec is not None and factory.faults.should_fail(spec):
            self.transport.loseConnection()
            return
        if probe:
            factory.probe_chunks += 1
        else:
            factory.chunks_echoed += 1
            factory.bytes_echoed += len(data)
        self._active = True
        if spec is None or not spec.latency_ms:
            self.transport.write(data)
            return
        # the reactor's own timer: this connection waits, every other one is served;
        # a write after the peer has gone is a no-op of the transport
        factory.clock.callLater(spec.latency_s, self.transport.write, data)

    # IHalfCloseableProtocol: the peer's FIN, with our side still open
    def readConnectionLost(self) -> None:
        """The peer sent all it will send: flush the echo of it, then close."""
        self.factory.half_closed += 1
        # nothing more will be read, so back-pressure has nothing left to pause; a
        # registered producer would hold the close open (see close())
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        if not _unflushed(self.transport):
            # nothing left to send: the socket closes on the reactor's next pass, for sure.
            # Free the slot now, as the FIN used to: a client that closes and reconnects
            # at the limit (a pool, a healthcheck) would otherwise be refused meanwhile
            self.factory.connection_closed(self)

    def writeConnectionLost(self) -> None:
        # only called after our own loseWriteConnection(), which Echo never does
        pass

    # IPushProducer: the transport drives these from its write buffer's level.
    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        # the transport is going away; connectionLost follows and cleans up
        pass

    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        # TimeoutMixin asks the global reactor; the factory's clock lets tests use task.Clock
        return self.factory.clock.callLater(period, func)

    def timeoutConnection(self) -> None:
        # an idle tick (TimeoutMixin's timer): count silent ticks, close after IDLE_TICKS
        if self._active:
            self._active = False
            self._silent_ticks = 0
        else:
            self._silent_ticks += 1
        if self._silent_ticks < IDLE_TICKS:
            self.setTimeout(self.timeOut)
            return
        self.factory.idle_timeouts += 1
        if self.transport.disconnecting:
            # half-closed and its peer still has not taken the echo: give up on it
            self._abort()
        else:
            self.close(self.factory.drain_seconds)

    def close(self, grace: float) -> None:
        """Stop reading, flush what was already echoed, close; abort after `grace` seconds.

        A registered producer keeps a transport open until it is unregistered, and a
        peer that never reads would keep the flush waiting forever: hence both steps.
        """
        if self._abort_call is not None or self.transport.disconnecting:
            return
        self.setTimeout(None)
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        self._abort_call = self.factory.clock.callLater(grace, self._abort)

    def _abort(self) -> None:
        self._abort_call = None
        self.factory.aborted += 1
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.setTimeout(None)
        if self._abort_call is not None:
            self._abort_call.cancel()
            self._abort_call = None
        self.factory.connection_closed(self)


def _unflushed(transport: object) -> int:
    """Bytes a Twisted TCP transport still holds to write. Its ``FileDescriptor`` keeps
    them in ``dataBuffer`` (from ``offset``) and ``_tempDataBuffer`` (``_tempDataLen``
    bytes), as its own ``_isSendBufferFull`` reads them; no public call says it. A
    transport without them counts as empty."""
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return buffered + getattr(transport, "_tempDataLen", 0)


class EchoFactory(Factory):
    """Builds ``Echo`` under a connection limit and keeps the service's counters.

    Build it as the book's factory is built: ``EchoFactory.forProtocol(Echo, ...)``.
    Counters: ``open_connections``, ``connections_total`` (accepted),
    ``connections_refused``, ``chunks_echoed`` (reads handled), ``bytes_echoed`` (both
    without the stack's own probe connections: ``probe_chunks``),
    ``idle_timeouts``, ``aborted``, ``half_closed`` (peers that shut down their sending
    side first); ``metrics.TcpEchoCollector`` reads them at scrape time.
    """

    log = Logger()
    noisy = False  # the service logs its own start line, without an object repr

    def __init__(
        self,
        clock: IReactorTime,
        max_connections: int = 1024,
        idle_timeout: float = 300.0,
        drain_seconds: float = 2.0,
    ) -> None:
        self.clock = clock
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.drain_seconds = drain_seconds
        self.protocols: set[Echo] = set()
        self.connections_total = 0
        self.connections_refused = 0
        self.chunks_echoed = 0
        self.bytes_echoed = 0
        self.probe_chunks = 0
        self.idle_timeouts = 0
        self.aborted = 0
        self.half_closed = 0
        # off and empty; the loop's start (services.common.loops) gives it the reactor's hooks
        self.faults = Faults()
        self._refused_in_burst = 0
        self._drained: list[Deferred[None]] = []

    @property
    def open_connections(self) -> int:
        return len(self.protocols)

    def buildProtocol(self, addr: IAddress) -> Protocol | None:
        # buildProtocol and the new protocol's connectionMade run back to back, so
        # self.protocols is exact here
        if len(self.protocols) >= self.max_connections:
            # None: the listening port closes the socket at once; count it, log the burst once
            self.connections_refused += 1
            self._refused_in_burst += 1
            if self._refused_in_burst == 1:
                self.log.warn(
                    "connection limit reached: {limit} open, refusing new connections",
                    limit=self.max_connections,
                )
            return None
        if self._refused_in_burst:
            self.log.info(
                "accepting again after refusing {refused} connections at the limit",
                refused=self._refused_in_burst,
            )
            self._refused_in_burst = 0
        self.connections_total += 1
        return super().buildProtocol(addr)

    def connection_closed(self, protocol: Echo) -> None:
        self.protocols.discard(protocol)
        if not self.protocols:
            waiting, self._drained = self._drained, []
            for drained in waiting:
                drained.callback(None)

    def close_all(self, grace: float) -> Deferred[None]:
        """Close every connection (flush, then abort after `grace`); fires when none is left."""
        if not self.protocols:
            return succeed(None)
        drained: Deferred[None] = Deferred()
        self._drained.append(drained)
        for protocol in list(self.protocols):
            protocol.close(grace)
        return drained
