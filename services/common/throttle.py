"""Log lines that cannot flood: at most one line per kind of event and interval.

Under an attack the same event repeats thousands of times a second (asyncio logged 38,520
``accept()`` tracebacks in 16 s under fd exhaustion). ``LogThrottle`` writes the first one
of each kind, holds back the rest for ``interval`` seconds, and says how many it held back
in the next line of that kind (``"suppressed": N``). Kinds are a bounded set: past
``MAX_KINDS`` distinct ones, the rest share one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

MAX_KINDS = 64
OTHER = "other"


class LogThrottle:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, kind: str, level: int, msg: str, *, exc_info: Any = None, **extra: Any) -> bool:
        """Log `msg` unless a line of this `kind` went out less than `interval` ago; True
        when the line was written."""
        if kind not in self._next and len(self._next) >= MAX_KINDS:
            kind = OTHER
        now = self.clock()
        if now < self._next.get(kind, now):
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._next[kind] = now + self.interval
        suppressed = self._held.pop(kind, 0)
        self.logger.log(
            level, msg, exc_info=exc_info, extra={**extra, "kind": kind, "suppressed": suppressed}
        )
        return True
