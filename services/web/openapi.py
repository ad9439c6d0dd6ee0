"""The OpenAPI 3.1 description of the front, served at ``GET /api/openapi.json``.

Generated from the one route table (``routes.py``): each route's ``@operation`` (beside its
handler, see ``operations.py``) gives its summary, body and answers; every ``Problem`` it
raises is documented under its status as ``application/problem+json`` (RFC 9457) with its
``type`` and its docstring; every route can also answer 405 and 500, and those the front's
fault middleware applies to a 503 (``InjectedFailure``), and every change (POST, PUT, DELETE)
the origin check's 421 and 403 (``origin.py``). The schemas are ``schemas.py``'s,
with the limits of the running config. Static files are not API; the WebSocket is described
under ``x-websockets``.

Try it: curl -s http://127.0.0.1:8080/api/openapi.json | python -m json.tool
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from services.common.problem import CONTENT_TYPE as PROBLEM
from services.web.config import WebConfig
from services.web.errors import (
    ForeignHost,
    ForeignOrigin,
    InjectedFailure,
    MethodNotAllowed,
    Problem,
    Unexpected,
)
from services.web.faults import FAULTY_PREFIXES
from services.web.operations import JSON, Operation, WebSocket, ref, spec_of
from services.web.origin import UNSAFE
from services.web.routes import routes
from services.web.schemas import schemas

# what any route can answer, whatever its handler does (errors.error_response), and
# what a change can (services.web.origin)
EVERY_ROUTE = (MethodNotAllowed, Unexpected)
EVERY_CHANGE = (ForeignHost, ForeignOrigin)


def openapi_document(config: WebConfig) -> dict[str, Any]:
    """The OpenAPI 3.1 document for an app built with `config`."""
    paths: dict[str, dict[str, Any]] = {}
    websockets: dict[str, dict[str, str]] = {}
    for route in routes:
        if not isinstance(route, web.RouteDef):
            continue  # static files
        spec = spec_of(route.handler)
        if isinstance(spec, WebSocket):
            websockets[route.path] = {"description": spec.description}
        elif isinstance(spec, Operation):
            method = route.method.lower()
            paths.setdefault(route.path, {})[method] = _operation(route.path, method, spec)
        else:
            raise TypeError(f"{route.method} {route.path}: its handler has no @operation")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "polyloop web front",
            "version": "0.1.0",
            "description": (
                "The aiohttp front of polyloop: echoes over TCP (Twisted) and UDP (asyncio), "
                "resolves names (gevent), fans out to all three at once. Errors are "
                f"application/problem+json; request bodies are limited to {config.max_body} "
                "bytes. Before any route, the server itself answers a request it cannot parse "
                "with 400, 414 or 431, and a connection past WEB_MAX_CONNECTIONS with 503."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas(config)},
        # OpenAPI has no way to describe a WebSocket: it is left out of `paths` (a plain
        # GET there only ever gets a 400) and said here instead
        "x-websockets": websockets,
    }


def _operation(path: str, method: str, spec: Operation) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": spec.summary}
    if spec.parameters:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": schema}
            for name, schema in spec.parameters.items()
        ]
    if spec.body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(spec.body)}}}
    problems = spec.problems + EVERY_ROUTE
    if method.upper() in UNSAFE:
        problems += EVERY_CHANGE
    if path.startswith(FAULTY_PREFIXES):
        problems += (InjectedFailure,)
    responses = {status: dict(answer) for status, answer in spec.answers.items()}
    for status, answer in _problem_answers(problems).items():
        if status in responses:
            raise ValueError(f"{path}: {status} is both an answer and a problem")
        responses[status] = answer
    operation["responses"] = {str(status): responses[status] for status in sorted(responses)}
    return operation


def _problem_answers(problems: Iterable[type[Problem]]) -> dict[int, dict[str, Any]]:
    """One answer per status: each kind's docstring, and the ``type``s it can carry."""
    kinds: dict[int, list[type[Problem]]] = {}
    for kind in dict.fromkeys(problems):
        kinds.setdefault(kind.status, []).append(kind)
    answers = {}
    for status, same in kinds.items():
        types = sorted({kind.type for kind in same})
        schema = {"allOf": [ref("Problem"), {"properties": {"type": {"enum": types}}}]}
        answers[status] = {
            "description": "\n\n".join(_described(kind) for kind in same),
            "content": {PROBLEM: {"schema": schema}},
        }
    return answers


def _described(kind: type[Problem]) -> str:
    """The first paragraph of the class's docstring, its ``literals`` as Markdown's."""
    first = (inspect.getdoc(kind) or kind.__name__).split("\n\n")[0]
    return re.sub(r"``([^`]+)``", r"`\1`", " ".join(first.split()))
