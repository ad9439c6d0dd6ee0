"""The aiohttp front: ``create_app(config)`` builds it for ``__main__``, the tests and the
dev server (``python -m aiohttp.web -P 18080 services.web.app:init``).

The backend clients live as long as the app, in one ``cleanup_ctx`` generator; errors
become problem+json in one middleware; every response carries the security headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from services.common.loops import asyncio as loop_watch
from services.web.backends.clients import BackendClients
from services.web.config import WebConfig
from services.web.errors import problem_middleware
from services.web.experiments import setup_experiments
from services.web.faults import fault_middleware, setup_faults
from services.web.keys import CLIENTS, CONFIG, FAULTS, METRICS, OPENAPI, STATS, WATCH
from services.web.live import setup_live
from services.web.metrics import Metrics, WebCollector, metrics_middleware
from services.web.openapi import openapi_document
from services.web.origin import origin_middleware
from services.web.routes import routes
from services.web.stats import BackendStats
from services.web.steady import steady_ctx

log = logging.getLogger(__name__)

# the one definition: every response gets these, the dashboard page included
SECURITY_HEADERS = {
    # no inline script or style anywhere: the dashboard's assets are files under /static
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


SERVE_CONTROL_PORT = web.AppKey("serve_control_port", bool)


def create_app(
    config: WebConfig, *, control_port: bool = False, steady: bool = False
) -> web.Application:
    """The front. ``control_port``: also serve WEB_METRICS_PORT while it runs; ``steady``:
    run the steady client (``steady.py``) unless ``WEB_STEADY=0``. ``__main__`` asks for
    both; an app tested in-process gets its lag timer and fault hooks, neither of those
    unless it asks (its calls would go to the configured addresses)."""
    metrics = Metrics()
    app = web.Application(
        client_max_size=config.max_body,
        # inside problem_middleware: a refusal or an injected failure is problem+json; the
        # origin check first: a foreign page's request never reaches a fault
        middlewares=[
            metrics_middleware(metrics),
            problem_middleware,
            origin_middleware,
            fault_middleware,
        ],
    )
    app[CONFIG] = config
    app[STATS] = BackendStats()
    app[METRICS] = metrics
    app.cleanup_ctx.append(backends_ctx)
    app.on_response_prepare.append(security_headers)
    app.add_routes(routes)
    app[OPENAPI] = openapi_document(config)
    setup_live(app)
    setup_faults(app)
    if steady and config.steady:
        app.cleanup_ctx.append(steady_ctx)
    setup_experiments(app)
    app[SERVE_CONTROL_PORT] = control_port
    app.cleanup_ctx.append(watch_ctx)
    return app


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


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, static files and the WebSocket handshake included (the signal
    fires for each, where a middleware would miss an already-prepared response)."""
    response.headers.update(SECURITY_HEADERS)


def init(argv: list[str] | None = None) -> web.Application:
    """Entry point for aiohttp's dev server: ``python -m aiohttp.web services.web.app:init``."""
    return create_app(WebConfig.from_env())
