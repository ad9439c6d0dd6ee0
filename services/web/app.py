"""The aiohttp front: ``create_app(config)`` builds it for ``__main__``, the tests and the
dev server (``python -m aiohttp.web -P 18080 services.web.app:init``).

The backend clients live as long as the app, in one ``cleanup_ctx`` generator; errors
become problem+json in one middleware; every response carries the security headers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from services.web.backends.clients import BackendClients
from services.web.config import WebConfig
from services.web.errors import problem_middleware
from services.web.keys import CLIENTS, CONFIG, METRICS, STATS
from services.web.live import setup_live
from services.web.loop_metrics import setup_loop_metrics
from services.web.metrics import Metrics, metrics_middleware
from services.web.routes import routes
from services.web.stats import BackendStats

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


def create_app(config: WebConfig) -> web.Application:
    metrics = Metrics()
    app = web.Application(
        client_max_size=config.max_body,
        middlewares=[metrics_middleware(metrics), problem_middleware],
    )
    app[CONFIG] = config
    app[STATS] = BackendStats()
    app[METRICS] = metrics
    app.cleanup_ctx.append(backends_ctx)
    app.on_response_prepare.append(security_headers)
    app.add_routes(routes)
    setup_live(app)
    setup_loop_metrics(app)
    return app


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
