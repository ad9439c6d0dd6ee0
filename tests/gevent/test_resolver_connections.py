"""The resolver's HTTP edge under attack (issue 8, items 1, 2 and 9): odd methods that must
not grow the metrics, slow and idle clients that must not lock the slots, and pywsgi's own
refusals as problem+json. Real clients on 127.0.0.1 against a real gevent.pywsgi server.

Needs nothing running: a dns service subprocess is started on a free port (conftest).
Run: .venv/bin/python -m pytest -c tests/gevent/pytest.ini tests/gevent
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from collections.abc import Iterator

import gevent
import pytest
from prometheus_client import generate_latest

from services.resolver.api import METHODS, ROUTES, ResolverApp
from services.resolver.backends import ERRORS
from services.resolver.metrics import SHED_REASONS
from services.resolver.resolve import MODES
from services.resolver.server import ResolverServer
from tests.gevent.conftest import call, post_resolve

CLOSED_LABELS = {
    "method": METHODS | {"other"},
    "route": set(ROUTES) | {"other"},
    "outcome": set(ERRORS) | {"ok"},
    "mode": set(MODES),
    "reason": set(SHED_REASONS),
}


def metrics_text(app: ResolverApp) -> bytes:
    return generate_latest(app.metrics.registry)


def test_thousands_of_odd_methods_leave_the_metrics_flat(app: ResolverApp) -> None:
    call(app, "BREW", "/healthz")
    before = len(metrics_text(app))
    for _ in range(3000):
        reply = call(app, "M" + uuid.uuid4().hex.upper() * 8, "/healthz")
        assert reply.status == 405
        assert len(reply.body) < 300  # the method is not echoed whole
    assert len(metrics_text(app)) - before < 100  # one counter's digits grew, nothing else
    assert b'method="other",route="/healthz",status="405"} 3001.0' in metrics_text(app)


def test_every_label_value_is_from_a_closed_set(app: ResolverApp) -> None:
    for method, path in [("GET", "/healthz"), ("PROPFIND", "/x" * 500), ("DELETE", "/resolve")]:
        call(app, method, path)
    names = ["www.polyloop.test", "nope.polyloop.test", "a.delay-2000.polyloop.test", "x.invalid"]
    post_resolve(app, {"names": names, "timeout": 0.3})
    post_resolve(app, {"names": names, "timeout": 0.3, "mode": "sequential"})
    post_resolve(app, {"names": "not a list"})
    seen = set()
    for metric in app.metrics.registry.collect():
        if metric.name == "python_info":  # the interpreter's version, fixed at start
            continue
        for sample in metric.samples:
            for label, value in sample.labels.items():
                seen.add(label)
                if label == "le":  # histogram buckets: fixed by the code
                    continue
                if label == "status":  # the app answers only the statuses of its code
                    assert value.isdigit() and len(value) == 3
                    continue
                assert value in CLOSED_LABELS[label], (sample.name, label, value)
    assert {"method", "route", "outcome", "mode", "status"} <= seen


# -- connection slots -------------------------------------------------------------------


@pytest.fixture
def slots(app: ResolverApp) -> Iterator[ResolverServer]:
    """The production defaults for slots and timeouts: 100 connections, 30 s of silence."""
    wsgi = ResolverServer(("127.0.0.1", 0), app, max_connections=100, client_timeout=30.0)
    wsgi.start()
    try:
        yield wsgi
    finally:
        wsgi.stop(timeout=1)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def idle_keep_alive(port: int) -> socket.socket:
    """A connection that made one request and now sits idle, kept alive."""
    sock = connect(port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    reply = b""
    while b'"ok"}' not in reply:
        chunk = sock.recv(4096)
        assert chunk, "the server closed a fresh keep-alive connection"
        reply += chunk
    return sock


def half_sent(port: int) -> socket.socket:
    """A slowloris: a request line and one header, the rest never comes."""
    sock = connect(port)
    sock.sendall(b"POST /resolve HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n")
    return sock


def healthz(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


def resolve_www(port: int, timeout: float = 1) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = json.dumps({"names": ["www.polyloop.test"]})
        connection.request("POST", "/resolve", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return {"status": response.status, **json.loads(response.read())}
    finally:
        connection.close()


def test_slow_and_idle_clients_cannot_lock_out_healthz_or_a_resolve(
    slots: ResolverServer,
) -> None:
    port = slots.server_port
    clients = [idle_keep_alive(port) for _ in range(60)]
    clients += [half_sent(port) for _ in range(60)]
    try:
        for _ in range(5):
            started = time.monotonic()
            assert healthz(port) == 200
            reply = resolve_www(port)
            assert reply["results"][0]["addresses"] == ["192.0.2.10", "2001:db8::10"]
            assert time.monotonic() - started < 1.0
    finally:
        for client in clients:
            client.close()


def closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing ``sock``, or None if it is still open."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def test_idle_connections_go_first_then_the_slowest_arriving_one(app: ResolverApp) -> None:
    wsgi = ResolverServer(("127.0.0.1", 0), app, max_connections=2, client_timeout=30.0)
    wsgi.start()
    try:
        port = wsgi.server_port
        idle, slow = idle_keep_alive(port), half_sent(port)
        assert healthz(port) == 200  # took the idle one's slot
        assert closed_by_server(idle, within=1) == b""
        assert closed_by_server(slow, within=0.2) is None  # still waiting for its body
        slower = half_sent(port)  # the slot healthz freed
        assert healthz(port) == 200  # now takes the slot of the one arriving the longest
        assert closed_by_server(slow, within=1) is not None
        assert closed_by_server(slower, within=0.2) is None
        for sock in (idle, slow, slower):
            sock.close()
        assert [app.metrics.shed[reason] for reason in SHED_REASONS] == [1, 1, 0, 0]
    finally:
        wsgi.stop(timeout=1)


def test_a_request_that_trickles_in_is_cut_at_the_request_deadline(app: ResolverApp) -> None:
    # each byte comes well within the 30 s of silence allowed: only a whole-request
    # deadline ends it
    wsgi = ResolverServer(
        ("127.0.0.1", 0), app, max_connections=10, client_timeout=30.0, request_timeout=1.0
    )
    wsgi.start()
    try:
        sock = connect(wsgi.server_port)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        reply = None
        while reply is None and time.monotonic() - started < 4:
            try:
                sock.sendall(b"a")
            except OSError:
                break
            reply = closed_by_server(sock, within=0.2)
        elapsed = time.monotonic() - started
        assert reply is not None, "still open after 4 s"
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert b"application/problem+json" in reply
        assert 0.8 <= elapsed < 2.0
        assert app.metrics.shed["deadline"] == 1
        sock.close()
    finally:
        wsgi.stop(timeout=1)


def test_when_every_slot_is_busy_healthz_answers_and_the_rest_get_503(
    app: ResolverApp,
) -> None:
    wsgi = ResolverServer(("127.0.0.1", 0), app, max_connections=2, client_timeout=30.0)
    wsgi.start()
    try:
        port = wsgi.server_port

        def slow_resolve() -> int:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            body = json.dumps({"names": [f"a{uuid.uuid4().hex[:8]}.delay-1500.polyloop.test"]})
            try:
                connection.request("POST", "/resolve", body)
                return connection.getresponse().status
            finally:
                connection.close()

        busy = [gevent.spawn(slow_resolve) for _ in range(2)]
        deadline = time.monotonic() + 5
        while app.metrics.in_flight < 2:
            assert time.monotonic() < deadline, "the two resolves never became busy"
            gevent.sleep(0.01)
        started = time.monotonic()
        assert healthz(port) == 200
        reply = resolve_www(port)
        assert reply["status"] == 503
        assert time.monotonic() - started < 1.0
        assert app.metrics.shed["full"] == 1
        assert [job.get(timeout=10) for job in busy] == [200, 200]
    finally:
        wsgi.stop(timeout=1)


# -- pywsgi's own refusals ----------------------------------------------------------------


def raw_exchange(port: int, request: bytes) -> bytes:
    with connect(port) as sock:
        sock.sendall(request)
        reply = closed_by_server(sock, within=3)
    assert reply is not None, "the server kept the connection"
    return reply


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"HELLO\r\n\r\n", 400),
        (b"GET /healthz HTTP/7.0\r\n\r\n", 400),
        (b"POST /resolve HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /resolve HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\n" + b"X: 1\r\n" * 101 + b"\r\n", 431),
    ],
)
def test_pywsgi_refusals_are_problem_json(server: str, request_bytes: bytes, status: int) -> None:
    port = int(server.rsplit(":", 1)[1])
    reply = raw_exchange(port, request_bytes)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Content-Type: application/problem+json" in head
    problem = json.loads(body)
    assert problem["status"] == status
    assert set(problem) == {"type", "title", "status", "detail"}
    assert b"aaaaaaaaaa" not in body and b"HELLO" not in body and b"abc" not in body
