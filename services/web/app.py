"""The aiohttp front: ``create_app(config)`` builds it for ``__main__``, the tests and the
dev server (``python -m aiohttp.web -P 18080 services.web.app:init``).

The backend clients live as long as the app, in one ``cleanup_ctx`` generator; errors
become problem+json in one middleware; every response carries the security headers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from services.common.faults import Faults
from services.common.loops import asyncio as loop_watch
from services.web import origin
from services.web.backends.clients import BackendClients
from services.web.config import WebConfig
from services.web.errors import error_response
from services.web.experiments import setup_experiments
from services.web.faults import own_faults, setup_faults
from services.web.keys import CLIENTS, CONFIG, FAULTS, METRICS, OPENAPI, STATS, WATCH
from services.web.live import setup_live
from services.web.metrics import Metrics, WebCollector, method_label, route_label
from services.web.openapi import openapi_document
from services.web.routes import routes
from services.web.security import SECURITY_HEADERS
from services.web.stats import BackendStats
from services.web.steady import steady_ctx

log = logging.getLogger(__name__)


SERVE_CONTROL_PORT = web.AppKey("serve_control_port", bool)


def create_app(
    config: WebConfig, *, control_port: bool = False, steady: bool = False
) -> web.Application:
    """The front. ``control_port``: also serve WEB_METRICS_PORT while it runs; ``steady``:
    run the steady client (``steady.py``) unless ``WEB_STEADY=0``. ``__main__`` asks for
    both; an app tested in-process gets its lag timer and fault hooks, neither of those
    unless it asks (its calls would go to the configured addresses)."""
    metrics = Metrics()
    faults = Faults()
    app = web.Application(
        client_max_size=config.max_body, middlewares=[front_middleware(metrics, faults)]
    )
    app[CONFIG] = config
    app[STATS] = BackendStats()
    app[METRICS] = metrics
    app.cleanup_ctx.append(backends_ctx)
    app.add_routes(routes)
    app[OPENAPI] = openapi_document(config)
    setup_live(app)
    setup_faults(app, faults)
    if steady and config.steady:
        app.cleanup_ctx.append(steady_ctx)
    setup_experiments(app)
    app[SERVE_CONTROL_PORT] = control_port
    app.cleanup_ctx.append(watch_ctx)
    return app


def front_middleware(metrics: Metrics, faults: Faults) -> Middleware:
    """The front's one middleware, around every request: it counts and times it
    (``metrics``), refuses a change from a foreign Host or Origin (``origin.guard``),
    answers what a handler raised as problem+json (``errors.error_response``)
    and applies the front's own faults to its API routes (``faults.own_faults``: one attribute
    read while none is set). One middleware rather than three: each costs aiohttp a wrapper,
    a coroutine and a context switch per request, more than the work it wraps."""
    clock = time.perf_counter

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = clock()
        metrics.requests_in_flight += 1
        status = 500  # unless a response is made (a client gone mid-request: cancelled)
        try:
            try:
                origin.guard(request)  # a change from a foreign page never reaches a fault
                if faults.active:
                    await own_faults(request, faults)
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    status = exc.status
                    raise  # a redirect: aiohttp answers it
                response = error_response(request, exc)
            except Exception as exc:  # noqa: BLE001 - every error becomes a problem response
                response = error_response(request, exc)
            # every response gets them here (the WebSocket handshake, prepared inside its
            # handler, sets them itself; aiohttp's parser errors: server.py): a signal per
            # response (on_response_prepare) cost more than the rest of this middleware
            response.headers.update(SECURITY_HEADERS)
            status = response.status
            return response
        finally:
            metrics.requests_in_flight -= 1
            labels = (route_label(request), method_label(request), str(status))
            metrics.record(labels, clock() - start)

    return middleware


async def watch_ctx(app: web.Application) -> AsyncIterator[None]:
    """Watch the front's own loop while it runs (``services.common.loops.asyncio``): its lag
    timer, its fault hooks and, when asked, the control port serving the app's registry."""
    config = app[CONFIG]
    watch = loop_watch.start(
        asyncio.get_running_loop(),
        config,
        WebCollector(app[METRICS]),
        faults=app[FAULTS],
        registry=app[METRICS].registry,
        serve_port=app[SERVE_CONTROL_PORT],
    )
    if watch is None:
        yield
        return
    app[WATCH] = watch
    yield
    watch.stop()
    if watch.server is not None:
        watch.server.close()


async def backends_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the backend clients at startup, close them (and their pools) at cleanup."""
    config = app[CONFIG]
    app[CLIENTS] = BackendClients.open(config, app[STATS], app[METRICS])
    log.info(
        "backends configured",
        extra={
            "tcp_echo": f"{config.tcp_echo_host}:{config.tcp_echo_port}",
            "udp_echo": f"{config.udp_echo_host}:{config.udp_echo_port}",
            "resolver": f"{config.resolver_host}:{config.resolver_port}",
            "dns": f"{config.dns_host}:{config.dns_port}",
        },
    )
    yield
    await app[CLIENTS].close()


def init(argv: list[str] | None = None) -> web.Application:
    """Entry point for aiohttp's dev server: ``python -m aiohttp.web services.web.app:init``."""
    return create_app(WebConfig.from_env())
