"""The front's one URL table, the book's ``RouteTableDef``: every route ``create_app`` serves.

Each handler carries its OpenAPI operation (``@operation``, see ``operations.py``), from
which ``openapi.py`` writes ``GET /api/openapi.json``. The handlers of the dashboard and of
the fault API live beside what they serve (``live.py``, ``faults.py``) and are registered
here, the dashboard's first, the fault API's and the experiments' last; the rest are defined
here.

Try it:
  curl -s http://127.0.0.1:8080/readyz
  curl -s http://127.0.0.1:8080/api/live
  curl -s http://127.0.0.1:8080/api/stalls
  curl -s http://127.0.0.1:8080/api/stack
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

from services.common.catalogue import SERVICES
from services.web import experiments, faults, live, validation
from services.web.backends.call import PROBLEMS as BACKEND_PROBLEMS
from services.web.errors import Problem
from services.web.health import check_backends
from services.web.keys import CLIENTS, CONFIG, METRICS, OPENAPI, WATCH
from services.web.metrics import PING
from services.web.operations import answer, json_answer, operation
from services.web.scrape import SCRAPER
from services.web.steady import STEADY

routes = web.RouteTableDef()

# the dashboard, its files and its live feed (live.py)
routes.get("/", name="dashboard")(live.index)
routes.static("/static/", live.STATIC_DIR, name="static")
routes.get("/ws/live", name="live")(live.subscribe)

ECHOED = {200: json_answer("The echo", "EchoResult")}
# what a route that reads a JSON body, then calls a backend, can raise
CALLS = validation.PROBLEMS + BACKEND_PROBLEMS


@routes.get("/healthz", name="healthz")
@operation("The front is serving", {200: json_answer("Serving", "Health")})
async def healthz(request: web.Request) -> web.Response:
    """The front itself is serving (it says nothing about the backends: see /readyz)."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz", name="readyz")
@operation(
    "Every backend answers a real round trip",
    {
        200: json_answer("All four backends are up", "Readiness"),
        503: json_answer("At least one backend is down", "Readiness"),
    },
)
async def readyz(request: web.Request) -> web.Response:
    """200 when every backend answers a real round trip, else 503; each one named."""
    backends = await check_backends(request.app)
    ready = all(check["state"] == "up" for check in backends.values())
    body = {"status": "ready" if ready else "unavailable", "backends": backends}
    return web.json_response(body, status=200 if ready else 503)


