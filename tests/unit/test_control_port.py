"""The control port under hostile clients (services/common/control_server.py), in-process:
slow sockets cannot lock it, a request must arrive whole within its deadline, anonymous
requests leave the token's slots free, and its refusals are problems. Real sockets on
127.0.0.1; every wait has a deadline."""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import make_wsgi_app

from services.common.control import ControlServer, ControlSettings, new_registry, serve
from services.common.control_server import TRUSTED, shared_for_anonymous
from services.common.faults import Faults, FaultSpec
from tests.control_port import faults_served

TOKEN = secrets.token_urlsafe(16)


def get(port: int, path: str, token: str | None = None, method: str = "GET") -> tuple[int, Any]:
    """(status, body); a connection closed without an answer is status 0."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(raw) if "json" in kind else raw
    except (ConnectionError, http.client.RemoteDisconnected):
        return 0, None
    finally:
        conn.close()


class SlowClients:
    """Sockets that send one byte of a request line, then one more every `every` seconds,
    and open again whatever the server closed (a persistent attacker)."""

    def __init__(self, port: int, count: int, every: float = 0.2) -> None:
        self.port = port
        self.count = count
        self.every = every
        self.sockets: list[socket.socket] = []
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowClients:
        self._refill()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()

    def _refill(self) -> None:
        while len(self.sockets) < self.count and not self._stop.is_set():
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.sendall(b"G")
            self.sockets.append(sock)
            self.opened += 1

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for sock in list(self.sockets):
                try:
                    sock.sendall(b"E")
                except OSError:
                    self.sockets.remove(sock)
                    sock.close()
            self._refill()


@pytest.fixture
def faults_port() -> Iterator[tuple[Faults, ControlServer]]:
    with faults_served(TOKEN) as served:
        yield served


def test_slow_sockets_cannot_lock_the_control_port(faults_port) -> None:
    """Three times the port's connections, each trickling its request line: a scrape and a
    fault cleared with the token are still answered, every time."""
    faults, server = faults_port
    faults.apply(FaultSpec(latency_ms=100))
    with SlowClients(server.port, 48):
        answered = [get(server.port, "/metrics")[0] for _ in range(10)]
        assert answered == [200] * 10
        assert get(server.port, "/faults", token=TOKEN, method="DELETE")[0] == 200
        shed = server.server.shed_total
        assert shed["idle"] + shed["slow"] >= 48 - server.server.capacity  # made room
    assert not faults.active


def test_a_request_must_arrive_whole_within_its_deadline() -> None:
    """One byte of the request every 0.1 s never ends on its own; the deadline ends it: a
    408 problem, whatever the pace of the reads."""
    settings = ControlSettings(admin_token=TOKEN, request_timeout=0.5)
    server = serve(settings, "127.0.0.1", 0, new_registry())
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.settimeout(0.1)
            answer = b""
            deadline = time.monotonic() + 10
            for byte in iter(lambda: b"X", None):
                assert time.monotonic() < deadline, "still open after 10 s"
                try:
                    sock.sendall(byte)
                    answer = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                break
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert b"application/problem+json" in head
        assert json.loads(body)["status"] == 408
        _, metrics = get(server.port, "/metrics")
        assert b'polyloop_control_connections_shed_total{reason="deadline"} 1.0' in metrics
    finally:
        server.close()


@pytest.fixture
def held() -> Iterator[tuple[ControlServer, threading.Event]]:
    """A port serving one anonymous request at a time, with a route that holds its slot
    until the test releases it."""
    release = threading.Event()

    def hold(environ: dict, start_response) -> list[bytes]:
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"held"]

    server = ControlServer(
        new_registry(), "127.0.0.1", 0, max_connections=1, token=TOKEN, routes={"/hold": hold}
    )
    server.start()
    yield server, release
    release.set()
    server.close()


def test_anonymous_requests_leave_the_tokens_slots_free(held) -> None:
    server, release = held
    holding = threading.Thread(target=get, args=(server.port, "/hold"), daemon=True)
    holding.start()
    deadline = time.monotonic() + 5
    while server.server.anonymous < 1:
        assert time.monotonic() < deadline, "the holding request never started"
        time.sleep(0.01)
    status, problem = get(server.port, "/metrics")
    assert status == 503 and problem["status"] == 503
    assert get(server.port, "/metrics", token=TOKEN)[0] == 200
    assert get(server.port, "/metrics", token=TOKEN[::-1])[0] == 503
    release.set()
    holding.join(5)
    assert get(server.port, "/metrics")[0] == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"NOT HTTP\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 120 + b"\r\n", 431),
        (b"PUT /faults HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
    ],
)
def test_what_the_parser_refuses_is_a_problem(faults_port, request_bytes, status) -> None:
    _, server = faults_port
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == str(status).encode(), answer[:200]
    assert json.loads(body)["status"] == status


def test_a_route_that_fails_is_a_bare_500_problem(caplog) -> None:
    def broken(environ: dict, start_response) -> list[bytes]:
        raise RuntimeError("a bug")

    server = ControlServer(new_registry(), "127.0.0.1", 0, routes={"/broken": broken})
    server.start()
    try:
        for _ in range(20):
            status, problem = get(server.port, "/broken")
            assert status == 500 and "bug" not in json.dumps(problem)
    finally:
        server.close()
    # a flood of them is one line (and a count of the rest), never a traceback each
    assert len([r for r in caplog.records if r.message == "control port route failed"]) == 1


class CountedCollector:
    """A collector that counts how often the exposition is made."""

    def __init__(self) -> None:
        self.made = 0

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        self.made += 1
        yield GaugeMetricFamily("polyloop_made", "how often the exposition was made", self.made)


def test_a_flood_of_anonymous_scrapes_costs_a_few_collections_a_second() -> None:
    """Past 10 collections a second without the token, the last one is served again; a
    reader at a human pace (a Prometheus, a test) always gets a fresh one, and a request
    with the token always does."""
    counted = CountedCollector()
    now = [100.0]
    shared = shared_for_anonymous(make_wsgi_app(new_registry(counted)), 10, lambda: now[0])

    def call(**environ: Any) -> bytes:
        answer: list[str] = []
        body = b"".join(shared(environ, lambda status, headers, *_: answer.append(status)))
        assert answer == ["200 OK"]
        return body

    plain = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}
    bodies = [call(**plain) for _ in range(1000)]  # a thousand within one instant
    assert counted.made == 10  # the burst; the other 990 got the tenth again
    assert set(bodies[10:]) == {bodies[9]}
    now[0] += 0.5  # half a second later: five more are fresh
    for _ in range(5):
        call(**plain)
    assert counted.made == 15
    for _ in range(3):
        call(**plain, **{TRUSTED: True})
    assert counted.made == 18
    gzip = call(**plain, HTTP_ACCEPT_ENCODING="gzip")  # a kind never made: made for it
    assert counted.made == 19 and gzip not in bodies
