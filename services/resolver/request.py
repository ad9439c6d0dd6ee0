"""The ``POST /resolve`` body, checked at the edge.

``parse_request(body, limits)`` turns raw bytes into a ``ResolveRequest`` or raises
``Problem`` with the status the contract names: 400 for malformed JSON, 422 for a body of
the wrong shape (not an object, more than ``max_names`` names, a name that is not a
host name, a bad ``timeout`` or ``mode``). A host name is at most 253 characters (an
optional trailing dot aside) of dot-separated labels, each 1-63 letters, digits or
hyphens, not starting or ending with a hyphen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from services.common.hostname import is_host_name
from services.resolver.resolve import MODES


class Problem(Exception):
    """An HTTP error answered as ``application/problem+json`` (RFC 9457)."""

    def __init__(self, status: int, detail: str, *, close: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.close = close  # the rest of the body is not worth reading: end the connection


@dataclass(frozen=True)
class Limits:
    max_names: int = 256
    max_timeout: float = 30.0
    default_timeout: float = 5.0


@dataclass(frozen=True)
class ResolveRequest:
    names: list[str]
    timeout: float
    mode: str


def parse_request(body: bytes, limits: Limits) -> ResolveRequest:
    try:
        document = _loads(body)
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError and JSONDecodeError are ValueErrors; deep nesting recurses
        raise Problem(400, f"the body is not valid JSON: {_short(exc)}") from None
    if not isinstance(document, dict):
        raise Problem(422, "the body must be a JSON object with a 'names' list")
    return ResolveRequest(
        names=_names(document.get("names"), limits.max_names),
        timeout=_timeout(document.get("timeout", limits.default_timeout), limits.max_timeout),
        mode=_mode(document.get("mode", "concurrent")),
    )


def _names(names: object, max_names: int) -> list[str]:
    if not isinstance(names, list):
        raise Problem(422, "'names' must be a list of host names")
    if not 1 <= len(names) <= max_names:
        raise Problem(422, f"'names' must hold 1 to {max_names} names, not {len(names)}")
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise Problem(422, f"names[{index}] must be a string, not {type(name).__name__}")
        if not is_host_name(name):
            raise Problem(
                422,
                f"names[{index}] is not a valid host name: at most 253 characters of "
                "dot-separated labels of 1-63 letters, digits or hyphens, "
                "not starting or ending with a hyphen",
            )
    return names


def _timeout(timeout: object, max_timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise Problem(422, "'timeout' must be a number of seconds")
    if not 0 < timeout <= max_timeout:
        raise Problem(422, f"'timeout' must be > 0 and <= {max_timeout:g} seconds")
    return float(timeout)


def _mode(mode: object) -> str:
    if mode not in MODES:
        raise Problem(422, f"'mode' must be one of {', '.join(MODES)}")
    return str(mode)


def _reject_constant(constant: str) -> float:
    # json.loads accepts NaN and Infinity, which are not JSON (RFC 8259)
    raise ValueError(f"{constant} is not valid JSON")


# made once: json.loads(body, parse_constant=...) builds a decoder (and its scanner) on
# every call, which doubled the cost of parsing a one-name request
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(body: bytes) -> object:
    """``json.loads(body, parse_constant=_reject_constant)``, with the decoder made once."""
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
