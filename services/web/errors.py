"""RFC 9457 problem details: every error the front answers is ``application/problem+json``.

Handlers raise a ``Problem`` (or let aiohttp raise its ``HTTPException``s: 404, 405, 413);
``error_response`` (called by the front's one middleware, ``app.front_middleware``) turns both
into ``{"type", "title", "status", "detail", "instance"}``.
Anything else is a bug: logged once with the request's context, answered as a bare 500
that names nothing internal.

Try it: curl -i -X POST -d '{' http://127.0.0.1:8080/api/echo/tcp
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web

from services.common.problem import ABOUT_BLANK, FIELD_TITLE, INVALID_FIELD, encode, problem
from services.common.problem import CONTENT_TYPE as PROBLEM_CONTENT_TYPE

log = logging.getLogger(__name__)

URN = "urn:polyloop:problem:"


class Problem(Exception):
    """An error with a status the client is owed; `extra` members go into the body.

    Each subclass is one kind of problem, and its docstring says when the front answers it:
    the OpenAPI document quotes it for every route that can raise it.
    """

    status = 500
    type = ABOUT_BLANK
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
        return problem(
            self.status,
            self.detail,
            type=self.type,
            title=self.title,
            instance=instance,
            **self.extra,
        )


class MalformedJson(Problem):
    """The body is not valid JSON."""

    status = 400
    type = URN + "malformed-json"
    title = "Malformed JSON body"


class BodyTooLarge(Problem):
    """The body is larger than ``WEB_MAX_BODY`` (refused before a byte of it is read when
    its ``Content-Length`` says so)."""

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


class BodyLost(Problem):
    """The connection was lost before the body arrived whole (the client went away: this
    answer is for the log and the access line, nobody reads it)."""

    status = 400
    close = True

    def __init__(self) -> None:
        super().__init__("the connection was lost before the body arrived whole")


class InvalidField(Problem):
    """Valid JSON of the wrong shape; ``field`` names the culprit (``names[3]``)."""

    status = 422
    type = INVALID_FIELD
    title = FIELD_TITLE

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}", field=field)


class BackendProblem(Problem):
    """A backend at fault, named in ``backend``."""

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend}: {detail}", backend=backend)


class BackendUnavailable(BackendProblem):
    """The backend is down: refused, reset or unreachable (answered at once, never hung)."""

    status = 503
    type = URN + "backend-unavailable"
    title = "Backend unavailable"


class BackendTimeout(BackendProblem):
    """The backend did not answer within its timeout."""

    status = 504
    type = URN + "backend-timeout"
    title = "Backend too slow"

    def __init__(self, backend: str, seconds: float) -> None:
        super().__init__(backend, f"no answer within {seconds:g} s")


class BadBackendReply(BackendProblem):
    """The backend answered something unexpected (an echo that differs, an error of its own)."""

    status = 502
    type = URN + "bad-backend-reply"
    title = "Unexpected backend reply"


class FaultsOff(Problem):
    """Fault injection is off on this front (``WEB_FAULTS``, ``POLYLOOP_BIND``)."""

    status = 403
    type = URN + "faults-off"
    title = "Fault injection is off"


class ExperimentRunning(Problem):
    """An experiment is running already: one at a time (stop it first, or wait for its end)."""

    status = 409
    type = URN + "experiment-running"
    title = "An experiment is running"


class ForeignHost(Problem):
    """A change (or a ``/ws/live`` subscription) whose ``Host`` names none of the names the
    front is served as (127.0.0.1, localhost, [::1], ``WEB_HOST``, ``WEB_ALLOWED_HOSTS``):
    refused against DNS rebinding."""

    status = 421
    type = URN + "foreign-host"
    title = "Not a name of this front"


class ForeignOrigin(Problem):
    """A change (or a ``/ws/live`` subscription) from a web page of another origin than the
    front's own (its ``Origin`` header)."""

    status = 403
    type = URN + "foreign-origin"
    title = "Not from this front's pages"


class InjectedFailure(Problem):
    """The front's own fail-X % fault: answered at once, never a hang."""

    status = 503
    type = URN + "injected-fault"
    title = "Failed on purpose"


class NotFound(Problem):
    """Nothing by that name here."""

    status = 404


class MethodNotAllowed(Problem):
    """The route does not take this method; ``Allow`` lists those it takes."""

    status = 405


class Unexpected(Problem):
    """A bug: logged with its traceback, answered without a word of internals."""

    status = 500


def problem_response(error: Problem, instance: str) -> web.Response:
    return web.Response(
        status=error.status, body=encode(error.body(instance)), content_type=PROBLEM_CONTENT_TYPE
    )


def _from_http_exception(exc: web.HTTPException) -> Problem:
    """aiohttp's own errors (404, 405, 413, a bad WebSocket handshake...) as problems."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return MethodNotAllowed(f"method {exc.method} not allowed here; allowed: {allowed}")
    if isinstance(exc, web.HTTPNotFound):
        detail = "no such resource"
    else:
        # aiohttp's default text is "<status>: <reason>"; its custom texts say more
        default = f"{exc.status}: {exc.reason}"
        detail = (
            exc.text if exc.text and exc.text != default else HTTPStatus(exc.status).description
        )
    return Problem(detail, status=exc.status)


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The one place errors become responses (the front's middleware calls it with what a
    handler raised; an ``HTTPException`` below 400, a redirect, is for it to re-raise)."""
    if isinstance(exc, Problem):
        if exc.status >= 500:
            log.warning(
                "backend call failed",
                extra={"path": request.path, "status": exc.status, "detail": exc.detail},
            )
        response = problem_response(exc, request.path)
        if exc.close:
            response.force_close()
        return response
    if isinstance(exc, web.HTTPException):
        response = problem_response(_from_http_exception(exc), request.path)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        if exc.status == 413:  # aiohttp's own, for a body that grew past the limit
            response.force_close()
        return response
    # a bug: the client gets a bare 500, the log gets the traceback, once
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"method": request.method, "path": request.path},
    )
    return problem_response(Unexpected("the server hit an unexpected error"), request.path)
