"""The front's HTTP API, declared with the book's ``RouteTableDef``.

Try it:
  curl -s http://127.0.0.1:8080/readyz
  curl -s http://127.0.0.1:8080/api/live
  curl -s -d '{"message": "hello"}' http://127.0.0.1:8080/api/echo/tcp
  curl -s -d '{"names": ["www.polyloop.test"]}' http://127.0.0.1:8080/api/resolve
  curl -s -d '{"message": "hi", "names": ["host-1.polyloop.test"]}' \
       http://127.0.0.1:8080/api/fanout
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.web import validation
from services.web.errors import Problem
from services.web.health import check_backends
from services.web.keys import CLIENTS, CONFIG, METRICS
from services.web.live import live_picture
from services.web.openapi import openapi_document

routes = web.RouteTableDef()


@routes.get("/healthz", name="healthz")
async def healthz(request: web.Request) -> web.Response:
    """The front itself is serving (it says nothing about the backends: see /readyz)."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz", name="readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 when every backend answers a real round trip, else 503; each one named."""
    backends = await check_backends(request.app)
    ready = all(check["state"] == "up" for check in backends.values())
    body = {"status": "ready" if ready else "unavailable", "backends": backends}
    return web.json_response(body, status=200 if ready else 503)


@routes.post("/api/echo/tcp", name="echo_tcp")
async def echo_tcp(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    body = await validation.json_object(request, config)
    data = validation.message(body, config.max_message)
    return web.json_response(await _timed_echo(request.app[CLIENTS].echo_tcp, data))


@routes.post("/api/echo/udp", name="echo_udp")
async def echo_udp(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    body = await validation.json_object(request, config)
    data = validation.message(body, config.udp_max_message, datagram=config.udp_max_datagram)
    return web.json_response(await _timed_echo(request.app[CLIENTS].echo_udp, data))


@routes.post("/api/resolve", name="resolve")
async def resolve(request: web.Request) -> web.Response:
    """The resolver's request in, its answer out, unchanged."""
    config = request.app[CONFIG]
    body = await validation.json_object(request, config)
    resolve_request = validation.resolve_request(body, config)
    answer = await request.app[CLIENTS].resolve(resolve_request)
    return web.json_response(answer)


@routes.post("/api/fanout", name="fanout")
async def fanout(request: web.Request) -> web.Response:
    """TCP echo, UDP echo and resolve at once; a failed part is a problem in its own slot."""
    config = request.app[CONFIG]
    body = await validation.json_object(request, config)
    data = validation.message(body, config.udp_max_message, datagram=config.udp_max_datagram)
    resolve_request = validation.resolve_request({**body, "mode": "concurrent"}, config)
    clients = request.app[CLIENTS]
    start = time.perf_counter()
    parts = {
        "tcp": _timed_echo(clients.echo_tcp, data),
        "udp": _timed_echo(clients.echo_udp, data),
        "resolve": clients.resolve(resolve_request),
    }
    outcomes = await asyncio.gather(*parts.values(), return_exceptions=True)
    results: dict[str, Any] = {}
    failed: list[str] = []
    for part, outcome in zip(parts, outcomes, strict=True):
        if isinstance(outcome, Problem):
            results[part] = outcome.body(f"/api/fanout#{part}")
            failed.append(part)
        elif isinstance(outcome, BaseException):
            raise outcome  # a bug, not a backend failure: the middleware's 500
        else:
            results[part] = outcome
    return web.json_response(
        {**results, "failed": failed, "elapsed_ms": _ms_since(start)},
    )


@routes.get("/metrics", name="metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this app's own registry."""
    payload = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=payload)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@routes.get("/api/live", name="api_live")
async def api_live(request: web.Request) -> web.Response:
    """What the dashboard shows: every service's own rate and loop lag, the front's view."""
    return web.json_response(live_picture(request.app))


@routes.get("/api/openapi.json", name="openapi")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[CONFIG]))


async def _timed_echo(echo: Callable[[bytes], Awaitable[bytes]], data: bytes) -> dict[str, Any]:
    start = time.perf_counter()
    reply = await echo(data)
    return {"echo": reply.decode(), "bytes": len(reply), "latency_ms": _ms_since(start)}


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
