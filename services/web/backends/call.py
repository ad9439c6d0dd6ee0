"""The guard around every backend call: timeout, concurrency bound, stats, metrics, and
the mapping of network failures to problems (refused → 503 at once, slow → 504).

Readiness probes run through the same guard but are counted apart
(``polyloop_web_backend_probes_total``) and stay out of the live stats: at idle, the
dashboard must show no traffic, not its own probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from services.web.backends import Backend
from services.web.errors import BackendTimeout, BackendUnavailable, BadBackendReply, Problem
from services.web.metrics import Metrics
from services.web.stats import BackendStats

T = TypeVar("T")

# every problem a backend call can raise (the OpenAPI document lists them)
PROBLEMS = (BadBackendReply, BackendUnavailable, BackendTimeout)


class BackendCall:
    """Runs calls to one named backend under its timeout and semaphore."""

    def __init__(
        self,
        name: Backend,
        *,
        timeout: float,
        concurrency: int,
        stats: BackendStats,
        metrics: Metrics,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._semaphore = asyncio.Semaphore(concurrency)
        self._stats = stats
        self._metrics = metrics
        # this backend's metric children, bound once: .labels() is a locked dict lookup
        self._in_flight = metrics.backend_in_flight.labels(name)
        self._seconds = metrics.backend_seconds.labels(name)
        self._ok = metrics.backend_calls.labels(name, "ok")
        self._failed = metrics.backend_calls.labels(name, "error")
        self._probe_ok = metrics.backend_probes.labels(name, "ok")
        self._probe_failed = metrics.backend_probes.labels(name, "error")

    async def run(
        self, call: Callable[[], Awaitable[T]], timeout: float | None = None, *, probe: bool = False
    ) -> T:
        """Await `call()` within `timeout` (queueing for the semaphore included); a `probe`
        is counted as one, not as a call (neither in the live stats nor in the call metrics)."""
        seconds = self.timeout if timeout is None else timeout
        start = time.perf_counter()
        kind = "cancelled"  # until the call ends one way or another
        self._in_flight.inc()
        try:
            async with asyncio.timeout(seconds), self._semaphore:
                result = await call()
            kind = "ok"
            return result
        except TimeoutError:  # before OSError: TimeoutError is one
            kind = "timeout"
            raise BackendTimeout(self.name, seconds) from None
        except BadBackendReply:
            kind = "bad_reply"
            raise
        except Problem:
            kind = "unavailable"
            raise
        except (OSError, EOFError, asyncio.IncompleteReadError, aiohttp.ClientError) as exc:
            kind = "unavailable"
            raise BackendUnavailable(self.name, describe(exc)) from exc
        finally:
            elapsed = time.perf_counter() - start
            self._in_flight.dec()
            if probe:
                (self._probe_ok if kind == "ok" else self._probe_failed).inc()
            else:
                self._record(kind, elapsed)

    def _record(self, kind: str, elapsed: float) -> None:
        self._stats.record(self.name, elapsed, kind == "ok")
        self._seconds.observe(elapsed)
        if kind == "ok":
            self._ok.inc()
        else:
            self._failed.inc()
            self._metrics.backend_errors.labels(self.name, kind).inc()


def describe(exc: BaseException) -> str:
    """A short, client-safe description of a network failure (no addresses of internals)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncio.IncompleteReadError | EOFError):
        return "connection closed before the reply was complete"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return describe(exc.os_error)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__
