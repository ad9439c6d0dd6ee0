"""A service's control port: reaching its loop from outside, from a thread outside it.

Every service serves, on its own control port (``<SERVICE>_METRICS_PORT``, on the compose
network only, 127.0.0.1 in local mode, never published):

- ``GET /metrics``: prometheus-client's own WSGI app over the service's registry;
- ``GET /faults`` (open like ``/metrics``), ``PUT /faults`` / ``DELETE /faults`` with
  ``Authorization: Bearer $POLYLOOP_ADMIN_TOKEN`` (compared in constant time): the service's
  runtime faults (``services.common.faults``);
- ``GET /stalls`` (open like ``/metrics``): the loop's last stalls with their stacks, and
  the one in progress (``services.common.loops.stalls``).

It is served by prometheus-client's ``ThreadingWSGIServer`` on a thread of its own, OUTSIDE
the event loop, so it still answers while the loop is blocked: that is what makes "blocked
now" and the fault API work when the loop is stuck. Each loop's ``start`` (in
``services.common.loops``) calls ``serve``. Slow or silent clients cannot hold it, and the
front (which sends the token on every call) always finds room: ``control_server.py``.

Try it (tcp-echo running): ``curl -s 127.0.0.1:9101/metrics``;
``curl -s -X PUT -H "Authorization: Bearer $POLYLOOP_ADMIN_TOKEN" -d '{"latency_ms": 500}'
127.0.0.1:9101/faults`` (the token: ``.venv/bin/python -m devstack token``)
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app

from services.common.control_server import (
    BoundedControlServer,
    ControlHandler,
    ShedCollector,
    shared_for_anonymous,
)
from services.common.faults import MAX_BODY, FaultError, Faults, parse_spec
from services.common.problem import FIELD_TITLE, INVALID_FIELD, wsgi_answer
from services.common.settings import ADMIN_TOKEN, Settings, declare, setting
from services.common.throttle import LogThrottle

log = logging.getLogger(__name__)

DEFAULT_LAG_INTERVAL = 0.05
# no tick for 200 ms beyond the interval: idle services on a 2-core host at load 3 were
# late by up to 140 ms (the process waiting for a CPU, its loop in its poller); every
# demo block (300 ms and more) is still over it
DEFAULT_STALL_THRESHOLD = 0.2

WsgiApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class ControlSettings(Settings):
    """What every service's control port and lag timer read (docs/configuration.md)."""

    enabled: bool = setting(
        "POLYLOOP_METRICS", True, "0: no lag timer and no control port (the bench's 'off')"
    )
    lag_interval: float = setting(
        "POLYLOOP_LAG_INTERVAL",
        DEFAULT_LAG_INTERVAL,
        "seconds between two ticks of each loop's lag timer",
        minimum=0.001,
        maximum=10,
    )
    stall_threshold: float = setting(
        "POLYLOOP_STALL_THRESHOLD",
        DEFAULT_STALL_THRESHOLD,
        "seconds without a lag tick, beyond one interval, that make a stall: counted, timed,"
        " recorded with the loop's stack",
        minimum=0.01,
        maximum=10,
    )
    stall_events: int = setting(
        "POLYLOOP_STALL_EVENTS",
        50,
        "stalls each service keeps for GET /stalls (the newest; equal stacks stored once)",
        minimum=1,
        maximum=1000,
    )
    stall_watchdog: bool = setting(
        "POLYLOOP_STALL_WATCHDOG",
        True,
        "0: no watchdog thread, so no stacks (stalls are still counted and timed)",
    )
    max_connections: int = setting(
        "POLYLOOP_METRICS_MAX_CONNECTIONS",
        16,
        "requests without the token each control port serves at once (beyond: 503); 4 more"
        " connections are kept for the front's calls, which carry the token. When a new"
        " connection needs room, the oldest one whose request is not in yet is closed",
        minimum=1,
        maximum=1024,
    )
    request_timeout: float = setting(
        "POLYLOOP_METRICS_REQUEST_TIMEOUT",
        2.0,
        "seconds a control port connection has, from its accept, to send its whole request"
        " however slowly it trickles (past it a 408), and again to take its answer",
        minimum=0.1,
        maximum=60.0,
    )
    admin_token: str | None = declare(ADMIN_TOKEN)


