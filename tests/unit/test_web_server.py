"""The front as it is served (``services.web.server.start``), attacked with raw sockets on
127.0.0.1: slow bodies, oversized Content-Length, too many connections, requests aiohttp's
own parser refuses, and the log lines each of these may cost."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from devstack import ROOT, SERVICES, service_env
from services.common.throttle import LogThrottle
from services.web import server
from services.web.app import create_app
from services.web.config import WebConfig
from services.web.server import RunningFront, start
from tests.unit.web_fakes import HOST, FakeBackends

DEADLINE = 5.0
PROBLEM = "application/problem+json"
SECURITY = {
    "content-security-policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}

StartFront = Callable[..., Awaitable[RunningFront]]


@pytest.fixture
async def serve(backends: FakeBackends) -> AsyncIterator[StartFront]:
    """``await serve(**config_overrides)``: the front listening on a port of its own."""
    running: list[RunningFront] = []

    async def make(**overrides: Any) -> RunningFront:
        config = backends.config(**overrides)
        front = await start(create_app(config), config, port=0)
        running.append(front)
        return front

    yield make
    for front in running:
        await front.close()


class Reply:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"].startswith(PROBLEM), self.headers
        body = json.loads(self.body)
        assert body["status"] == self.status
        return body


async def exchange(port: int, data: bytes, *, half_close: bool = False) -> Reply:
    """Send `data`, read until the server closes (within DEADLINE): the server must close."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(data)
        if half_close:
            writer.write_eof()
        raw = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()
    assert raw, "closed without an answer"
    return Reply(raw)


async def poll(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.02)


def post(path: str, length: int, body: bytes = b"", **headers: str) -> bytes:
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    )
    return head.encode() + body


# --- slow bodies, big bodies ---------------------------------------------------------


async def test_a_slow_body_is_cut_at_the_body_deadline(serve: StartFront) -> None:
    # the attack: a body at one byte per 10 s held its connection forever (300 of 300
    # still open at 90 s); now each is answered 408 and closed at WEB_BODY_TIMEOUT
    front = await serve(body_timeout=0.5)
    streams = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection(HOST, front.port)
        writer.write(post("/api/echo/tcp", 100, b'{"mess'))
        streams.append((reader, writer))
    await poll(lambda: front.limiter.open == 20, "20 slow bodies connected")
    loop = asyncio.get_running_loop()
    began = loop.time()
    replies = [Reply(await asyncio.wait_for(r.read(), DEADLINE)) for r, _ in streams]
    assert loop.time() - began < 3.0
    assert {reply.status for reply in replies} == {408}
    assert "0.5 s" in replies[0].problem()["detail"]
    await poll(lambda: front.limiter.open == 0, "every slow-body connection closed")
    for _, writer in streams:
        writer.close()


@pytest.mark.parametrize("path", ["/api/echo/tcp", "/api/faults/web"])
async def test_clients_gone_mid_body_cost_no_traceback(serve: StartFront, caplog, path) -> None:
    """Fifty clients that send half a body and reset: each is refused (400, its access
    line), never a 500 with a traceback each."""
    front = await serve(body_timeout=5.0)
    with caplog.at_level(logging.INFO):
        for _ in range(50):
            _reader, writer = await asyncio.open_connection(HOST, front.port)
            writer.write(
                post(path, 100, b'{"mess').replace(b"POST", b"PUT" if "faults" in path else b"POST")
            )
            await writer.drain()
            writer.transport.abort()  # a reset, mid-body
        await poll(lambda: front.limiter.open == 0, "every connection gone")
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [r for r in caplog.records if getattr(r, "status", None) == 500]


async def test_a_content_length_over_the_limit_is_413_before_the_body(serve: StartFront) -> None:
    # the attack: Content-Length: 10 MB, then nothing; the front waited for the body
    front = await serve(max_body=2048)
    reply = await exchange(front.port, post("/api/echo/tcp", 10_000_000))
    assert reply.status == 413
    assert "10000000 bytes, at most 2048" in reply.problem()["detail"]
    assert reply.headers["connection"] == "close"


async def test_a_whole_body_in_time_is_served(serve: StartFront) -> None:
    front = await serve(body_timeout=2.0)
    reader, writer = await asyncio.open_connection(HOST, front.port)
    writer.write(post("/api/echo/tcp", 17, b'{"messa', Connection="close"))
    await asyncio.sleep(0.1)  # the rest arrives in a second segment, within the deadline
    writer.write(b'ge": "hi"}')
    reply = Reply(await asyncio.wait_for(reader.read(), DEADLINE))
    writer.close()
    assert reply.status == 200
    assert json.loads(reply.body)["echo"] == "hi"


