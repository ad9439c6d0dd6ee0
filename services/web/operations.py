"""What each route of the front promises, said beside its handler, read by ``openapi.py``.

``@operation(summary, answers, body=..., problems=...)`` marks an HTTP handler with its
OpenAPI operation: its own answers by status (``json_answer``, ``answer``), the schema of
its JSON body (a name in ``schemas.py``), and the ``Problem`` classes it raises, each
documented by its status and docstring. The statuses any route can give (405, 500) and the
front's fault middleware's 503 are added by ``openapi.py``. ``@websocket(description)``
marks a WebSocket handler instead (OpenAPI cannot describe one: it goes to
``x-websockets``).

    @routes.get("/healthz", name="healthz")
    @operation("The front is serving", {200: json_answer("Serving", "Health")})
    async def healthz(request): ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.web.errors import Problem

JSON = "application/json"

H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    summary: str
    # the handler's own answers: status -> an OpenAPI Response Object
    answers: Mapping[int, dict[str, Any]]
    body: str | None = None  # the name of its JSON request body's schema
    problems: tuple[type[Problem], ...] = ()
    # path parameters: name -> its JSON schema
    parameters: Mapping[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class WebSocket:
    description: str


def ref(schema: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{schema}"}


def json_answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref(schema)}}}


def answer(description: str, media_type: str | None = None) -> dict[str, Any]:
    """An answer described by its media type only (or without a body: ``media_type=None``)."""
    if media_type is None:
        return {"description": description}
    return {"description": description, "content": {media_type: {}}}


def operation(
    summary: str,
    answers: Mapping[int, dict[str, Any]],
    *,
    body: str | None = None,
    problems: tuple[type[Problem], ...] = (),
    parameters: Mapping[str, dict[str, Any]] | None = None,
) -> Callable[[H], H]:
    """Mark the handler with its ``Operation`` (the handler itself is unchanged)."""
    spec = Operation(summary, answers, body, problems, parameters or {})
    return _mark(spec)


def websocket(description: str) -> Callable[[H], H]:
    """Mark a WebSocket handler with what it sends and its limits."""
    return _mark(WebSocket(description))


def spec_of(handler: Callable[..., Any]) -> Operation | WebSocket | None:
    return getattr(handler, "openapi", None)


def _mark(spec: Operation | WebSocket) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        handler.openapi = spec  # type: ignore[attr-defined]
        return handler

    return mark