def new_registry(*collectors: Any) -> CollectorRegistry:
    """A registry of its own (tests build many services) with the process collector."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    for collector in collectors:
        registry.register(collector)
    return registry


class ControlServer:
    """``GET /metrics`` (and any route added) on ``host:port``, from a thread of its own.

    ``routes`` maps a path to a WSGI app (``/faults`` is one more entry).
    ``start(start_thread)`` binds and serves ON the thread that ``start_thread(target)``
    starts (default: a daemon ``threading.Thread``). The gevent resolver passes one that
    starts a real OS thread: a gevent socket belongs to the hub of the thread that made
    it, so the socket must be made there, never in the (blockable) main hub.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        max_connections: int = 16,
        request_timeout: float = 2.0,
        token: str | None = None,
        routes: Mapping[str, WsgiApp] | None = None,
    ) -> None:
        self.routes: dict[str, WsgiApp] = {
            "/metrics": shared_for_anonymous(make_wsgi_app(registry))
        }
        self.routes.update(routes or {})
        self.host = host
        self.requested_port = port
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.token = token
        self.server: BoundedControlServer | None = None
        self.throttle = LogThrottle(log, 10.0)
        registry.register(ShedCollector(lambda: self.server))
        self.thread_ident: int | None = None
        self._error: OSError | None = None

    @property
    def port(self) -> int:
        assert self.server is not None, "not started"
        return self.server.server_address[1]

    def app(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Dispatch on the path; an unknown one is a 404 (never the loop's business)."""
        path = environ.get("PATH_INFO") or "/"
        route = self.routes.get(path)
        if route is None:
            body = b"not found; try GET /metrics\n"
            start_response(
                "404 Not Found",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        try:
            return list(route(environ, start_response))
        except Exception as exc:  # noqa: BLE001 - a bug: one throttled line, a bare 500
            self.throttle.log(path, logging.ERROR, "control port route failed", exc_info=exc)
            line, head, data = wsgi_answer(500, "the control port hit an unexpected error")
            start_response(line, head, sys.exc_info())
            return [data]

    def start(
        self,
        start_thread: Callable[[Callable[[], None]], object] | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Bind and serve from another thread than the caller's (the loop's).

        Returns once the port is bound; raises its ``OSError`` when it cannot be.
        """
        (start_thread or _daemon_thread)(self._bind_and_serve)
        deadline = time.monotonic() + timeout
        # a one-time handshake with the new thread, polled: no lock is shared between a
        # gevent hub and a foreign thread (time.sleep is gevent.sleep once patched)
        while self.server is None and self._error is None:
            if time.monotonic() > deadline:
                raise OSError(f"the metrics thread did not bind {self.host}:{self.requested_port}")
            time.sleep(0.005)
        if self._error is not None:
            raise self._error

    def _bind_and_serve(self) -> None:
        self.thread_ident = threading.get_ident()
        try:
            server = BoundedControlServer(
                (self.host, self.requested_port),
                ControlHandler,
                max_connections=self.max_connections,
                request_timeout=self.request_timeout,
                max_body=MAX_BODY,
                trusted=lambda header: (
                    self.token is not None and check_token(header, self.token) is None
                ),
            )
            server.set_app(self.app)
        except Exception as exc:  # noqa: BLE001 - handed to start(), raised in the caller
            self._error = exc if isinstance(exc, OSError) else OSError(repr(exc))
            return
        self.server = server
        server.serve_forever(poll_interval=0.5)

    def close(self) -> None:
        """Stop serving (waits for the serving loop to notice) and close the socket."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _daemon_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name="metrics", daemon=True)
    thread.start()
    return thread


def serve(
    settings: ControlSettings,
    host: str,
    port: int,
    registry: CollectorRegistry,
    *,
    faults: Faults | None = None,
    stalls: Callable[[], dict[str, Any]] | None = None,
    start_thread: Callable[[Callable[[], None]], object] | None = None,
) -> ControlServer:
    """Serve ``registry`` on ``host:port`` from another thread, ``/faults`` with
    ``faults``, guarded by ``settings.admin_token``, and ``/stalls`` with what ``stalls()``
    says. Raises ``OSError`` when the port cannot be bound; the caller logs it and exits 1."""
    routes: dict[str, WsgiApp] = {}
    if faults is not None:
        routes["/faults"] = faults_app(faults, settings.admin_token)
    if stalls is not None:
        routes["/stalls"] = stalls_app(stalls)
    server = ControlServer(
        registry,
        host,
        port,
        max_connections=settings.max_connections,
        request_timeout=settings.request_timeout,
        token=settings.admin_token,
        routes=routes,
    )
    server.start(start_thread)
    log.info(
        "control port listening",
        extra={
            "address": f"{host}:{server.port}",
            "lag_interval": settings.lag_interval,
            "stall_threshold": settings.stall_threshold,
        },
    )
    return server


def check_token(header: str | None, token: str | None) -> int | None:
    """None when ``header`` carries ``token``; else the HTTP status to refuse with.

    401 without credentials, 403 with wrong ones or when no token is configured. The
    scheme is case-insensitive (RFC 9110 section 11.1): ``bearer`` is ``Bearer``.
    """
    if token is None:
        return 403
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401
    return None if hmac.compare_digest(given.strip().encode(), token.encode()) else 403


def token_state(header: str | None, token: str | None) -> str:
    """What ``GET /faults`` says of the token: ``missing`` (this service holds none, so its
    faults cannot be changed), else ``accepted`` / ``refused`` for the one the request
    carried, or ``configured`` when it carried none."""
    if token is None:
        return "missing"
    if not header:
        return "configured"
    return "accepted" if check_token(header, token) is None else "refused"


def faults_app(faults: Faults, token: str | None) -> WsgiApp:
    """The ``/faults`` route of a metrics port: GET shows, PUT sets, DELETE clears.

    GET is open like ``/metrics`` (the port is internal) and says in ``token`` whether
    this service holds the stack's token (``token_state``); PUT and DELETE need it. A PUT
    names its body's length (chunked: 411) and its body is a JSON object (an empty one is
    no way to clear: DELETE is). Errors are problem+json; a 422 names the bad field in
    ``field``.
    """

    def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET":
            state = token_state(environ.get("HTTP_AUTHORIZATION"), token)
            return _json(start_response, 200, {**faults.describe(), "token": state})
        if method not in ("PUT", "DELETE"):
            return _problem(start_response, 405, "use GET, PUT or DELETE")
        refused = check_token(environ.get("HTTP_AUTHORIZATION"), token)
        if refused is not None:
            detail = (
                "no POLYLOOP_ADMIN_TOKEN is configured: faults cannot be changed"
                if token is None
                else "a valid 'Authorization: Bearer <POLYLOOP_ADMIN_TOKEN>' is required"
            )
            return _problem(start_response, refused, detail)
        if method == "DELETE":
            faults.clear()
            return _json(start_response, 200, {**faults.describe(), "token": "accepted"})
        if environ.get("HTTP_TRANSFER_ENCODING") or not environ.get("CONTENT_LENGTH"):
            return _problem(start_response, 411, "send the fault spec with a Content-Length")
        try:
            length = int(environ["CONTENT_LENGTH"])
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return _problem(start_response, 413, f"a fault spec is at most {MAX_BODY} bytes")
        try:
            data = json.loads(environ["wsgi.input"].read(length))
            spec = parse_spec(data, faults.kinds)
        except FaultError as exc:
            return _problem(start_response, 422, exc.message, field=exc.field)
        except ValueError:  # json.JSONDecodeError, bad UTF-8, an empty body
            return _problem(start_response, 422, "not valid JSON", field="body")
        except RecursionError:
            return _problem(start_response, 422, "nested too deeply", field="body")
        faults.apply(spec)
        return _json(start_response, 200, {**faults.describe(), "token": "accepted"})

    return app


def stalls_app(describe: Callable[[], dict[str, Any]]) -> WsgiApp:
    """The ``/stalls`` route of a control port: GET only, open like ``/metrics``."""

    def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") != "GET":
            return _problem(start_response, 405, "use GET")
        return _json(start_response, 200, describe())

    return app


def _json(start_response: Callable[..., Any], status: int, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def _problem(
    start_response: Callable[..., Any], status: int, detail: str, field: str | None = None
) -> list[bytes]:
    headers = (("WWW-Authenticate", "Bearer"),) if status == 401 else ()
    named = {} if field is None else {"type": INVALID_FIELD, "title": FIELD_TITLE, "field": field}
    line, head, data = wsgi_answer(status, detail, headers=headers, **named)
    start_response(line, head)
    return [data]
