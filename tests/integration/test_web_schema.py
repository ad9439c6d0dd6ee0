"""Schemathesis explores the live front from its own ``/api/openapi.json``: no 5xx, and
every response matches the document (status, content type, body schema).

Needs the whole stack (`make up`): the front at stack.web_url and its backends. Bounded:
a few examples per operation, a deadline per example. Generated host names are moved
under polyloop.test so that every lookup stays inside the stack's own dns.

The document is fetched when the module is collected (schemathesis parametrizes from
it); if the front is not answering then, one test reports it instead.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.stack import Stack, unavailable

# hypothesis's storage would otherwise be ./.hypothesis, which trips collection of the repo
set_hypothesis_home_dir("/tmp/polyloop-hypothesis")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
WEB_URL = Stack().web_url


def _document() -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{WEB_URL}/api/openapi.json", timeout=5) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def _inside_the_stack(body: Any) -> None:
    """Rewrite generated names to <first label>.polyloop.test (still valid host names)."""
    if isinstance(body, dict) and isinstance(body.get("names"), list):
        body["names"] = [
            f"{name.split('.')[0][:40]}.polyloop.test" if isinstance(name, str) and name else name
            for name in body["names"]
        ]


DOCUMENT = _document()

if DOCUMENT is None:

    def test_the_front_honours_its_openapi_document() -> None:
        unavailable(f"the web front at {WEB_URL} (its /api/openapi.json)")

else:
    # /ws/live is a WebSocket handshake: plain HTTP cases only exercise its 400
    schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path="/ws/live")

    @schema.parametrize()
    @settings(
        max_examples=25,
        deadline=10_000,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def test_the_front_honours_its_openapi_document(case: Any) -> None:
        _inside_the_stack(case.body)
        case.call_and_validate(base_url=WEB_URL, checks=CHECKS, timeout=40)
