"""What a correct HTTP answer looks like, for the users that load the JSON APIs.

Each check takes the decoded JSON body and raises ``WrongAnswer`` when it is not what the
API promises (the web front's OpenAPI document, ``GET /api/openapi.json``, and the
resolver's ``POST /resolve`` in the README); ``judge`` turns that into a Locust failure on a
``catch_response`` response, so a wrong answer fails the run like an error does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from loadtest._clients import WrongAnswer

BodyCheck = Callable[[Any], None]
ANY_ADDRESS = "*"  # an expected address meaning "some address, none in particular"


def judge(response: Any, check: BodyCheck) -> None:
    """Mark a ``catch_response`` response failed unless it is a 200 whose JSON passes ``check``."""
    if response.status_code != 200:
        detail = response.error or (response.text or "")[:200]
        response.failure(f"HTTP {response.status_code}: {detail}")
        return
    try:
        check(response.json())
    except (ValueError, WrongAnswer) as err:  # ValueError: the body is not JSON
        response.failure(str(err))
        return
    response.success()


def judge_page(response: Any) -> None:
    """The dashboard: a 200 HTML page."""
    kind = response.headers.get("content-type", "")
    if response.status_code != 200 or not kind.startswith("text/html"):
        response.failure(f"HTTP {response.status_code} {kind}: expected the dashboard page")
    else:
        response.success()


def echoed(message: str) -> BodyCheck:
    """``{"echo", "bytes", "latency_ms"}`` with the message sent, unchanged."""

    def check(body: Any) -> None:
        if not isinstance(body, dict) or body.get("echo") != message:
            raise WrongAnswer(f"echo differs from the {len(message)} chars sent: {body!r:.200}")
        if body.get("bytes") != len(message.encode()):
            raise WrongAnswer(f"bytes {body.get('bytes')!r} != {len(message.encode())}")

    return check


def resolved(expected: Sequence[tuple[str, str | None]]) -> BodyCheck:
    """The resolver's answer: one result per name, in order; the address, or not_found (None)."""

    def check(body: Any) -> None:
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(expected):
            raise WrongAnswer(f"expected {len(expected)} results: {body!r:.200}")
        for result, (name, address) in zip(results, expected, strict=True):
            _check_result(result, name, address)

    return check


def all_answered(names: Sequence[str]) -> BodyCheck:
    """Every name resolved to at least one address (for names whose address is not fixed)."""
    return resolved([(name, ANY_ADDRESS) for name in names])


def _check_result(result: Any, name: str, address: str | None) -> None:
    if not isinstance(result, dict) or result.get("name") != name:
        raise WrongAnswer(f"result out of order or malformed for {name}: {result!r:.200}")
    if address is None:
        if result.get("error") != "not_found":
            raise WrongAnswer(f"{name}: expected not_found, got {result!r:.200}")
        return
    addresses = result.get("addresses") or []
    if result.get("error") is not None or not addresses:
        raise WrongAnswer(f"{name}: expected an address, got {result!r:.200}")
    if address != ANY_ADDRESS and address not in addresses:
        raise WrongAnswer(f"{name}: expected {address}, got {result!r:.200}")


def fanned_out(message: str, expected: Sequence[tuple[str, str | None]]) -> BodyCheck:
    """The fan-out: every part in its own slot (``tcp``, ``udp``, ``resolve``), none failed."""
    echo, resolution = echoed(message), resolved(expected)

    def check(body: Any) -> None:
        if not isinstance(body, dict) or body.get("failed") != []:
            raise WrongAnswer(f"a part failed: {body!r:.300}")
        echo(body.get("tcp"))
        echo(body.get("udp"))
        resolution(body.get("resolve"))

    return check