# --- the connection limit -----------------------------------------------------------


async def test_at_the_limit_the_oldest_idle_connection_makes_room(serve: StartFront) -> None:
    # the attack: a flood of idle connections; /healthz answered 0 of 5
    front = await serve(max_connections=5)
    held = [await asyncio.open_connection(HOST, front.port) for _ in range(5)]
    await poll(lambda: front.limiter.open == 5, "five idle connections held")
    for _ in range(3):  # three more idle ones: each closes the oldest
        held.append(await asyncio.open_connection(HOST, front.port))
    await poll(lambda: front.limiter.evicted == 3, "three idle connections evicted")
    oldest = [await asyncio.wait_for(reader.read(), DEADLINE) for reader, _ in held[:3]]
    assert oldest == [b"", b"", b""]  # closed by the front, oldest first
    reply = await exchange(
        front.port, b"GET /healthz HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n"
    )
    assert reply.status == 200
    assert front.limiter.refused == 0
    assert front.limiter.open <= 5
    for _, writer in held:
        writer.close()


async def test_connections_past_the_limit_get_a_503_when_all_are_busy(serve: StartFront) -> None:
    front = await serve(max_connections=5, body_timeout=30.0)
    held = []
    for _ in range(5):  # each one busy: a request whose body is still on its way
        reader, writer = await asyncio.open_connection(HOST, front.port)
        writer.write(post("/api/echo/tcp", 100, b"{"))
        held.append((reader, writer))
    await poll(
        lambda: front.limiter.open == 5 and not any(h.idle for h in front.limiter._handlers),
        "five busy connections",
    )
    reply = await exchange(front.port, b"GET /healthz HTTP/1.1\r\nHost: front\r\n\r\n")
    assert reply.status == 503
    assert "at most 5 connections" in reply.problem()["detail"]
    assert {k: reply.headers[k] for k in SECURITY} == SECURITY
    assert front.limiter.refused == 1
    # a slot freed is a slot served
    held.pop()[1].close()
    await poll(lambda: front.limiter.open == 4, "a slot freed")
    reply = await exchange(
        front.port, b"GET /healthz HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n"
    )
    assert reply.status == 200
    for _, writer in held:
        writer.close()


# --- what aiohttp's parser refuses ------------------------------------------------------

MARK = "zq" * 4  # appears in each offending request; must never be echoed

MALFORMED = [
    ("url over 8 KiB", f"GET /{MARK}{'a' * 9000} HTTP/1.1\r\nHost: f\r\n\r\n", 414),
    ("header over 8 KiB", f"GET / HTTP/1.1\r\nHost: f\r\nX-Big: {MARK}{'a' * 9000}\r\n\r\n", 431),
    (
        "too many headers",
        "GET / HTTP/1.1\r\nHost: f\r\n" + "".join(f"X-{MARK}-{i}: v\r\n" for i in range(200)),
        431,
    ),
    ("bad content-length", f"POST / HTTP/1.1\r\nHost: f\r\nContent-Length: {MARK}\r\n\r\n", 400),
    ("obs-fold", f"GET / HTTP/1.1\r\nHost: f\r\nX-Folded: a\r\n {MARK}\r\n\r\n", 400),
    ("bad method", f"G{MARK}( / HTTP/1.1\r\nHost: f\r\n\r\n", 400),
]


@pytest.mark.parametrize(
    ("case", "request_text", "status"), MALFORMED, ids=[c[0] for c in MALFORMED]
)
async def test_parser_errors_are_problems_with_the_right_status(
    serve: StartFront, case: str, request_text: str, status: int
) -> None:
    # before: aiohttp's text/plain 400 for all of them, echoing the offending bytes
    front = await serve()
    reply = await exchange(front.port, request_text.encode())
    assert reply.status == status, (case, reply.status_line, reply.body[:200])
    problem = reply.problem()
    assert set(problem) == {"type", "title", "status", "detail", "instance"}
    assert MARK not in reply.body.decode(), case
    assert {k: reply.headers[k] for k in SECURITY} == SECURITY
    # aiohttp answers these over HTTP/1.0 (it never parsed a version), where no
    # keep-alive header means close; the server closing is what exchange() waited for
    assert reply.status_line.startswith("HTTP/1.0 ")
    assert "keep-alive" not in reply.headers.get("connection", "").lower()