@routes.post("/api/echo/tcp", name="echo_tcp")
@operation("Echo a message via tcp-echo", ECHOED, body="EchoRequest", problems=CALLS)
async def echo_tcp(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    body = await validation.json_object(request, config)
    data = validation.message(body, config.max_message)
    return web.json_response(await _timed_echo(request.app[CLIENTS].echo_tcp, data))


@routes.post("/api/echo/udp", name="echo_udp")
@operation("Echo a message via udp-echo", ECHOED, body="UdpEchoRequest", problems=CALLS)
async def echo_udp(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    body = await validation.json_object(request, config)
    data = validation.message(body, config.udp_max_message, datagram=config.udp_max_datagram)
    return web.json_response(await _timed_echo(request.app[CLIENTS].echo_udp, data))


@routes.post("/api/resolve", name="resolve")
@operation(
    "Resolve names via the resolver",
    {200: json_answer("The resolver's answer", "ResolveAnswer")},
    body="ResolveRequest",
    problems=CALLS,
)
async def resolve(request: web.Request) -> web.Response:
    """The resolver's request in, its answer out, unchanged."""
    config = request.app[CONFIG]
    body = await validation.json_object(request, config)
    resolve_request = validation.resolve_request(body, config)
    answer = await request.app[CLIENTS].resolve(resolve_request)
    return web.json_response(answer)


@routes.post("/api/fanout", name="fanout")
@operation(
    "TCP echo, UDP echo and resolve concurrently",
    {200: json_answer("One slot per part, a failed part as its problem", "FanoutResult")},
    body="FanoutRequest",
    problems=validation.PROBLEMS,
)
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


@routes.get(PING, name="ping")
@operation(
    "The steady client's call: answered at once, under the front's own faults",
    {200: json_answer("Pong", "Pong")},
)
async def ping(request: web.Request) -> web.Response:
    """What the steady client (``steady.py``) asks the front a few times a second: no work
    at all, so its round trip is the front's loop (and a fault of ``web``). Counted apart
    (``polyloop_probes_total``), never as served, never in the access log."""
    return web.json_response({"pong": True})


@routes.get("/api/stack", name="stack")
@operation(
    "The stack's services, in the map's order (the catalogue)",
    {200: json_answer("Each service, its loop and where the front reaches it", "Stack")},
)
async def stack(request: web.Request) -> web.Response:
    """The five services from ``services.common.catalogue``, each with the port the front
    reaches it on; the front's own event loop; the steady client's settings."""
    config = request.app[CONFIG]
    loop = asyncio.get_running_loop()
    services = [
        {
            "name": s.name,
            "loop": s.loop,
            "framework": s.framework,
            "port": config.port if s.name == "web" else config.address(s.name)[1],
            "transport": s.transport,
            "backend": s.backend,
        }
        for s in SERVICES
    ]
    return web.json_response(
        {
            "services": services,
            "front_loop": "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio",
            "steady": {
                "enabled": STEADY in request.app,
                "rate": config.steady_rate,
                "timeout_s": config.steady_timeout,
            },
        }
    )


@routes.get("/metrics", name="metrics")
@operation("Prometheus metrics of the front", {200: answer("Text exposition", "text/plain")})
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this app's own registry."""
    payload = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=payload)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@routes.get("/api/live", name="api_live")
@operation(
    "Every service's own rate and loop lag, and the front's view of its backends",
    {200: json_answer("What the dashboard shows", "Live")},
)
async def api_live(request: web.Request) -> web.Response:
    """What the dashboard shows: every service's own rate and loop lag, the front's view."""
    return web.json_response(live.live_picture(request.app))


@routes.get("/api/stalls", name="api_stalls")
@operation(
    "Where each loop blocked: every service's stalls over its threshold, with its stack",
    {200: json_answer("Each service's GET /stalls", "Stalls")},
)
async def api_stalls(request: web.Request) -> web.Response:
    """Every service's stalls, read now from its control port (the front's own from its
    watchdog): the threshold, the stall in progress, the last ones with their stacks."""
    app = request.app
    services = await app[SCRAPER].stalls()
    watch = app.get(WATCH)
    if watch is not None:
        services["web"] = watch.describe_stalls()
    return web.json_response({"services": services})


@routes.get("/api/openapi.json", name="openapi")
@operation("This document", {200: answer("OpenAPI 3.1", "application/json")})
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI document, written once when the app was built (``openapi.py``)."""
    return web.json_response(request.app[OPENAPI])


async def _timed_echo(echo: Callable[[bytes], Awaitable[bytes]], data: bytes) -> dict[str, Any]:
    """An echo route's answer (and a fan-out's part): the echo of `data` and its time."""
    start = time.perf_counter()
    reply = await echo(data)
    return {"echo": reply.decode(), "bytes": len(reply), "latency_ms": _ms_since(start)}


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


# the fault API (faults.py), last in the table and so in the OpenAPI document: a fault set
# through it outlives the request, so whoever walks the document in order (a schema fuzzer)
# meets every other route first
routes.get("/api/faults", name="faults")(faults.list_faults)
routes.put("/api/faults/{service}", name="fault_set")(faults.put_fault)
routes.delete("/api/faults/{service}", name="fault_clear")(faults.delete_fault)
# the experiments (experiments.py) set faults too: after the fault API, stopping last
routes.get("/api/experiments", name="experiments")(experiments.list_experiments)
routes.post("/api/experiments", name="experiment_start")(experiments.start_experiment)
routes.get("/api/experiments/current", name="experiment")(experiments.current_experiment)
routes.delete("/api/experiments/current", name="experiment_stop")(experiments.stop_experiment)
