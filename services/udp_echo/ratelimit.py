"""Per-source token buckets for the UDP echo, with a bounded table of sources.

Each source IP may send ``rate`` datagrams/s on average, in bursts of up to ``burst``.
The table remembers at most ``max_sources`` sources, least recently seen evicted first:
UDP source addresses are trivially spoofed, so a flood from millions of fake sources
must cost a fixed amount of memory. A bucket idle for ``burst / rate`` seconds has
refilled and is the same as a new one, so evicting it loses nothing; under a flood of
more distinct sources than the table holds, the oldest buckets are reset — bounded
memory wins over precision. Evictions are counted (``evicted``) and, when ``on_evict``
is set, signalled: the protocol reports them with its drops.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class SourceRateLimiter:
    """Token bucket per source: ``allow(ip)`` is True while that source is within its rate."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 (no limiter at all means no limit)")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.max_sources = max_sources
        self.clock = clock
        self.evicted = 0
        self.on_evict: Callable[[], object] | None = None  # called after each eviction
        # source -> (tokens, last seen); ordered by last use, oldest first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source: str) -> bool:
        """Take one token from `source`'s bucket; False when it is empty."""
        now = self.clock()
        buckets = self._buckets
        bucket = buckets.get(source)
        if bucket is None:
            if len(buckets) >= self.max_sources:
                buckets.popitem(last=False)
                self.evicted += 1
                if self.on_evict is not None:
                    self.on_evict()
            tokens = self.burst
        else:
            buckets.move_to_end(source)
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        if tokens >= 1.0:
            buckets[source] = (tokens - 1.0, now)
            return True
        buckets[source] = (tokens, now)
        return False
