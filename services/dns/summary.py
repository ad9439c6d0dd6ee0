"""Counts by reason, logged as one summary line per interval: never one line per event.

A flood of bad datagrams or of refused queries must not become a flood of log lines (one
INFO line per truncated datagram was 51x the bytes sent). ``count(reason)`` is one
increment; the first count after a quiet spell arms a timer on the injected clock, and
when it fires one line gives the counts of the interval and the totals. The counts stay
readable as plain integers in ``counts`` (totals since start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from twisted.internet import interfaces


class CountSummary:
    """Totals by reason in ``counts``; at most one log line per ``interval`` seconds."""

    def __init__(
        self,
        message: str,
        reasons: Iterable[str],
        clock: interfaces.IReactorTime,
        interval: float,
        logger: logging.Logger,
        context: Callable[[], dict[str, object]] | None = None,
    ) -> None:
        self.message = message
        self.counts = dict.fromkeys(reasons, 0)
        self.clock = clock
        self.interval = interval  # 0: no periodic line, only the one of flush()
        self.logger = logger
        self.context = context  # more fields for the line, read when it is logged
        self._reported = dict(self.counts)
        self._call: interfaces.IDelayedCall | None = None

    def count(self, reason: str) -> None:
        """One more event of ``reason`` (one of the reasons given at construction)."""
        self.counts[reason] += 1
        if self._call is None and self.interval > 0:
            self._call = self.clock.callLater(self.interval, self._tick)

    def flush(self) -> bool:
        """Log what was counted since the last line, if anything; True if a line went out."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        since = {reason: n - self._reported[reason] for reason, n in self.counts.items()}
        if not any(since.values()):
            return False
        self._reported = dict(self.counts)
        self.logger.warning(
            self.message,
            extra={
                "since_last": {reason: n for reason, n in since.items() if n},
                "interval_s": self.interval,
                "totals": dict(self.counts),
                **(self.context() if self.context else {}),
            },
        )
        return True

    def _tick(self) -> None:
        # the next count re-arms the timer: a quiet server keeps no timer pending
        self._call = None
        self.flush()
