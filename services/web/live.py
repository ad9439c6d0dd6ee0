"""The dashboard page and its live feed over WebSocket.

As aiohttp-demos ``demos/chat`` does (the routes are in ``routes.py``'s table):

- ``GET /`` (``index``) — the dashboard (``static/index.html``; the app's strict CSP applies),
- ``/static/`` (``STATIC_DIR``) — its script, style and icons, and under ``vendor/`` the chart
  library uPlot (``make vendor``; a missing copy is logged at start); nothing is fetched
  elsewhere,
- ``GET /ws/live`` (``subscribe``) — a one-way WebSocket that receives one JSON message a second::

      {"type": "stats", "ts": <unix seconds>,
       "stats": {backend: {rps, errors_per_s, p50_ms, p95_ms, p99_ms, total, errors_total}},
       "backends": {backend: {state, latency_ms, error}},
       "services": {service: {state, rate, lag_p99_ms, blocked_ms, error, metrics, stalls,
                              steady}}}

``stats`` are the front's own measurements of its backend calls (``app[STATS]``);
``backends`` their states from the injected checker (``check_backends``: a real round trip
each), refreshed every two seconds while someone watches; ``services`` is what every
service says of itself on its metrics port (``services.web.scrape``): ``rate`` is what it
served to others (the stack's own probes apart, ``services.common.probes``), with where its
loop blocked (``stalls``: the stall in progress and the last three, their stacks cut to the
innermost frames; ``GET /api/stalls`` has them whole), and ``steady``: the front's steady
client's round trips to it over the last second (``steady.py``).
``live_picture(app)`` is the same as one JSON object, served at ``GET /api/live``.
``setup_live(app, check=...)`` sets up the feed and its tasks.

The feed is bounded: at most ``WEB_LIVE_MAX_CLIENTS`` subscribers, and at most
``WEB_LIVE_MAX_PER_SOURCE`` from one client address, so one source cannot lock every
dashboard out (the next one is closed with 1013, try again later); a client message over
``WEB_LIVE_MAX_MESSAGE`` bytes closes it with 1009 (one of exactly that many is read), and
each subscriber has its own sender holding only the newest message, so a client that stops
reading is dropped after ``WEB_LIVE_SEND_TIMEOUT`` without ever holding up the others. A
subscription from another site's page, or naming a foreign ``Host``, is refused before the
handshake (``origin.py``).

Try it: open http://127.0.0.1:8080/ in a browser; the feed alone:
``websocat ws://127.0.0.1:8080/ws/live``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, web

from services.common.loops.asyncio import loop_name
from services.web.health import check_backends
from services.web.keys import CONFIG, STATS
from services.web.operations import answer, operation, websocket
from services.web.scrape import SCRAPER, scrape_ctx
from services.web.security import SECURITY_HEADERS
from services.web.steady import STEADY, off_picture

STATIC_DIR = Path(__file__).resolve().parent / "static"
# the chart library, copied there by scripts/vendor-js.sh (`make vendor`) from the pin in
# requirements/js; never fetched at page load
VENDOR_DIR = STATIC_DIR / "vendor"
VENDORED = ("uPlot.iife.min.js", "uPlot.min.css")
PUSH_EVERY = 1.0
CHECK_EVERY = 2.0
REFUSED_LOG_EVERY = 10.0  # seconds: one summary line for a burst of refused clients

log = logging.getLogger(__name__)

Checker = Callable[[web.Application], Awaitable[dict[str, Any]]]


class Subscriber:
    """One feed client: the newest message it has not been sent yet, and its own sender.

    The feed is a snapshot a second, so a message that a newer one replaces before it was
    sent is worth nothing: holding only the newest bounds what a slow client costs.
    """

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, timeout: float) -> None:
        self.ws = ws
        self.source = request.remote or ""
        self._request = request
        self._timeout = timeout
        self._pending: str | None = None
        self._ready = asyncio.Event()

    def offer(self, data: str) -> None:
        """Replace whatever was waiting with `data`; never waits."""
        self._pending = data
        self._ready.set()

    async def send_forever(self) -> None:
        """Send each newest message; a send that takes longer than the timeout drops the client."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            data, self._pending = self._pending, None
            if data is None or self.ws.closed:
                continue
            try:
                await asyncio.wait_for(self.ws.send_str(data), self._timeout)
            except (ConnectionError, RuntimeError) as exc:
                log.info("live client gone", extra={"error": repr(exc)})
                self.abort()
                return
            except TimeoutError:
                # a client that has not read for this long will not read a close frame
                # either: abort (a plain close keeps the socket until its buffer drains)
                log.info("live client not reading: dropped", extra={"timeout_s": self._timeout})
                self.abort()
                return

    def abort(self) -> None:
        """Drop the TCP connection at once, with whatever it had not sent."""
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def close(self, code: int, message: bytes = b"") -> None:
        """Close with `code`, bounded by the send timeout (then aborted)."""
        await close_within(self.ws, self._request, self._timeout, code, message)


