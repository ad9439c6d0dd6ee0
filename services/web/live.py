"""The dashboard page and its live feed over WebSocket.

``setup_live(app)`` adds, as aiohttp-demos ``demos/chat`` does:

- ``GET /`` — the dashboard (``static/index.html``; the app's strict CSP applies),
- ``/static/`` — its script, style and icons (nothing is fetched from elsewhere),
- ``GET /ws/live`` — a WebSocket that receives one JSON message a second::

      {"type": "stats", "ts": <unix seconds>,
       "stats": {backend: {rps, errors_per_s, p50_ms, p95_ms, p99_ms, total, errors_total}},
       "backends": {backend: {state, latency_ms, error}}}

The numbers are the front's own measurements of its backend calls (``app[STATS]``);
backend states come from ``check_backends``, run at most every two seconds.

Try it: open http://127.0.0.1:8080/ in a browser; the feed alone:
``websocat ws://127.0.0.1:8080/ws/live``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, web

from services.web.health import check_backends
from services.web.keys import STATS

STATIC_DIR = Path(__file__).resolve().parent / "static"
PUSH_EVERY = 1.0
CHECK_EVERY = 2.0
SEND_TIMEOUT = 2.0

log = logging.getLogger(__name__)

SOCKETS = web.AppKey("live_sockets", weakref.WeakSet[web.WebSocketResponse])


async def index(request: web.Request) -> web.FileResponse:
    """The dashboard page (its CSP, set on every response by ``app.security_headers``,
    forbids anything not served by this front)."""
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def live(request: web.Request) -> web.WebSocketResponse:
    """Subscribe to the feed; the client only listens (anything it sends is ignored)."""
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    try:
        async for _message in ws:
            pass  # the feed is one-way; reading keeps the close handshake and pings going
    finally:
        sockets.discard(ws)
    return ws


async def _check(app: web.Application) -> dict[str, Any]:
    return await check_backends(app)


async def _broadcast(app: web.Application, message: dict[str, Any]) -> None:
    data = json.dumps(message)
    sockets = [ws for ws in app[SOCKETS] if not ws.closed]

    async def send(ws: web.WebSocketResponse) -> None:
        try:
            await asyncio.wait_for(ws.send_str(data), SEND_TIMEOUT)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            # a client that cannot keep up or went away is dropped, not waited for
            log.info("live socket dropped", extra={"error": repr(exc)})
            app[SOCKETS].discard(ws)
            await ws.close(code=WSCloseCode.GOING_AWAY)

    await asyncio.gather(*(send(ws) for ws in sockets))


async def _push_forever(app: web.Application) -> None:
    """One message a second to every open socket; backend checks every CHECK_EVERY at most."""
    loop = asyncio.get_running_loop()
    backends: dict[str, Any] = {}
    check: asyncio.Task[dict[str, Any]] | None = None
    checked_at = -CHECK_EVERY
    next_tick = loop.time()
    try:
        while True:
            if app[SOCKETS]:
                if check is None and loop.time() - checked_at >= CHECK_EVERY:
                    checked_at = loop.time()
                    check = asyncio.create_task(_check(app))
                if check is not None and not backends:
                    # first message: wait (briefly) for states rather than show none
                    await asyncio.wait({check}, timeout=PUSH_EVERY)
                if check is not None and check.done():
                    backends = _result(check, backends)
                    check = None
                await _broadcast(
                    app,
                    {
                        "type": "stats",
                        "ts": time.time(),
                        "stats": app[STATS].snapshot(),
                        "backends": backends,
                    },
                )
            # tick on a fixed schedule so a slow send or check does not drift the charts
            next_tick = max(next_tick + PUSH_EVERY, loop.time())
            await asyncio.sleep(next_tick - loop.time())
    finally:
        if check is not None:
            check.cancel()


def _result(check: asyncio.Task[dict[str, Any]], last: dict[str, Any]) -> dict[str, Any]:
    if check.cancelled():
        return last
    exc = check.exception()
    if exc is not None:
        log.warning("backend check failed", extra={"error": repr(exc)})
        return last
    return check.result()


async def _feed(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_push_forever(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_sockets(app: web.Application) -> None:
    for ws in set(app[SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"Server shutdown")


def setup_live(app: web.Application) -> None:
    """Register the dashboard, its static files and the live feed on `app` (needs app[STATS])."""
    app[SOCKETS] = weakref.WeakSet()
    app.router.add_get("/", index, name="dashboard")
    app.router.add_static("/static/", STATIC_DIR, name="static")
    app.router.add_get("/ws/live", live, name="live")
    app.cleanup_ctx.append(_feed)
    app.on_shutdown.append(_close_sockets)
