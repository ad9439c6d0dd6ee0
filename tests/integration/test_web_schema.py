"""Schemathesis explores the live front from its own ``/api/openapi.json``: no 5xx, and
every response matches the document (status, content type, body schema).

Needs the whole stack (`make up`): the front at stack.web_url and its backends. Bounded:
a few examples per operation, a deadline per example. Generated host names are moved
under polyloop.test so that every lookup stays inside the stack's own dns.

The document is fetched when the module is collected (schemathesis parametrizes from
it); if the front is not answering then, one test reports it instead.

A generated ``PUT /api/faults/{service}`` may set a real fault (up to 600 s, blocking a loop
2 s a second): each case that changes a service's faults clears that service's faults
again before the next case, whatever its outcome, so the tests after this one find the
stack unbroken.
"""

from __future__ import annotations

import json
import urllib.error
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
        try:
            case.call_and_validate(base_url=WEB_URL, checks=CHECKS, timeout=40)
        finally:
            if case.method.upper() == "PUT" and case.path == "/api/faults/{service}":
                _clear((case.path_parameters or {}).get("service"))


def _clear(service: Any) -> None:
    """DELETE that service's faults (a name the API does not know has none)."""
    if not isinstance(service, str) or not service.replace("-", "").isalpha():
        return
    request = urllib.request.Request(f"{WEB_URL}/api/faults/{service}", method="DELETE")
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as exc:
        exc.close()  # 404 for a generated name, 403 when faults are off: nothing set
