"""RFC 9457 problem details, the one shape of every error the stack answers over HTTP.

``problem(status, detail, ...)`` is the body: ``type``, ``title``, ``status``, ``detail``,
``instance`` when there is one, then the extension members (``field``, ``backend``...).
``type`` defaults to ``about:blank``, whose ``title`` is the status's phrase (RFC 9457
section 4.2.1); a problem with a ``urn:polyloop:problem:...`` type has a title of its own.
``wsgi_answer(...)`` is the same as the status line, headers and bytes a WSGI app hands to
``start_response`` (the resolver's API, every service's control port).

    >>> problem(404, "no such service", instance="/api/faults/x")["title"]
    'Not Found'
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

CONTENT_TYPE = "application/problem+json"
ABOUT_BLANK = "about:blank"
# a request field at fault, named in the `field` member: the front's and the control port's
INVALID_FIELD = "urn:polyloop:problem:invalid-field"
FIELD_TITLE = "Invalid request field"


def problem(
    status: int,
    detail: str,
    *,
    type: str = ABOUT_BLANK,
    title: str | None = None,
    instance: str | None = None,
    **members: Any,
) -> dict[str, Any]:
    """The problem's JSON object; `members` are its extension members, in order."""
    body: dict[str, Any] = {
        "type": type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(members)
    return body


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def wsgi_answer(
    status: int,
    detail: str,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    **fields: Any,
) -> tuple[str, list[tuple[str, str]], bytes]:
    """``(status line, headers, body)`` of a problem answer; `fields` go to ``problem()``."""
    data = encode(problem(status, detail, **fields))
    head = [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(data))), *headers]
    return f"{status} {HTTPStatus(status).phrase}", head, data
