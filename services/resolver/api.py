"""The resolver's HTTP/JSON API: a plain WSGI app served by ``gevent.pywsgi``.

* ``POST /resolve`` ``{"names": [...], "timeout": 5.0, "mode": "concurrent"}`` →
  ``{"results": [...], "elapsed_ms", "mode"}`` (see ``resolve.py`` for a result).
* ``GET /healthz`` → ``{"status": "ok"}``; ``GET /metrics`` → Prometheus text.

A ``POST /resolve`` of the stack's probe name alone (``services.common.probes``: the front's
steady client) is answered the same way and counted apart, never as served nor logged.

Errors are ``application/problem+json`` (RFC 9457) ``{"type", "title", "status",
"detail"}``: 400 malformed JSON, 413 body over ``RESOLVER_MAX_BODY``, 422 wrong shape,
404 unknown path, 405 wrong method, 408 a request slower than ``RESOLVER_REQUEST_TIMEOUT``
(or silent for ``RESOLVER_CLIENT_TIMEOUT``); never a traceback. The server (``server.py``)
answers what pywsgi refuses before the app is called (400, 414, 431, 408, and 503 when every
connection slot is busy) in the same shape.

Try it::

    curl -s localhost:8053/resolve -d '{"names": ["www.polyloop.test", "host-7.polyloop.test"]}'
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common import probes
from services.common.problem import CONTENT_TYPE as PROBLEM
from services.common.problem import encode, problem
from services.resolver.metrics import Metrics
from services.resolver.request import Limits, Problem, ResolveRequest, parse_request
from services.resolver.resolve import Resolver

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Response = tuple[int, str, bytes, list[tuple[str, str]]]

ROUTES = {"/resolve": ("POST",), "/healthz": ("GET", "HEAD"), "/metrics": ("GET", "HEAD")}
# the ``method`` label's values: any other token a client sends counts as "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

# the server's hook (``server.py``): called once the whole request has arrived, it ends
# the request's deadline so that it never fires while the names are being resolved
END_OF_REQUEST = "resolver.end_of_request"


class ResolverApp:
    """The WSGI application; build it in a test and call it, or serve it with WSGIServer."""

    def __init__(self, resolver: Resolver, limits: Limits, *, max_body: int = 64 * 1024) -> None:
        self.resolver = resolver
        self.limits = limits
        self.max_body = max_body
        self.metrics = Metrics()
        self.resolve_requests = 0  # POST /resolve answered, any status: polyloop_requests_total
        # POST /resolve of the probe name alone (services.common.probes): polyloop_probes_total
        self.probe_requests = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        try:
            status, content_type, body, headers = self.route(method, path, environ)
        except Problem as error:
            status, content_type, body, headers = _problem(error)
        except Exception:  # the last guard: logged with its traceback, answered 500 without
            log.exception("request failed", extra={"method": method[:40], "path": path[:200]})
            status, content_type, body, headers = _problem(Problem(500, "internal error"))
        self.metrics.count_request(
            method if method in METHODS else "other",
            path if path in ROUTES else "other",
            str(status),
        )
        start_response(
            _status_line(status),
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
        )
        return [b"" if method == "HEAD" else body]

    def route(self, method: str, path: str, environ: dict[str, Any]) -> Response:
        allowed = ROUTES.get(path)
        if allowed is None:
            raise Problem(404, f"no resource at {path[:100]!r}; try POST /resolve")
        if method not in allowed:
            # the Allow header travels with the problem
            raise _MethodNotAllowed(method, path, allowed)
        if path == "/healthz":
            return _json(200, {"status": "ok"})
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry), []
        return self.resolve(environ)

    def resolve(self, environ: dict[str, Any]) -> Response:
        probe = False
        try:
            body = self._body(environ)
            end_of_request = environ.get(END_OF_REQUEST)
            if end_of_request is not None:
                end_of_request()
            request = parse_request(body, self.limits)
            probe = len(request.names) == 1 and probes.is_probe_name(request.names[0])
            if probe:
                return self._probe(request)
        finally:
            # counted whatever the answer; the stack's own probe apart, never as served
            if probe:
                self.probe_requests += 1
            else:
                self.resolve_requests += 1
        metrics = self.metrics
        started = time.monotonic()
        metrics.in_flight += 1
        try:
            results = self.resolver.resolve_many(request.names, request.timeout, request.mode)
        finally:
            metrics.in_flight -= 1
        elapsed = time.monotonic() - started
        metrics.time_resolve(request.mode, elapsed)
        outcomes: dict[str, int] = {}
        for result in results:
            outcome = result["error"] or "ok"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        for outcome, count in outcomes.items():
            metrics.count_names(outcome, count)
        if log.isEnabledFor(logging.INFO):  # the record's fields cost even when dropped
            log.info(
                "resolved",
                extra={
                    "names": len(results),
                    "mode": request.mode,
                    "timeout": request.timeout,
                    "elapsed_ms": round(elapsed * 1000, 1),
                    "outcomes": dict(outcomes),
                },
            )
        return _json(
            200,
            {"results": results, "elapsed_ms": round(elapsed * 1000, 1), "mode": request.mode},
        )

    def _probe(self, request: ResolveRequest) -> Response:
        """The stack's own probe (the front's steady client): the same resolve, answered
        the same way, out of the request metrics and the log."""
        started = time.monotonic()
        results = self.resolver.resolve_many(request.names, request.timeout, request.mode)
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        return _json(200, {"results": results, "elapsed_ms": elapsed_ms, "mode": request.mode})

    def _body(self, environ: dict[str, Any]) -> bytes:
        raw_length = environ.get("CONTENT_LENGTH") or ""
        if raw_length:
            try:
                length = int(raw_length)
            except ValueError:
                raise Problem(400, f"bad Content-Length {raw_length[:40]!r}") from None
            if length > self.max_body:
                raise Problem(
                    413, f"the body is {length} bytes; at most {self.max_body}", close=True
                )
        try:
            # chunked bodies have no length: read one byte past the limit to notice
            body = environ["wsgi.input"].read(self.max_body + 1)
        except TimeoutError:
            raise Problem(408, "the body did not arrive in time", close=True) from None
        except (OSError, ValueError) as exc:  # a broken chunked encoding, a reset
            # the error's text repeats the client's bytes: name the kind only
            detail = f"the body could not be read ({type(exc).__name__})"
            raise Problem(400, detail, close=True) from None
        if len(body) > self.max_body:
            raise Problem(413, f"the body is over {self.max_body} bytes", close=True)
        return body


class _MethodNotAllowed(Problem):
    def __init__(self, method: str, path: str, allowed: tuple[str, ...]) -> None:
        # a method is any token up to the request line's 8 KiB: never echo it whole
        shown = method if method in METHODS else f"{method[:20]!r}"
        super().__init__(405, f"{shown} is not allowed on {path}; use {', '.join(allowed)}")
        self.allowed = allowed


@functools.cache
def _status_line(status: int) -> str:
    # HTTPStatus(status) is an enum lookup each time: a status line is made once
    return f"{status} {HTTPStatus(status).phrase}"


def _json(status: int, document: dict[str, Any]) -> Response:
    return status, "application/json", json.dumps(document).encode(), []


def _problem(error: Problem) -> Response:
    headers = []
    if isinstance(error, _MethodNotAllowed):
        headers.append(("Allow", ", ".join(error.allowed)))
    if error.close:
        headers.append(("Connection", "close"))
    return error.status, PROBLEM, encode(problem(error.status, error.detail)), headers
