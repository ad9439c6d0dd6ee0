"""The guard around every backend call: timeout, concurrency bound, stats, metrics, and
the mapping of network failures to problems (refused → 503 at once, slow → 504).

The timeout is ``Deadlines``: one timer per backend sweeps the calls in flight every
``SWEEP`` seconds and cancels the late ones, where ``asyncio.timeout()`` would make a
``Timeout``, a timer handle and a cancellation per call (about 9 µs of the ~130 µs a proxied
echo cost the front, ``python -m bench``). A call ends at most ``SWEEP`` after its deadline.

Readiness probes run through the same guard but are counted apart
(``polyloop_web_backend_probes_total``) and stay out of the live stats: at idle, the
dashboard must show no traffic, not its own probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from services.web.backends import Backend
from services.web.errors import BackendTimeout, BackendUnavailable, BadBackendReply, Problem
from services.web.metrics import Metrics
from services.web.stats import BackendStats

T = TypeVar("T")

SWEEP = 0.05  # seconds between two looks at the deadlines of the calls in flight


class Deadlines:
    """When each call in flight must end, and one timer that cancels the late ones.

    ``enter(task, deadline)`` as a call starts, ``leave(task)`` as it ends (whatever the
    outcome: it says whether the deadline ended it). The timer runs only while a call is
    in flight: at idle there is none.
    """

    def __init__(self, sweep: float = SWEEP) -> None:
        self.sweep = sweep
        self._due: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def enter(self, task: asyncio.Task[Any], deadline: float) -> None:
        self._due[task] = deadline
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.sweep, self._sweep)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether ``_sweep`` cancelled ``task`` for its deadline (asked once, on its
        ``CancelledError``)."""
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def leave(self, task: asyncio.Task[Any]) -> None:
        self._due.pop(task, None)
        self._expired.discard(task)

    def _sweep(self) -> None:
        now = time.monotonic()
        for task, deadline in list(self._due.items()):
            if deadline <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
        self._timer = None
        if self._due:
            self._timer = asyncio.get_running_loop().call_later(self.sweep, self._sweep)


# every problem a backend call can raise (the OpenAPI document lists them)
PROBLEMS = (BadBackendReply, BackendUnavailable, BackendTimeout)


class BackendCall:
    """Runs calls to one named backend under its timeout and semaphore (``concurrency``;
    None when the backend's client bounds its calls itself, as the echo pools do)."""

    def __init__(
        self,
        name: Backend,
        *,
        timeout: float,
        concurrency: int | None,
        stats: BackendStats,
        metrics: Metrics,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._semaphore = asyncio.Semaphore(concurrency) if concurrency else None
        self._deadlines = Deadlines()
        self._stats = stats
        self._counts = metrics.backends[name]  # plain counts, read when /metrics is

    async def run(
        self, call: Callable[[], Awaitable[T]], timeout: float | None = None, *, probe: bool = False
    ) -> T:
        """Await `call()` within `timeout` (queueing for the semaphore included); a `probe`
        is counted as one, not as a call (neither in the live stats nor in the call metrics)."""
        seconds = self.timeout if timeout is None else timeout
        counts = self._counts
        task = asyncio.current_task()
        assert task is not None, "a backend call runs in a task"
        cancelling = task.cancelling()
        start = time.perf_counter()
        kind = "cancelled"  # until the call ends one way or another
        counts.in_flight += 1
        self._deadlines.enter(task, time.monotonic() + seconds)
        try:
            if self._semaphore is None:
                result = await call()
            else:
                async with self._semaphore:
                    result = await call()
            kind = "ok"
            return result
        except asyncio.CancelledError:
            # the deadline's cancellation, and no other one pending (as asyncio.timeout)
            if self._deadlines.expired(task) and task.uncancel() <= cancelling:
                kind = "timeout"
                raise BackendTimeout(self.name, seconds) from None
            raise
        except TimeoutError:  # before OSError: TimeoutError is one (a client's own timeout)
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
            self._deadlines.leave(task)
            elapsed = time.perf_counter() - start
            counts.in_flight -= 1
            if probe:
                if kind == "ok":
                    counts.probes_ok += 1
                else:
                    counts.probes_failed += 1
            else:
                self._stats.record(self.name, elapsed, kind == "ok")
                counts.timings.observe(elapsed)
                if kind == "ok":
                    counts.ok += 1
                else:
                    counts.failed += 1
                    counts.errors[kind] = counts.errors.get(kind, 0) + 1


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