async def test_a_flood_of_malformed_requests_logs_one_line_per_kind(
    serve: StartFront, caplog: pytest.LogCaptureFixture
) -> None:
    # before: one ERROR traceback and one access line per malformed request
    front = await serve(log_interval=60)
    caplog.set_level(logging.DEBUG)
    for _ in range(50):
        assert (
            await exchange(front.port, b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
        ).status == 400
        assert (await exchange(front.port, MALFORMED[0][1].encode())).status == 414
    # aiohttp's own loggers (its access log too) and the front's server log
    lines = [r for r in caplog.records if r.name.startswith(("aiohttp", "services.web.server"))]
    assert [(r.getMessage(), r.status) for r in lines] == [
        ("malformed request refused", 400),
        ("malformed request refused", 414),
    ]
    assert all(r.exc_info is None for r in lines)


async def test_the_loops_own_error_reports_are_rate_limited(
    serve: StartFront, caplog: pytest.LogCaptureFixture
) -> None:
    # under fd exhaustion asyncio reported 38,520 accept() failures in 16 s, each with a
    # traceback; through the front's loop exception handler: one line per interval
    await serve(log_interval=60)
    loop = asyncio.get_running_loop()
    caplog.set_level(logging.DEBUG)
    for _ in range(1000):
        loop.call_exception_handler(
            {
                "message": "socket.accept() out of system resource",
                "exception": OSError(24, "Too many open files"),
            }
        )
    lines = [r for r in caplog.records if "accept()" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].kind == "socket.accept() out of system resource"


def test_the_log_throttle_counts_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = LogThrottle(logging.getLogger("throttle-test"), 10.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, "throttle-test")
    written = [throttle.log("a", logging.INFO, "event a") for _ in range(100)]
    assert written == [True] + [False] * 99
    assert throttle.log("b", logging.INFO, "event b")  # another kind is not held back
    now[0] = 10.0
    assert throttle.log("a", logging.INFO, "event a")
    assert [(r.getMessage(), r.suppressed) for r in caplog.records] == [
        ("event a", 0),
        ("event b", 0),
        ("event a", 99),
    ]
    for i in range(200):  # kinds are a bounded set
        throttle.log(f"kind-{i}", logging.INFO, "many kinds")
    assert len(throttle._next) <= 65


# --- the process: python -m services.web ----------------------------------------------


def test_the_limit_is_lowered_to_fit_the_fd_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(server.resource, "getrlimit", lambda _kind: (500, 500))
    monkeypatch.setattr(server.resource, "setrlimit", refuse)
    config = WebConfig()
    pools = config.tcp_pool_size + config.udp_pool_size + 50
    reserve = server.FD_RESERVE + server.BACKLOG + pools
    assert server.connection_limit(1024, config) == 500 - reserve
    assert server.connection_limit(10, config) == 10


def test_an_idle_connection_flood_under_a_low_fd_limit_stays_answered_and_quiet(
    tmp_path: Path,
) -> None:
    # the attack: under fd exhaustion asyncio logged 38,520 accept() tracebacks (20 MB in
    # 16 s) and /healthz answered 0 of 5. Now the connection limit fits the fd limit, so
    # accept() never fails, and at the limit the oldest idle connection makes room.
    # a free port for every port the front opens (its metrics port too): the stack may run
    env = service_env(SERVICES["web"], {"WEB_LOG_INTERVAL": "60"}, base=os.environ)
    port = int(env["WEB_PORT"])
    log_path = tmp_path / "web.log"

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    # not devstack.start(): the descriptor limit must be set before exec, at the front's start
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.web"],
            env=env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=low_fd_limit,
        )
    flood: list[socket.socket] = []
    try:
        _wait_healthy(port, process)
        for _ in range(400):
            flood.append(socket.create_connection((HOST, port), timeout=2))
        _wait_healthy(port, process)  # while the flood is held
        flood[0].settimeout(DEADLINE)
        assert flood[0].recv(64) == b""  # the oldest idle ones were closed to make room
    finally:
        for sock in flood:
            sock.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    messages = [line["msg"] for line in lines]
    assert "WEB_MAX_CONNECTIONS lowered to fit the file-descriptor limit" in messages
    assert messages.count("connection limit reached: oldest idle connection closed") == 1
    assert not any("accept()" in message for message in messages)
    assert log_path.stat().st_size < 20_000


def _wait_healthy(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 15
    while True:
        assert process.poll() is None, "the front exited"
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the front never answered /healthz"
        time.sleep(0.05)
