"""Validating request bodies at the edge: malformed JSON is a 400, the wrong shape a 422
naming the field, a body over ``WEB_MAX_BODY`` a 413 (raised by aiohttp itself)."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from services.web.errors import InvalidField, MalformedJson

MAX_NAMES = 256
MAX_RESOLVE_TIMEOUT = 30.0
DEFAULT_RESOLVE_TIMEOUT = 5.0
MODES = ("concurrent", "sequential")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object (reading it raises 413 past ``client_max_size``)."""
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidField("body", "expected a JSON object")
    return body


def message(body: dict[str, Any], max_bytes: int, *, why: str = "") -> bytes:
    """``body["message"]``: a non-empty string of at most `max_bytes` bytes in UTF-8."""
    value = body.get("message")
    if not isinstance(value, str):
        raise InvalidField("message", "required, a string")
    try:
        data = value.encode()
    except UnicodeEncodeError:
        raise InvalidField("message", "not encodable as UTF-8 (lone surrogate)") from None
    if not data:
        raise InvalidField("message", "must not be empty")
    if len(data) > max_bytes:
        raise InvalidField(
            "message", f"{len(data)} bytes in UTF-8, at most {max_bytes} allowed{why}"
        )
    return data


def resolve_request(body: dict[str, Any]) -> dict[str, Any]:
    """The resolver's request, checked by the resolver's own rules, with defaults filled in."""
    names = body.get("names")
    if not isinstance(names, list) or not names:
        raise InvalidField("names", "required, a non-empty list of host names")
    if len(names) > MAX_NAMES:
        raise InvalidField("names", f"{len(names)} names, at most {MAX_NAMES} allowed")
    for index, name in enumerate(names):
        if not is_host_name(name):
            raise InvalidField(f"names[{index}]", f"{_short(name)} is not a valid host name")
    timeout = body.get("timeout", DEFAULT_RESOLVE_TIMEOUT)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_RESOLVE_TIMEOUT
    ):
        raise InvalidField("timeout", f"a number of seconds, > 0 and <= {MAX_RESOLVE_TIMEOUT:g}")
    mode = body.get("mode", "concurrent")
    if mode not in MODES:
        raise InvalidField("mode", f"one of {', '.join(MODES)}")
    return {"names": names, "timeout": float(timeout), "mode": mode}


def is_host_name(name: object) -> bool:
    """A syntactically valid host name: <= 253 characters, labels of 1-63 letters, digits
    or inner hyphens; one trailing dot allowed."""
    if not isinstance(name, str):
        return False
    bare = name[:-1] if name.endswith(".") else name
    if not bare or len(bare) > 253:
        return False
    return all(_LABEL.fullmatch(label) for label in bare.split("."))


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
