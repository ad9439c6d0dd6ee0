"""Validating request bodies at the edge: malformed JSON is a 400, the wrong shape a 422
naming the field (JSON nested too deep for the parser too), a body over ``WEB_MAX_BODY`` a
413 (at once when its ``Content-Length`` says so, else raised by aiohttp as it grows past),
a body still incomplete after ``WEB_BODY_TIMEOUT`` a 408. Both close the connection: the
rest is never read.

The limits are the backends' own, from ``WebConfig`` (``RESOLVER_MAX_NAMES``,
``RESOLVER_MAX_TIMEOUT``, ``UDP_ECHO_MAX_DATAGRAM``), and the host-name rule is the
resolver's (``services.common.hostname``): what the front accepts, the backend accepts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from services.common.hostname import is_host_name
from services.web.config import WebConfig
from services.web.errors import BodyLost, BodyTimeout, BodyTooLarge, InvalidField, MalformedJson

MODES = ("concurrent", "sequential")
# every problem reading and checking a body can raise (the OpenAPI document lists them)
PROBLEMS = (MalformedJson, BodyLost, BodyTimeout, BodyTooLarge, InvalidField)


async def json_object(request: web.Request, config: WebConfig) -> dict[str, Any]:
    """The request's body as a JSON object (reading it raises 413 past ``client_max_size``)."""
    length = request.content_length
    if length is not None and length > config.max_body:
        raise BodyTooLarge(length, config.max_body)
    if request.content.is_eof():
        raw = await request.read()  # already here whole (the usual case): no clock needed
    else:
        try:
            async with asyncio.timeout(config.body_timeout):
                raw = await request.read()
        except TimeoutError:
            raise BodyTimeout(config.body_timeout) from None
        except ConnectionError:  # gone mid-body: a refusal, never a 500 and a traceback
            raise BodyLost from None
    try:
        # an object starts with "{" in UTF-8: decoded here, json skips guessing the encoding
        # (any other start, a BOM or UTF-16 included, is json's to read, or to refuse)
        body = json.loads(raw.decode() if raw[:1] == b"{" else raw)
    except ValueError as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # valid JSON, deeper than the parser goes: no request needs it
        raise InvalidField("body", "nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidField("body", "expected a JSON object")
    return body


def message(body: dict[str, Any], max_bytes: int, *, datagram: int | None = None) -> bytes:
    """``body["message"]``: a non-empty string of at most `max_bytes` bytes in UTF-8; with
    `datagram`, the error says the limit is udp-echo's datagram size."""
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
        why = "" if datagram is None else f" (one UDP datagram: udp-echo drops over {datagram})"
        raise InvalidField(
            "message", f"{len(data)} bytes in UTF-8, at most {max_bytes} allowed{why}"
        )
    return data


def resolve_request(body: dict[str, Any], config: WebConfig) -> dict[str, Any]:
    """The resolver's request, checked by the resolver's own rules and limits, with its
    defaults filled in."""
    names = body.get("names")
    if not isinstance(names, list) or not names:
        raise InvalidField("names", "required, a non-empty list of host names")
    max_names = config.resolver_max_names
    if len(names) > max_names:
        raise InvalidField("names", f"{len(names)} names, at most {max_names} allowed")
    for index, name in enumerate(names):
        if not is_host_name(name):
            raise InvalidField(f"names[{index}]", f"{_short(name)} is not a valid host name")
    timeout = body.get("timeout", config.resolve_default_timeout)
    max_timeout = config.resolver_max_timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= max_timeout
    ):
        raise InvalidField("timeout", f"a number of seconds, > 0 and <= {max_timeout:g}")
    mode = body.get("mode", "concurrent")
    if mode not in MODES:
        raise InvalidField("mode", f"one of {', '.join(MODES)}")
    return {"names": names, "timeout": float(timeout), "mode": mode}


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
