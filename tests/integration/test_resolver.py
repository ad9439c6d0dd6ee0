"""The running ``resolver`` service over HTTP, resolving names of the stack's own zone.

Needs the resolver on stack.resolver_url (default http://127.0.0.1:8053) with the ``dns``
service behind it: `make up`, or locally
`DNS_PORT=11053 .venv/bin/python -m services.dns` and
`RESOLVER_PORT=18053 DNS_PORT=11053 .venv/bin/python -m services.resolver`, then
`RESOLVER_PORT=18053 .venv/bin/pytest tests/integration/test_resolver.py`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from tests.stack import Stack, unavailable

Reply = tuple[int, str, Any]


@pytest.fixture(scope="module", autouse=True)
def resolver_answers(stack: Stack) -> None:
    try:
        status, _, document = call(stack, "GET", "/healthz", timeout=2)
    except OSError:
        status, document = 0, None
    if status != 200 or document != {"status": "ok"}:
        unavailable(f"the resolver on {stack.resolver_url}")


def call(
    stack: Stack, method: str, path: str, body: bytes | None = None, timeout: float = 30
) -> Reply:
    """(status, content type, decoded JSON body) of one HTTP request, errors included."""
    sent = urllib.request.Request(f"{stack.resolver_url}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(sent, timeout=timeout) as response:
            return response.status, response.headers["Content-Type"], json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], json.load(error)


def resolve(stack: Stack, document: Any) -> Reply:
    return call(stack, "POST", "/resolve", json.dumps(document).encode())


def slow(count: int, delay_ms: int) -> list[str]:
    """Distinct names (a fresh X label each) answered by the dns service after delay_ms."""
    tag = uuid.uuid4().hex[:8]
    return [f"i{index}-{tag}.delay-{delay_ms}.polyloop.test" for index in range(count)]


def errors(document: dict) -> list[str | None]:
    return [result["error"] for result in document["results"]]


def test_names_resolve_in_request_order(stack: Stack) -> None:
    names = ["host-7.polyloop.test", "nope.polyloop.test", "www.polyloop.test"]
    status, content_type, document = resolve(stack, {"names": names})
    assert status == 200
    assert content_type == "application/json"
    assert document["mode"] == "concurrent"
    assert [result["name"] for result in document["results"]] == names
    assert errors(document) == [None, "not_found", None]
    assert document["results"][0]["addresses"] == ["192.0.2.7", "2001:db8::7"]
    assert document["results"][2]["addresses"] == ["192.0.2.10", "2001:db8::10"]
    assert all(result["elapsed_ms"] >= 0 for result in document["results"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (json.dumps({"names": ["host-1.polyloop.test"] * 257}).encode(), 422),
        (json.dumps({"names": ["x" * 63 + "." + "y" * 63 + "." + "z" * 126]}).encode(), 422),
        (json.dumps({"names": ["a" * 64 + ".polyloop.test"]}).encode(), 422),
        (json.dumps({"names": ["bad_name.polyloop.test"]}).encode(), 422),
        (json.dumps({"names": ["-bad.polyloop.test"]}).encode(), 422),
        (json.dumps({"names": [1, 2]}).encode(), 422),
        (json.dumps({"names": "www.polyloop.test"}).encode(), 422),
        (json.dumps({"names": ["www.polyloop.test"], "timeout": 31}).encode(), 422),
        (json.dumps({"names": ["www.polyloop.test"], "mode": "fast"}).encode(), 422),
        (b'{"names": [', 400),
        (b'{"names": ["' + b"w" * 70_000 + b'"]}', 413),
    ],
)
def test_a_bad_request_gets_a_problem(stack: Stack, body: bytes, status: int) -> None:
    answered, content_type, problem = call(stack, "POST", "/resolve", body)
    assert answered == status
    assert content_type == "application/problem+json"
    assert set(problem) == {"type", "title", "status", "detail"}
    assert problem["status"] == status


def test_unknown_path_and_wrong_method(stack: Stack) -> None:
    assert call(stack, "GET", "/nowhere")[0] == 404
    assert call(stack, "GET", "/resolve")[0] == 405


def test_a_slow_name_times_out_while_the_others_return(stack: Stack) -> None:
    names = ["a.delay-3000.polyloop.test", "host-1.polyloop.test"]
    started = time.monotonic()
    status, _, document = resolve(stack, {"names": names, "timeout": 0.5})
    elapsed = time.monotonic() - started
    assert status == 200
    assert errors(document) == ["timeout", None]
    assert document["results"][1]["addresses"] == ["192.0.2.1", "2001:db8::1"]
    assert elapsed < 2.5  # answered at its timeout, not when the slow name would be


def test_concurrent_takes_less_than_a_third_of_sequential(stack: Stack) -> None:
    _, _, sequential = resolve(stack, {"names": slow(20, 100), "mode": "sequential"})
    assert sequential["mode"] == "sequential"
    assert errors(sequential) == [None] * 20
    assert sequential["elapsed_ms"] >= 2000
    _, _, concurrent = resolve(stack, {"names": slow(20, 100), "mode": "concurrent"})
    assert errors(concurrent) == [None] * 20
    assert concurrent["elapsed_ms"] < sequential["elapsed_ms"] / 3


def test_200_slow_names_resolve_concurrently(stack: Stack, request: pytest.FixtureRequest) -> None:
    # a generous timeout: the test is about no errors (RESOLVER_BACKEND=threadpool takes ~4 s)
    status, _, document = resolve(stack, {"names": slow(200, 100), "timeout": 10})
    assert status == 200
    assert errors(document) == [None] * 200
    assert {tuple(result["addresses"]) for result in document["results"]} == {("192.0.2.254",)}
    # the goal is < 500 ms with RESOLVER_BACKEND=dnspython; reported, not asserted
    request.node.user_properties.append(("elapsed_ms_200_x_delay_100", document["elapsed_ms"]))


def test_metrics_count_what_was_resolved(stack: Stack) -> None:
    resolve(stack, {"names": ["www.polyloop.test"]})
    sent = urllib.request.Request(f"{stack.resolver_url}/metrics")
    with urllib.request.urlopen(sent, timeout=10) as response:
        text = response.read().decode()
    assert 'resolver_names_resolved_total{outcome="ok"}' in text
    assert 'resolver_http_requests_total{method="POST",route="/resolve",status="200"}' in text
    assert "resolver_resolve_duration_seconds_bucket" in text
    assert "resolver_requests_in_flight" in text
