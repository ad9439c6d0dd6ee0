"""The front's own live measurements of its backend calls, for the dashboard.

Every backend call is recorded once (``record``); ``snapshot`` summarises the last
``window`` seconds per backend: requests/s, errors/s and latency percentiles. The
WebSocket feed pushes one snapshot a second. Prometheus histograms (``/metrics``)
are the long-term view; this is the "what is happening right now" view, kept in
memory as a bounded deque per backend.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from services.web.backends import Backend


@dataclass
class _Series:
    samples: deque[tuple[float, float, bool]] = field(default_factory=lambda: deque(maxlen=50_000))
    total: int = 0
    errors: int = 0


class BackendStats:
    """Rolling per-backend call statistics over the last ``window`` seconds."""

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._series: dict[Backend, _Series] = {backend: _Series() for backend in Backend}

    def record(self, backend: Backend, seconds: float, ok: bool) -> None:
        """One finished call to `backend` that took `seconds`; `ok` False for any failure."""
        series = self._series[backend]
        series.samples.append((self.clock(), seconds, ok))
        series.total += 1
        if not ok:
            series.errors += 1

    def snapshot(self) -> dict[str, dict[str, float | int]]:
        now = self.clock()
        horizon = now - self.window
        out: dict[str, dict[str, float | int]] = {}
        for name, series in self._series.items():
            while series.samples and series.samples[0][0] < horizon:
                series.samples.popleft()
            recent = list(series.samples)
            latencies = sorted(s[1] * 1000 for s in recent)
            errors = sum(1 for s in recent if not s[2])
            out[name] = {
                "rps": round(len(recent) / self.window, 2),
                "errors_per_s": round(errors / self.window, 2),
                "p50_ms": _percentile(latencies, 50),
                "p95_ms": _percentile(latencies, 95),
                "p99_ms": _percentile(latencies, 99),
                "total": series.total,
                "errors_total": series.errors,
            }
        return out


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return round(sorted_values[rank], 2)
