"""The front's steady client: a few calls a second to every service, over its own protocol.

A blocked loop shows only when somebody waits for it. The steady client is that somebody:
``WEB_STEADY_RATE`` calls a second (default 2) to each of the five services, one at a time
per service, each bounded by ``WEB_STEADY_TIMEOUT`` (default 2 s):

- tcp-echo: a few bytes echoed over a connection of its own (never the API's pool, whose
  queue would be measured along with the reactor);
- udp-echo: one datagram, its echo awaited (no retry: a lost datagram is an error);
- dns: the stack's DNS question (``services.common.dns_probe``);
- resolver: ``POST /resolve`` of the probe name alone, answered from the resolver's cache
  (the name lives a day), so it measures the gevent hub and not the dns service behind it;
- web: ``GET /api/ping`` on the front itself, under the front's own faults.

Everything it sends carries the stack's probe mark (``services.common.probes``): no service
counts it as served. It runs in a thread of its own with its own asyncio loop, OUTSIDE the
front's loop: a block of the front then shows on ``web`` only, as a block of tcp-echo shows
on tcp-echo only. A call that fails or times out is an error; a timed-out call counts for
exactly the timeout. The calls of every service fall on the same ticks, each 1/rate after
the last moved by up to ±10 % (one wake-up of the thread serves them all, and the schedule
drifts: it never phase-locks with a fault that repeats every second). The service under
experiment (``focus``) gets ``FOCUS_RATE`` calls a second (14) while the experiment runs:
each 500 ms block is then met by a call within its first 80 ms, and shows nearly whole.

``SteadyClient.picture()`` gives, per service, the calls that ended in the last second:
``{"p50_ms", "max_ms", "calls", "errors", "last_error", "in_flight_ms"}`` (the numbers
null when no call ended, ``in_flight_ms`` the age of the call still waiting, if any): the
``steady`` of ``GET /api/live`` and ``/ws/live``. ``calls(name, start, end)`` gives the
calls started in a window, for the experiments' figures. ``WEB_STEADY=0`` turns it off.

Try it: ``curl -s 127.0.0.1:8080/api/live | python -m json.tool | grep -A6 steady``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import statistics
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from services.common import dns_probe, probes
from services.common.catalogue import NAMES
from services.web.backends.call import describe
from services.web.config import WebConfig
from services.web.keys import CONFIG
from services.web.metrics import PING

log = logging.getLogger(__name__)

WINDOW = 1.0  # seconds of calls in picture()
# seconds of calls kept per service: an experiment's baseline and run, at their maximum
HISTORY = 30 + 300 + 10
JITTER = 0.1  # each period is 1/rate, ±10 %
# calls a second to the service under experiment (``focus``): ticks 71 ms apart, never more
# than 79 ms with their jitter, so each 500 ms block is met by a call within its first
# 80 ms and shows nearly whole
FOCUS_RATE = 14.0
STOP_TIMEOUT = 3.0  # seconds to wait for the thread at cleanup
MAX_ANSWER = 65536  # bytes of an HTTP answer's body (the ones called are a few hundred)


@dataclass(frozen=True)
class Call:
    """One round trip: when it started and ended (``time.monotonic()``), how long it took
    (the timeout, for one that timed out), and its error."""

    started: float
    ended: float
    ms: float
    error: str | None


class Series:
    """The calls to one service: written by the steady thread, read by the front's loop."""

    def __init__(self, maxlen: int) -> None:
        self._calls: deque[Call] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.waiting_since: float | None = None  # the call in flight started then

    def add(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def started_between(self, start: float, end: float) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if start <= c.started < end]

    def ended_since(self, since: float) -> list[Call]:
        with self._lock:
            recent = []
            for call in reversed(self._calls):
                if call.ended < since:
                    break
                recent.append(call)
            return recent

    def picture(self, now: float) -> dict[str, Any]:
        return summary(self.ended_since(now - WINDOW), self.waiting_since, now)


def summary(
    calls: list[Call], waiting_since: float | None = None, now: float | None = None
) -> dict[str, Any]:
    """``{"p50_ms", "max_ms", "calls", "errors", "last_error", "in_flight_ms"}`` of `calls`."""
    times = [c.ms for c in calls]
    failed = [c for c in calls if c.error is not None]
    last = max(failed, key=lambda c: c.ended).error if failed else None
    waiting = None
    if waiting_since is not None and now is not None:
        waiting = round(max(0.0, now - waiting_since) * 1000, 1)
    return {
        "p50_ms": round(statistics.median(times), 3) if times else None,
        "max_ms": round(max(times), 3) if times else None,
        "calls": len(calls),
        "errors": len(failed),
        "last_error": last,
        "in_flight_ms": waiting,
    }


def off_picture() -> dict[str, Any]:
    return summary([])


class Caller(Protocol):
    """One service's call: raises on any failure; ``reset()`` after one (the connection's
    state is unknown), ``close()`` at the end."""

    async def __call__(self) -> None: ...

    def reset(self) -> None: ...

    async def close(self) -> None: ...


