"""The resolver's WSGI app in-process: validation, errors, health and metrics.

Needs nothing running: a dns service subprocess is started on a free port (conftest).
Run: .venv/bin/pytest tests/gevent -p no:cacheprovider
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from services.common import probes
from services.resolver.api import ResolverApp
from tests.gevent.conftest import Reply, call, post_resolve

LABEL_63 = "a" * 63


def name_of_length(length: int) -> str:
    """An in-zone host name of exactly ``length`` characters (labels <= 63)."""
    suffix = ".polyloop.test"
    labels, left = [], length - len(suffix)
    while left > 0:
        size = min(63, left)
        if left - size == 1:  # never leave a lone dot
            size -= 1
        labels.append("x" * size)
        left -= size + 1
    name = ".".join(labels) + suffix
    assert len(name) == length
    return name


def assert_problem(reply: Reply, status: int) -> dict:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert set(problem) == {"type", "title", "status", "detail"}
    assert problem["status"] == status
    assert problem["detail"]
    assert b"Traceback" not in reply.body
    return problem


@pytest.mark.parametrize(
    "name",
    [
        name_of_length(254),
        f"{'a' * 64}.polyloop.test",
        "under_score.polyloop.test",
        "with space.polyloop.test",
        "-lead.polyloop.test",
        "trail-.polyloop.test",
        "double..dot.polyloop.test",
        "",
        ".",
        "ünicode.polyloop.test",
        "semi;colon.polyloop.test",
        "slash/polyloop.test",
    ],
)
def test_an_invalid_host_name_is_422(app: ResolverApp, name: str) -> None:
    problem = assert_problem(post_resolve(app, {"names": ["www.polyloop.test", name]}), 422)
    assert "names[1]" in problem["detail"]


@pytest.mark.parametrize(
    "name",
    [
        name_of_length(253),
        name_of_length(253) + ".",
        f"{LABEL_63}.polyloop.test",
        "Host-1.POLYLOOP.test",
        "9.polyloop.test",
    ],
)
def test_the_longest_valid_names_are_accepted(app: ResolverApp, name: str) -> None:
    reply = post_resolve(app, {"names": [name], "timeout": 2})
    assert reply.status == 200, reply.body
    assert reply.json()["results"][0]["name"] == name


def test_more_than_256_names_is_422(app: ResolverApp) -> None:
    names = [f"host-{n % 250 + 1}.polyloop.test" for n in range(257)]
    problem = assert_problem(post_resolve(app, {"names": names}), 422)
    assert "256" in problem["detail"]


def test_256_names_are_accepted(app: ResolverApp) -> None:
    names = [f"host-{n % 250 + 1}.polyloop.test" for n in range(256)]
    reply = post_resolve(app, {"names": names})
    assert reply.status == 200
    assert [result["name"] for result in reply.json()["results"]] == names


@pytest.mark.parametrize(
    "document",
    [
        ["www.polyloop.test"],
        None,
        "www.polyloop.test",
        {},
        {"names": "www.polyloop.test"},
        {"names": []},
        {"names": [42]},
        {"names": [None]},
        {"names": [["www.polyloop.test"]]},
        {"names": ["www.polyloop.test"], "timeout": "5"},
        {"names": ["www.polyloop.test"], "timeout": True},
        {"names": ["www.polyloop.test"], "timeout": 0},
        {"names": ["www.polyloop.test"], "timeout": -1},
        {"names": ["www.polyloop.test"], "timeout": 30.5},
        {"names": ["www.polyloop.test"], "timeout": None},
        {"names": ["www.polyloop.test"], "mode": "parallel"},
        {"names": ["www.polyloop.test"], "mode": None},
    ],
)
def test_a_body_of_the_wrong_shape_is_422(app: ResolverApp, document: object) -> None:
    assert_problem(post_resolve(app, document), 422)


@pytest.mark.parametrize(
    "body",
    [
        b'{"names": ["www.polyloop.test"',
        b"not json",
        b"",
        b'{"names": ["www.polyloop.test"], "timeout": NaN}',
        b'{"names": ["www.polyloop.test"], "timeout": Infinity}',
        b"\xff\xfe{}",
        b"[" * 50_000 + b"]" * 10,
    ],
)
def test_malformed_json_is_400(app: ResolverApp, body: bytes) -> None:
    assert_problem(call(app, "POST", "/resolve", body), 400)


def test_a_body_over_the_limit_is_413(app: ResolverApp) -> None:
    body = json.dumps({"names": ["www.polyloop.test"] * 10, "pad": "x" * 70_000}).encode()
    assert_problem(call(app, "POST", "/resolve", body), 413)


def test_a_body_without_length_over_the_limit_is_413(app: ResolverApp) -> None:
    # chunked requests carry no Content-Length: the app must still stop reading
    body = b'{"pad": "' + b"x" * 70_000 + b'"}'
    assert_problem(call(app, "POST", "/resolve", body, content_length=0), 413)


def test_an_unknown_path_is_404(app: ResolverApp) -> None:
    assert_problem(call(app, "GET", "/nowhere"), 404)


def test_a_wrong_method_is_405_with_allow(app: ResolverApp) -> None:
    reply = call(app, "GET", "/resolve")
    assert_problem(reply, 405)
    assert reply.headers["allow"] == "POST"
    assert call(app, "DELETE", "/healthz").headers["allow"] == "GET, HEAD"


def test_healthz(app: ResolverApp) -> None:
    reply = call(app, "GET", "/healthz")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"status": "ok"}
    head = call(app, "HEAD", "/healthz")
    assert head.status == 200
    assert head.body == b""


def test_metrics_count_requests_names_and_latency(app: ResolverApp) -> None:
    post_resolve(app, {"names": ["www.polyloop.test", "nope.polyloop.test"]})
    call(app, "POST", "/resolve", b"{")
    reply = call(app, "GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    assert 'resolver_http_requests_total{method="POST",route="/resolve",status="200"} 1.0' in text
    assert 'resolver_http_requests_total{method="POST",route="/resolve",status="400"} 1.0' in text
    assert 'resolver_names_resolved_total{outcome="ok"} 1.0' in text
    assert 'resolver_names_resolved_total{outcome="not_found"} 1.0' in text
    assert 'resolver_resolve_duration_seconds_count{mode="concurrent"} 1.0' in text
    assert "resolver_requests_in_flight 0.0" in text


def test_over_http_a_large_body_is_413_and_the_server_keeps_serving(server: str) -> None:
    body = b'{"names": ["www.polyloop.test"], "pad": "' + b"x" * 100_000 + b'"}'
    request = urllib.request.Request(f"{server}/resolve", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 413
    assert caught.value.headers["Content-Type"] == "application/problem+json"
    assert json.load(caught.value)["status"] == 413
    with urllib.request.urlopen(f"{server}/healthz", timeout=10) as response:
        assert json.load(response) == {"status": "ok"}


def test_over_http_a_resolve_round_trip(server: str) -> None:
    body = json.dumps({"names": ["www.polyloop.test"], "timeout": 2}).encode()
    request = urllib.request.Request(f"{server}/resolve", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json"
        document = json.load(response)
    assert document["mode"] == "concurrent"
    assert document["results"][0]["addresses"] == ["192.0.2.10", "2001:db8::10"]


def raw_exchange(server: str, payload: bytes) -> bytes:
    """Send raw bytes to the server; read one answer (headers and Content-Length body)."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, f"closed before a full answer: {answer!r}"
            answer += chunk
        head = answer.split(b"\r\n\r\n")[0].decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        while len(answer.split(b"\r\n\r\n", 1)[1]) < length:
            chunk = sock.recv(65536)
            assert chunk, f"closed before a full answer: {answer!r}"
            answer += chunk
    return answer


