"""The web front as it runs in the stack, end to end through real HTTP.

Needs the whole stack answering: the front at stack.web_url (WEB_PORT, default 8080)
and behind it tcp-echo, udp-echo, the resolver and dns — `make up`. Resolve requests
name only polyloop.test hosts, served by the stack's own dns.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.stack import Stack, unavailable

TIMEOUT = 10.0
BACKENDS = {"tcp-echo", "udp-echo", "resolver", "dns"}


class Reply:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    def json(self) -> Any:
        return json.loads(self.body)


def call(stack: Stack, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Reply:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        stack.web_url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"} if data is not None else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


@pytest.fixture(scope="module", autouse=True)
def ready_stack(stack: Stack) -> None:
    """The front answers and every backend behind it is up (polled, with a deadline)."""
    deadline = time.monotonic() + 15
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            reply = call(stack, "GET", "/readyz")
        except OSError as exc:
            last = str(exc)
        else:
            if reply.status == 200:
                return
            last = reply.body.decode(errors="replace")
        time.sleep(0.5)
    unavailable(f"the web front at {stack.web_url} with all its backends ({last})")


def problem(reply: Reply, status: int) -> dict:
    assert reply.status == status, reply.body
    assert reply.content_type == "application/problem+json"
    body = reply.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= body.keys()
    return body


def test_healthz(stack: Stack) -> None:
    reply = call(stack, "GET", "/healthz")
    assert reply.status == 200
    assert reply.json() == {"status": "ok"}
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]


def test_readyz_names_all_four_backends_up(stack: Stack) -> None:
    reply = call(stack, "GET", "/readyz")
    assert reply.status == 200
    checks = reply.json()["backends"]
    assert set(checks) == BACKENDS
    for name, check in checks.items():
        assert check["state"] == "up", name
        assert check["latency_ms"] >= 0


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_echo(stack: Stack, transport: str) -> None:
    message = f"héllo over {transport} " * 10
    reply = call(stack, "POST", f"/api/echo/{transport}", {"message": message})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["echo"] == message
    assert body["bytes"] == len(message.encode())
    assert body["latency_ms"] >= 0


def test_resolve_through_the_front(stack: Stack) -> None:
    names = ["www.polyloop.test", "host-7.polyloop.test", "missing.polyloop.test"]
    reply = call(stack, "POST", "/api/resolve", {"names": names, "mode": "sequential"})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["mode"] == "sequential"
    results = body["results"]
    assert [r["name"] for r in results] == names
    assert "192.0.2.10" in results[0]["addresses"]
    assert "192.0.2.7" in results[1]["addresses"]
    assert results[2]["error"] is not None


def test_fanout(stack: Stack) -> None:
    reply = call(
        stack, "POST", "/api/fanout", {"message": "fan", "names": ["host-1.polyloop.test"]}
    )
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["failed"] == []
    assert body["tcp"]["echo"] == body["udp"]["echo"] == "fan"
    assert "192.0.2.1" in body["resolve"]["results"][0]["addresses"]


def test_a_slow_name_is_a_timeout_in_its_slot_not_a_failure(stack: Stack) -> None:
    names = ["a.delay-3000.polyloop.test", "www.polyloop.test"]
    reply = call(stack, "POST", "/api/resolve", {"names": names, "timeout": 0.5})
    assert reply.status == 200, reply.body
    results = reply.json()["results"]
    assert results[0]["error"] == "timeout"
    assert results[1]["error"] is None


def test_metrics_name_the_backends_after_calls(stack: Stack) -> None:
    for transport in ("tcp", "udp"):
        assert call(stack, "POST", f"/api/echo/{transport}", {"message": "m"}).status == 200
    assert call(stack, "POST", "/api/resolve", {"names": ["www.polyloop.test"]}).status == 200
    call(stack, "GET", "/readyz")
    reply = call(stack, "GET", "/metrics")
    assert reply.status == 200
    text = reply.body.decode()
    for name in [
        "polyloop_web_requests_total",
        "polyloop_web_request_seconds_bucket",
        "polyloop_web_backend_calls_total",
        "polyloop_web_backend_call_seconds_bucket",
        "polyloop_web_backend_in_flight",
    ]:
        assert name in text, name
    for backend in BACKENDS:
        assert f'polyloop_web_backend_calls_total{{backend="{backend}",outcome="ok"}}' in text


def test_malformed_json_is_400(stack: Stack) -> None:
    problem(call(stack, "POST", "/api/echo/tcp", raw=b'{"message": '), 400)


def test_too_large_is_413(stack: Stack) -> None:
    raw = b'{"message": "' + b"x" * 70_000 + b'"}'
    problem(call(stack, "POST", "/api/echo/tcp", raw=raw), 413)


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/api/echo/tcp", {"text": "hi"}, "message"),
        ("/api/echo/udp", {"message": "u" * 4097}, "message"),
        ("/api/resolve", {"names": ["bad..name"]}, "names[0]"),
        ("/api/resolve", {"names": ["www.polyloop.test"], "timeout": 60}, "timeout"),
        ("/api/fanout", {"message": "m", "names": []}, "names"),
    ],
)
def test_wrong_shape_is_422(stack: Stack, path: str, payload: dict, field: str) -> None:
    assert problem(call(stack, "POST", path, payload), 422)["field"] == field


def test_unknown_route_404_and_wrong_method_405(stack: Stack) -> None:
    problem(call(stack, "GET", "/api/nope"), 404)
    reply = call(stack, "DELETE", "/api/echo/udp")
    problem(reply, 405)
    assert reply.headers["Allow"] == "POST"


def test_openapi_document_is_served(stack: Stack) -> None:
    reply = call(stack, "GET", "/api/openapi.json")
    assert reply.status == 200
    validate(reply.json())