class TcpEchoCaller:
    """A few bytes echoed over one connection, opened with the probe mark."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._count = 0

    async def __call__(self) -> None:
        self._count += 1
        payload = b"steady %d" % self._count
        if self._conn is None:
            self._conn = await asyncio.open_connection(self.host, self.port)
            payload = probes.marked(payload)  # a connection's first bytes mark it
        reader, writer = self._conn
        writer.write(payload)
        if await reader.readexactly(len(payload)) != payload:
            raise ValueError("the echo differs")

    def reset(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None

    async def close(self) -> None:
        self.reset()


class _Datagrams(asyncio.DatagramProtocol):
    """A connected datagram endpoint awaiting one reply at a time: the first datagram that
    ``matches`` (a late reply to an earlier call does not)."""

    def __init__(self) -> None:
        self.matches: Callable[[bytes], bool] = lambda data: False
        self.reply: asyncio.Future[bytes] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.reply is not None and not self.reply.done() and self.matches(data):
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(exc)


class DatagramCaller:
    """One datagram sent, its reply awaited, over a connected endpoint kept between calls."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._endpoint: tuple[asyncio.DatagramTransport, _Datagrams] | None = None

    async def ask(self, data: bytes, matches: Callable[[bytes], bool]) -> bytes:
        if self._endpoint is None:
            loop = asyncio.get_running_loop()
            self._endpoint = await loop.create_datagram_endpoint(  # type: ignore[assignment]
                _Datagrams, remote_addr=(self.host, self.port)
            )
        assert self._endpoint is not None
        transport, protocol = self._endpoint
        protocol.matches = matches
        protocol.reply = asyncio.get_running_loop().create_future()
        transport.sendto(data)
        return await protocol.reply

    def reset(self) -> None:
        if self._endpoint is not None:
            self._endpoint[0].close()
            self._endpoint = None

    async def close(self) -> None:
        self.reset()


class UdpEchoCaller(DatagramCaller):
    """One marked datagram, its echo awaited."""

    _count = 0

    async def __call__(self) -> None:
        self._count += 1
        payload = probes.marked(b"steady %d" % self._count)
        await self.ask(payload, payload.__eq__)


# the stack's DNS question as bytes, once: each call only puts its own id in front
_QUESTION = dns_probe.question(0)


class DnsCaller(DatagramCaller):
    """The stack's DNS question (``services.common.dns_probe``) and its verdict."""

    _count = 0

    async def __call__(self) -> None:
        self._count += 1
        query = struct.pack("!H", self._count & 0xFFFF) + _QUESTION[2:]
        reply = await self.ask(query, lambda data: data[:2] == query[:2])
        wrong = dns_probe.verdict(query, reply)
        if wrong is not None:
            raise ValueError(wrong)