async def close_within(
    ws: web.WebSocketResponse, request: web.Request, timeout: float, code: int, message: bytes
) -> None:
    """``ws.close(code)`` bounded by `timeout`; a close that did not finish, or left bytes
    unsent, ends with the TCP connection aborted (a plain close would keep the socket and its
    buffer until the peer reads)."""
    transport = request.transport
    try:
        await asyncio.wait_for(ws.close(code=code, message=message), timeout)
    except (TimeoutError, ConnectionError):
        pass
    except asyncio.CancelledError:
        # aiohttp's drain waits share one future: once an earlier wait on it was cancelled
        # (a send timeout), close() raises CancelledError too. Pass on only our own.
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    finally:
        if transport is not None and (not ws.closed or transport.get_write_buffer_size()):
            transport.abort()


class LiveFeed:
    """The subscribers, the last backend states, and the checker that refreshes them."""

    def __init__(
        self,
        check: Checker,
        *,
        max_clients: int,
        max_message: int,
        send_timeout: float,
        max_per_source: int | None = None,
    ) -> None:
        self.check = check
        self.max_clients = max_clients
        self.max_per_source = max_per_source or max_clients
        self.per_source: dict[str, int] = {}
        self.max_message = max_message
        self.send_timeout = send_timeout
        self.subscribers: set[Subscriber] = set()
        self.backends: dict[str, Any] = {}
        self.watched = asyncio.Event()  # set while there is at least one subscriber
        self._refused = 0
        self._refused_logged_at = -REFUSED_LOG_EVERY

    def full_for(self, source: str) -> bool:
        """No room: the feed is full, or `source` has its share already."""
        return (
            len(self.subscribers) >= self.max_clients
            or self.per_source.get(source, 0) >= self.max_per_source
        )

    def add(self, subscriber: Subscriber) -> None:
        self.subscribers.add(subscriber)
        self.per_source[subscriber.source] = self.per_source.get(subscriber.source, 0) + 1
        self.watched.set()

    def discard(self, subscriber: Subscriber) -> None:
        if subscriber not in self.subscribers:
            return
        self.subscribers.discard(subscriber)
        left = self.per_source.pop(subscriber.source, 1) - 1
        if left:
            self.per_source[subscriber.source] = left
        if not self.subscribers:
            self.watched.clear()

    def publish(self, data: str) -> None:
        """Offer `data` to every subscriber; returns at once whatever their sockets do."""
        for subscriber in self.subscribers:
            subscriber.offer(data)

    def refused(self) -> None:
        """Count a client refused at the cap; log once per burst, not once per client."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged_at >= REFUSED_LOG_EVERY:
            log.warning(
                "live clients refused at the cap",
                extra={
                    "refused": self._refused,
                    "max_clients": self.max_clients,
                    "max_per_source": self.max_per_source,
                },
            )
            self._refused = 0
            self._refused_logged_at = now


LIVE = web.AppKey("live_feed", LiveFeed)


@operation(
    "The live dashboard (HTML)",
    {
        200: answer("The page", "text/html"),
        206: answer("A byte range of the page (Range)", "text/html"),
        304: answer("Unchanged since the client's copy (If-None-Match, If-Modified-Since)"),
        412: answer("If-Match or If-Unmodified-Since does not hold"),
        416: answer("The Range is outside the page"),
    },
)
async def index(request: web.Request) -> web.FileResponse:
    """The dashboard page (its CSP, set on every response by ``app.security_headers``,
    forbids anything not served by this front)."""
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@websocket(
    "WebSocket (RFC 6455), one-way: one JSON message a second, "
    '`{"type": "stats", "ts", "stats", "backends", "services"}` '
    "(`services` as in GET /api/live, each with `stalls`: the stall in progress and the "
    "last three, stacks cut to their innermost frames; `steady`: the steady client's "
    "round trips of the last second). At most WEB_LIVE_MAX_CLIENTS clients, "
    "WEB_LIVE_MAX_PER_SOURCE from one address (the next is closed with 1013); a client "
    "message over WEB_LIVE_MAX_MESSAGE bytes closes it with 1009. A handshake naming a "
    "foreign Host is refused with 421, one from another site's page (Origin) with 403."
)
async def subscribe(request: web.Request) -> web.WebSocketResponse:
    """Subscribe to the feed; the client only listens (what it sends is read and ignored)."""
    feed = request.app[LIVE]
    # compress=False: a deflate context costs ~256 KiB per client, and every client gets
    # the same bytes anyway; timeout bounds the wait for a client's close reply; aiohttp
    # refuses a message AT max_msg_size, the limit is what may be sent: one more
    ws = web.WebSocketResponse(
        heartbeat=30.0,
        max_msg_size=feed.max_message + 1,
        timeout=feed.send_timeout,
        compress=False,
    )
    # prepared here, not by the front's middleware: the handshake gets them before it goes
    ws.headers.update(SECURITY_HEADERS)
    if feed.full_for(request.remote or ""):
        feed.refused()
        await ws.prepare(request)
        await close_within(
            ws, request, feed.send_timeout, WSCloseCode.TRY_AGAIN_LATER, b"too many live clients"
        )
        return ws
    subscriber = Subscriber(ws, request, feed.send_timeout)
    feed.add(subscriber)  # before prepare() yields, so a burst of handshakes cannot pass the cap
    try:
        await ws.prepare(request)
        sender = asyncio.create_task(subscriber.send_forever())
        try:
            # reading keeps pings and the close handshake going; a message over
            # max_msg_size makes aiohttp close with 1009 instead of buffering it
            with contextlib.suppress(ConnectionError):
                async for _message in ws:
                    pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
    finally:
        feed.discard(subscriber)
    return ws


def services_picture(app: web.Application) -> dict[str, dict[str, Any]]:
    """Every service as it says of itself (``scrape.py``), with the steady client's round
    trips to it over the last second (``steady.py``; null figures when it is off)."""
    services = app[SCRAPER].picture()
    steady = app[STEADY].picture() if STEADY in app else {}
    for name, picture in services.items():
        picture["steady"] = steady.get(name) or off_picture()
    return services


def live_picture(app: web.Application) -> dict[str, Any]:
    """What the dashboard shows, as ``GET /api/live`` returns it."""
    return {
        "services": services_picture(app),
        "front": {
            "stats": app[STATS].snapshot(),
            "backends": app[LIVE].backends,
            # whose event loop serves the front: "asyncio" or "uvloop" (WEB_LOOP)
            "loop": loop_name(asyncio.get_running_loop()),
        },
        "ts": time.time(),
    }


def _message(app: web.Application) -> dict[str, Any]:
    return {
        "type": "stats",
        "ts": time.time(),
        "stats": app[STATS].snapshot(),
        "backends": app[LIVE].backends,
        "services": services_picture(app),
    }


async def _every(period: float, work: Callable[[], Awaitable[None]]) -> None:
    # a fixed schedule, so that a slow round does not drift the charts
    loop = asyncio.get_running_loop()
    next_tick = loop.time()
    while True:
        await work()
        next_tick = max(next_tick + period, loop.time())
        await asyncio.sleep(next_tick - loop.time())


async def _refresh_states(app: web.Application) -> None:
    """Backend states every CHECK_EVERY seconds, only while someone watches (each check is
    real traffic to every backend)."""
    feed = app[LIVE]
    loop = asyncio.get_running_loop()
    while True:
        await feed.watched.wait()
        started = loop.time()
        try:
            feed.backends = await feed.check(app)
        except Exception as exc:  # noqa: BLE001 -- any failure keeps the last states, logged
            log.warning("backend check failed", extra={"error": repr(exc)})
        await asyncio.sleep(max(0.0, CHECK_EVERY - (loop.time() - started)))


async def _push(app: web.Application) -> None:
    """One message a second to every subscriber."""
    feed = app[LIVE]

    async def push() -> None:
        if feed.subscribers:
            feed.publish(json.dumps(_message(app)))

    await _every(PUSH_EVERY, push)


async def _feed(app: web.Application) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(_refresh_states(app)), asyncio.create_task(_push(app))]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _close_subscribers(app: web.Application) -> None:
    await asyncio.gather(  # each close is bounded by the send timeout
        *(s.close(WSCloseCode.GOING_AWAY, b"Server shutdown") for s in set(app[LIVE].subscribers))
    )


def missing_vendored() -> list[str]:
    """The dashboard's vendored files that are not in ``VENDOR_DIR`` (empty counts as missing)."""
    return [
        name
        for name in VENDORED
        if not (VENDOR_DIR / name).is_file() or not (VENDOR_DIR / name).stat().st_size
    ]


def setup_live(app: web.Application, check: Checker = check_backends) -> None:
    """Set up the live feed and the metrics scraper on `app` (needs app[STATS] and
    app[CONFIG]); `check` gives the backends' states."""
    config = app[CONFIG]
    missing = missing_vendored()
    if missing:
        # the page says it too; the API and the feed work without them
        log.error(
            "the dashboard's chart library is missing: run `make vendor` "
            "(scripts/vendor-js.sh) before starting the front or building its image",
            extra={"directory": str(VENDOR_DIR), "missing": missing},
        )
    app[LIVE] = LiveFeed(
        check,
        max_clients=config.live_max_clients,
        max_per_source=config.live_max_per_source,
        max_message=config.live_max_message,
        send_timeout=config.live_send_timeout,
    )
    app.cleanup_ctx.append(scrape_ctx)
    app.cleanup_ctx.append(_feed)
    app.on_shutdown.append(_close_subscribers)
