"""RFC 9457 problem details: every error the front answers is ``application/problem+json``.

Handlers raise a ``Problem`` (or let aiohttp raise its ``HTTPException``s: 404, 405, 413);
``problem_middleware`` turns both into ``{"type", "title", "status", "detail", "instance"}``.
Anything else is a bug: logged once with the request's context, answered as a bare 500
that names nothing internal.

Try it: curl -i -X POST -d '{' http://127.0.0.1:8080/api/echo/tcp
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """An error with a status the client is owed; `extra` members go into the body."""

    status = 500
    type = "about:blank"
    title: str | None = None
    # the rest of the request body is not worth reading: close the connection after this
    close = False

    def __init__(self, detail: str, *, status: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.extra = extra

    def body(self, instance: str) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title or HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extra,
        }


class MalformedJson(Problem):
    status = 400
    type = "urn:polyloop:problem:malformed-json"
    title = "Malformed JSON body"


class BodyTooLarge(Problem):
    """A ``Content-Length`` above ``WEB_MAX_BODY``: refused before a byte of it is read."""

    status = 413
    close = True

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"the body is {length} bytes, at most {limit} allowed")


class BodyTimeout(Problem):
    """The body did not arrive whole within ``WEB_BODY_TIMEOUT`` (a slow-body attack)."""

    status = 408
    close = True

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} s")


class InvalidField(Problem):
    """Well-formed JSON of the wrong shape; `field` names the culprit (``names[3]``)."""

    status = 422
    type = "urn:polyloop:problem:invalid-field"
    title = "Invalid request field"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}", field=field)


class BackendUnavailable(Problem):
    status = 503
    type = "urn:polyloop:problem:backend-unavailable"
    title = "Backend unavailable"

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend}: {detail}", backend=backend)


class BackendTimeout(Problem):
    status = 504
    type = "urn:polyloop:problem:backend-timeout"
    title = "Backend too slow"

    def __init__(self, backend: str, seconds: float) -> None:
        super().__init__(f"{backend}: no answer within {seconds:g} s", backend=backend)


class BadBackendReply(Problem):
    status = 502
    type = "urn:polyloop:problem:bad-backend-reply"
    title = "Unexpected backend reply"

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend}: {detail}", backend=backend)


def problem_response(problem: Problem, instance: str) -> web.Response:
    return web.Response(
        status=problem.status,
        text=json.dumps(problem.body(instance)),
        content_type=PROBLEM_CONTENT_TYPE,
    )


def _from_http_exception(exc: web.HTTPException) -> Problem:
    """aiohttp's own errors (404, 405, 413, a bad WebSocket handshake...) as problems."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        detail = f"method {exc.method} not allowed here; allowed: {allowed}"
    elif isinstance(exc, web.HTTPNotFound):
        detail = "no such resource"
    else:
        # aiohttp's default text is "<status>: <reason>"; its custom texts say more
        default = f"{exc.status}: {exc.reason}"
        detail = (
            exc.text if exc.text and exc.text != default else HTTPStatus(exc.status).description
        )
    return Problem(detail, status=exc.status)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place errors become responses."""
    try:
        return await handler(request)
    except Problem as problem:
        if problem.status >= 500:
            log.warning(
                "backend call failed",
                extra={"path": request.path, "status": problem.status, "detail": problem.detail},
            )
        response = problem_response(problem, request.path)
        if problem.close:
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem_response(_from_http_exception(exc), request.path)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        if exc.status == 413:  # aiohttp's own, for a body that grew past the limit
            response.force_close()
        return response
    except Exception:
        # a bug: the client gets a bare 500, the log gets the traceback, once
        log.exception("unhandled error", extra={"method": request.method, "path": request.path})
        problem = Problem("the server hit an unexpected error", status=500)
        return problem_response(problem, request.path)