class HttpCaller:
    """One HTTP/1.1 request over a keep-alive connection of its own, its answer read by
    ``check(status, body)``. Raw, as the replica probes are: the answers are small and
    always carry a Content-Length, and a client library would cost more than the call."""

    def __init__(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        body: Any,
        check: Callable[[int, bytes], str | None],
    ) -> None:
        self.host, self.port, self.check = host, port, check
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {_url_host(host)}:{port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        self.request = (head + "\r\n").encode() + data
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def __call__(self) -> None:
        if self._conn is None:
            self._conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._conn
        writer.write(self.request)
        status_line = await reader.readline()  # HTTP/1.1 200 OK
        words = status_line.split(b" ", 2)
        if len(words) < 2 or not words[1].isdigit():
            raise ValueError(f"answered {status_line[:40]!r}")
        status = int(words[1])
        length, close = None, False
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if length is None or not 0 <= length <= MAX_ANSWER:
            raise ValueError(f"answered {status} without a usable Content-Length")
        body = await reader.readexactly(length)
        if close:
            self.reset()
        wrong = self.check(status, body)
        if wrong is not None:
            raise ValueError(wrong)

    def reset(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None

    async def close(self) -> None:
        self.reset()


def _resolved(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"answered {status}"
    try:
        result = json.loads(body)["results"][0]
        error = result["error"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "answered something unreadable"
    return None if error is None else f"answered {error}"


def _pong(status: int, body: bytes) -> str | None:
    return None if status == 200 else f"answered {status}"


def callers(config: WebConfig) -> dict[str, Callable[[], Caller]]:
    """How to call each service of the catalogue, from `config`'s addresses."""
    resolve = {"names": [probes.NAME], "timeout": config.steady_timeout, "mode": "concurrent"}
    made: dict[str, Callable[[], Caller]] = {
        "tcp-echo": lambda: TcpEchoCaller(*config.address("tcp-echo")),
        "udp-echo": lambda: UdpEchoCaller(*config.address("udp-echo")),
        "resolver": lambda: HttpCaller(
            *config.address("resolver"), "POST", "/resolve", resolve, _resolved
        ),
        "dns": lambda: DnsCaller(*config.address("dns")),
        "web": lambda: HttpCaller(front_host(config), config.port, "GET", PING, None, _pong),
    }
    return {name: made[name] for name in NAMES}


def front_host(config: WebConfig) -> str:
    """Where the front is reached from its own process: loopback when it listens everywhere."""
    host = config.listen_host
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValueError):  # a wrong answer: say what was wrong with it
        return str(exc)[:200] or "a wrong answer"
    return describe(exc)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class SteadyClient:
    """The calls, in a thread with its own asyncio loop; ``start()`` then ``stop()``."""

    def __init__(
        self,
        make: dict[str, Callable[[], Caller]],
        *,
        rate: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make = make
        self.period = 1.0 / rate
        self._periods = dict.fromkeys(make, self.period)  # read by the steady thread
        self.timeout = timeout
        self._clock = clock
        maxlen = int(HISTORY * max(rate, FOCUS_RATE) * (1 + JITTER)) + 1
        self.series = {name: Series(maxlen) for name in make}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._bug_logged = False
        self._origin = clock()
        self._schedules: dict[float, list[float]] = {}  # period -> its next few ticks

    def picture(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        return {name: series.picture(now) for name, series in self.series.items()}

    def focus(self, name: str | None) -> None:
        """Call `name` FOCUS_RATE times a second from now on (None: every service back to
        the steady rate): an experiment's service, measured closely while it runs."""
        for each in self._periods:
            focused = min(self.period, 1.0 / FOCUS_RATE)  # never slower than the steady rate
            self._periods[each] = focused if each == name else self.period

    def calls(self, name: str, start: float, end: float) -> list[Call]:
        """The calls to `name` started in [start, end) (``time.monotonic()`` seconds)."""
        return self.series[name].started_between(start, end)

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._task = loop.create_task(self._run())
        self._thread = threading.Thread(target=self._main, name="steady-client", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Cancel every call, close every connection; waits for the thread (bounded)."""
        if self._loop is None or self._task is None or self._thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            log.warning("steady client did not stop in time", extra={"timeout_s": STOP_TIMEOUT})

    def _main(self) -> None:
        assert self._loop is not None and self._task is not None
        asyncio.set_event_loop(self._loop)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                self._loop.run_until_complete(self._task)
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _run(self) -> None:
        made = {name: make() for name, make in self._make.items()}
        try:
            async with asyncio.TaskGroup() as group:
                for name, caller in made.items():
                    group.create_task(self._serve(name, caller))
        finally:
            for caller in made.values():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(caller.close(), STOP_TIMEOUT / 2)

    def _next_tick(self, period: float, now: float) -> float:
        """The first tick after `now` of the schedule of `period`: each tick one period after
        the last, moved by up to ±10 % (drawn once per tick: the schedule drifts, so it never
        phase-locks with a fault that repeats every second). Every service on the same
        period calls at the same ticks, so that one wake-up of this thread serves them all
        (at a few calls a second, the wake-ups are most of what the client costs)."""
        ticks = self._schedules.setdefault(period, [self._origin])
        while ticks[-1] <= now:
            ticks.append(ticks[-1] + period * random.uniform(1 - JITTER, 1 + JITTER))
        del ticks[:-8]  # the services on this period are a few ticks apart at most
        return next(tick for tick in ticks if tick > now)

    async def _serve(self, name: str, call: Caller) -> None:
        series = self.series[name]
        # the first call a period after the start: the front itself is listening by then
        now = self._clock()
        await asyncio.sleep(self._next_tick(self._periods[name], now + self.period / 2) - now)
        while True:
            started = self._clock()
            series.waiting_since = started
            error = None
            spent: float | None = None
            try:
                async with asyncio.timeout(self.timeout):
                    await call()
            except TimeoutError:
                error, spent = f"no answer within {self.timeout:g} s", self.timeout
            except (OSError, EOFError, ValueError) as exc:
                error = _describe(exc)
            except Exception as exc:  # a bug must not stop the calls for good: logged once
                error = f"unexpected {type(exc).__name__}"
                if not self._bug_logged:
                    self._bug_logged = True
                    log.exception("steady call failed unexpectedly")
            ended = self._clock()
            series.waiting_since = None
            if error is not None:
                call.reset()
            if spent is None:
                spent = min(ended - started, self.timeout)
            series.add(Call(started, ended, spent * 1000, error))
            now = self._clock()
            await asyncio.sleep(self._next_tick(self._periods[name], now) - now)


STEADY = web.AppKey("steady_client", SteadyClient)


async def steady_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the steady client runs while the app does (unless ``WEB_STEADY=0``)."""
    config = app[CONFIG]
    client = SteadyClient(callers(config), rate=config.steady_rate, timeout=config.steady_timeout)
    app[STEADY] = client
    client.start()
    log.info(
        "steady client started",
        extra={"rate": config.steady_rate, "timeout_s": config.steady_timeout},
    )
    yield
    await asyncio.to_thread(client.stop)