def test_over_http_a_silent_client_is_disconnected(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server: nothing was asked
        assert time.monotonic() - started < 8  # the client timeout is 2 s here


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        # a body that never comes
        (b"POST /resolve HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{", 408),
        # a broken chunked body
        (b"POST /resolve HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        # a declared oversize body: only the headers are sent, the answer must not wait for
        # the announced megabyte
        (b"POST /resolve HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n{", 413),
    ],
    ids=["body-never-comes-408", "broken-chunked-400", "declared-oversize-413-at-once"],
)
def test_over_http_a_bad_body_is_a_problem_and_closes(
    server: str, payload: bytes, status: int
) -> None:
    answer = raw_exchange(server, payload)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert b"Connection: close" in head
    assert b"application/problem+json" in head
    assert json.loads(body)["status"] == status


def test_bodies_are_parsed_without_a_decoder_per_request(
    app: ResolverApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[dict] = []

    class CountingDecoder(json.JSONDecoder):
        def __init__(self, **options: object) -> None:
            built.append(options)
            super().__init__(**options)

    monkeypatch.setattr(json, "JSONDecoder", CountingDecoder)
    document = '{"names": ["www.polyloop.test"]}'
    for body in (document.encode(), document.encode("utf-16"), b"\xef\xbb\xbf" + document.encode()):
        # UTF-8, UTF-16 with its BOM, UTF-8 with a BOM: what json.loads takes from bytes
        assert call(app, "POST", "/resolve", body).status == 200
    nan = b'{"names": ["www.polyloop.test"], "timeout": NaN}'
    assert call(app, "POST", "/resolve", nan).status == 400
    assert built == []


def test_the_stacks_probe_is_answered_and_counted_apart(app: ResolverApp) -> None:
    """The front's steady client asks for the probe name alone: answered the same way,
    counted as a probe, never as a request served (services.common.probes)."""
    reply = post_resolve(app, {"names": [probes.NAME]})
    assert reply.status == 200
    assert reply.json()["results"][0]["addresses"][0] == probes.ADDRESS
    post_resolve(app, {"names": [probes.NAME, "www.polyloop.test"]})  # not the probe alone
    assert (app.probe_requests, app.resolve_requests) == (1, 1)
    text = call(app, "GET", "/metrics").body.decode()
    assert 'resolver_names_resolved_total{outcome="ok"} 2.0' in text  # the second request's
