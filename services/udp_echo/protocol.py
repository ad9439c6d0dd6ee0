"""The book's Trollius UDP echo, as an asyncio ``DatagramProtocol``.

Every datagram is sent back, unchanged, to the address it came from — except:

- from a source port below 1024: never answered. A spoofed datagram "from" another
  host's echo (7) or chargen (19) port would otherwise start an endless ping-pong
  between the two services (CVE-1999-0103);
- larger than ``max_datagram`` bytes: dropped;
- over the source's rate (when a ``SourceRateLimiter`` is given): dropped;
- while the socket's send buffer is full (``pause_writing``): dropped, so a flood
  cannot grow the transport's buffer without bound.

A reply is the request itself, so it is never larger (no amplification). A datagram that
starts with the stack's probe mark (``services.common.probes``) is echoed the same way and
counted apart (``probes``), never as served. Every drop is
counted by reason on the protocol; one JSON log line at most every ``stats_interval``
seconds summarises the drops of that interval (and the rate limiter's evictions), never
one line per datagram.

A zero-length datagram is valid UDP and is echoed as one (RFC 862): asyncio's and
uvloop's ``sendto`` both return early on empty data, so that reply goes out through a
duplicate of the transport's own socket (same port), made the first time it is needed.

Try it (with the service running): ``nc -u 127.0.0.1 9999``, then type a line.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, cast

from services.common import probes
from services.common.faults import Faults
from services.udp_echo.ratelimit import SourceRateLimiter

log = logging.getLogger(__name__)

# ports below this are system services (echo, chargen, daytime, dns...): never reply to them
FIRST_UNPRIVILEGED_PORT = 1024
# "fault": dropped on purpose by a fail-X % fault
DROP_REASONS = ("privileged_port", "oversize", "rate_limited", "backpressure", "fault")


class ServerUdpEchoProtocol(asyncio.DatagramProtocol):
    """Echo each datagram to its sender, within the guards above."""

    def __init__(
        self,
        max_datagram: int = 4096,
        limiter: SourceRateLimiter | None = None,
        stats_interval: float = 0.0,
        on_lost: asyncio.Future[None] | None = None,
    ) -> None:
        self.max_datagram = max_datagram
        self.limiter = limiter
        self.stats_interval = stats_interval
        self.on_lost = on_lost
        self.transport: asyncio.DatagramTransport | None = None
        self.echoed = 0
        self.probes = 0  # echoes of the stack's own probe datagrams: not in `echoed`
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.errors = 0
        self.last_error = ""
        self._writing_paused = False
        self._reported: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._empty_sender: socket.socket | None = None
        # off and empty; the loop's start (services.common.loops) gives it the loop's hooks
        self.faults = Faults()

    @property
    def received(self) -> int:
        # derived, so the hot path pays for one counter, not two
        return self.echoed + self.probes + sum(self.dropped.values())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the selector loop's datagram transport does not subclass DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)
        log.info(
            "udp echo listening",
            extra={
                "sockname": transport.get_extra_info("sockname"),
                "max_datagram": self.max_datagram,
                "rate_limit": self.limiter.rate if self.limiter else 0,
                # whose transport this is: "asyncio" or "uvloop" (UDP_ECHO_LOOP)
                "loop": type(transport).__module__.split(".")[0],
            },
        )
        # the summary timer is armed by the first drop, not here: a timer always pending
        # makes every wait of the loop's selector a timed one, which costs each echo ~10 %
        self._loop = asyncio.get_running_loop() if self.stats_interval > 0 else None
        if self.limiter is not None:
            # an eviction arms the summary too (a spoofed flood may drop nothing)
            self.limiter.on_evict = self._arm_summary

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # the common case runs five cheap compares and one sendto
        if addr[1] < FIRST_UNPRIVILEGED_PORT:
            self._drop("privileged_port")
        elif len(data) > self.max_datagram:
            self._drop("oversize")
        elif self.limiter is not None and not self.limiter.allow(addr[0]):
            self._drop("rate_limited")
        elif self._writing_paused:
            self._drop("backpressure")
        elif self.faults.active:  # the one check the hot path pays for the faults
            self._faulty(data, addr)
        elif data:
            self.transport.sendto(data, addr)  # type: ignore[union-attr]
            if data[0]:
                self.echoed += 1
            else:  # starts with NUL: maybe the stack's own probe (services.common.probes)
                self._count(data)
        else:
            self._echo_empty(addr)

    def _faulty(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """A fault is set: drop the datagram (fail), or echo it after its latency."""
        spec = self.faults.current()
        if spec is not None and self.faults.should_fail(spec):
            self._drop("fault")
        elif spec is not None and spec.latency_ms:
            # the loop's own timer: this datagram waits, every other sender is served
            asyncio.get_running_loop().call_later(spec.latency_s, self._echo, data, addr)
        else:
            self._echo(data, addr)

    def _echo(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # a delayed echo outliving the socket
        if data:
            self.transport.sendto(data, addr)
            self._count(data)
        else:
            self._echo_empty(addr)

    def _count(self, data: bytes) -> None:
        if probes.is_marked(data):
            self.probes += 1
        else:
            self.echoed += 1

    def _echo_empty(self, addr: tuple[Any, ...]) -> None:
        # the transport's sendto() would silently send nothing: write the empty reply
        # through a duplicate of its socket (non-blocking, like the original)
        if self._empty_sender is None:
            self._empty_sender = self.transport.get_extra_info("socket").dup()  # type: ignore[union-attr]
        try:
            self._empty_sender.sendto(b"", addr)
        except BlockingIOError:
            self._drop("backpressure")
        except OSError as exc:
            self.error_received(exc)
        else:
            self.echoed += 1

    def error_received(self, exc: Exception) -> None:
        # e.g. ICMP port unreachable from a peer that left, or ENOBUFS: one peer's problem,
        # never the server's; counted here and reported in the periodic summary
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.debug("udp echo socket error", extra={"error": self.last_error})
        self._arm_summary()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._empty_sender is not None:
            self._empty_sender.close()
            self._empty_sender = None
        self.log_drops()
        log.info("udp echo closed", extra=self.stats())
        if self.on_lost is not None and not self.on_lost.done():
            self.on_lost.set_result(None)

    def stats(self) -> dict[str, Any]:
        """Totals since start: received, echoed, probes, dropped by reason, socket errors, the
        rate limiter's table (sources remembered, sources evicted to make room)."""
        return {
            "received": self.received,
            "echoed": self.echoed,
            "probes": self.probes,
            "dropped": dict(self.dropped),
            "errors": self.errors,
            "sources": len(self.limiter) if self.limiter else 0,
            "evicted": self.limiter.evicted if self.limiter else 0,
        }

    def log_drops(self) -> bool:
        """Log one summary line if anything was dropped, failed or evicted since the last."""
        evicted = self.limiter.evicted if self.limiter else 0
        current = {**self.dropped, "errors": self.errors, "evicted": evicted}
        delta = {key: value - self._reported.get(key, 0) for key, value in current.items()}
        self._reported = current
        if not any(delta.values()):
            return False
        errors = delta.pop("errors")
        evicted_since_last = delta.pop("evicted")
        log.warning(
            "udp echo dropped datagrams",
            extra={
                "dropped_since_last": delta,
                "errors_since_last": errors,
                "evicted_since_last": evicted_since_last,
                "last_error": self.last_error or None,
                **self.stats(),
            },
        )
        return True

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        self._arm_summary()

    def _arm_summary(self) -> None:
        if self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self.stats_interval, self._summarise)

    def _summarise(self) -> None:
        # one line for everything dropped in the interval; the next drop re-arms the timer
        self._timer = None
        self.log_drops()
