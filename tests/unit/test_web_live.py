"""The dashboard page, its static files and the /ws/live feed, in-process.

The app here is the minimum ``setup_live`` needs: ``app[STATS]`` and ``app[CONFIG]``, with
the checker injected, and the front's route table (only the dashboard's routes are asked).
No backend is configured (the default checker fails, and is logged, while the stats keep
flowing — which is also what the page must survive) and the metrics ports point where
nothing listens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import re
import socket
from html.parser import HTMLParser

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType, web

from devstack import free_port
from services.common.faults import Faults
from services.web import live
from services.web.app import front_middleware
from services.web.backends import Backend
from services.web.config import WebConfig
from services.web.keys import CONFIG, STATS
from services.web.live import LIVE, STATIC_DIR, VENDOR_DIR, VENDORED, setup_live
from services.web.metrics import Metrics
from services.web.routes import routes
from services.web.stats import BackendStats

DEADLINE = 5.0


def nowhere_config(**limits) -> WebConfig:
    """Metrics ports nothing listens on: every service is scraped as down."""
    ports = {
        f"{name}_metrics_port": free_port() for name in ("tcp_echo", "udp_echo", "resolver", "dns")
    }
    ports["metrics_port"] = free_port()  # the front's own
    return WebConfig(**ports, scrape_timeout=0.2, **limits)


def live_app(check=None, **limits) -> web.Application:
    app = web.Application(middlewares=[front_middleware(Metrics(), Faults())])
    app[STATS] = BackendStats()
    app[CONFIG] = nowhere_config(**limits)
    if check is None:
        setup_live(app)
    else:
        setup_live(app, check=check)
    app.add_routes(routes)
    return app


@pytest.fixture
def app() -> web.Application:
    return live_app()


class _Page(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block, and the assets used."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.assets: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, _value in attrs:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=…>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.inline.append("<script> without src")
        for name in ("src", "href"):
            value = names.get(name)
            if value and tag in {"script", "link", "img"}:
                self.assets.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("inline script body")


async def test_dashboard_is_html_without_inline_code(aiohttp_client, app) -> None:
    client = await aiohttp_client(app)
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = _Page()
    page.feed(await response.text())
    assert page.inline == []
    assert "/static/app.js" in page.assets
    assert "/static/style.css" in page.assets


async def test_every_asset_of_the_page_is_served_by_the_front(aiohttp_client, app) -> None:
    client = await aiohttp_client(app)
    page = _Page()
    page.feed(await (await client.get("/")).text())
    assert page.assets
    for asset in page.assets:
        assert asset.startswith("/static/"), f"{asset} is not served by the front"
        response = await client.get(asset)
        assert response.status == 200, asset
    script = await client.get("/static/app.js")
    assert script.content_type in {"application/javascript", "text/javascript"}


def test_no_static_file_names_another_host() -> None:
    for path in STATIC_DIR.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text()
            if path.parent == VENDOR_DIR:
                # a vendored file as published: only its licence banner may name its home
                text = re.sub(r"\A/\*!.*?\*/", "", text, flags=re.S)
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path.name
            assert "@import" not in text and "@font-face" not in text, path.name


async def test_the_vendored_chart_library_is_served(aiohttp_client, app) -> None:
    client = await aiohttp_client(app)
    page = _Page()
    page.feed(await (await client.get("/")).text())
    for name in VENDORED:
        assert f"/static/vendor/{name}" in page.assets, name
    script = await client.get("/static/vendor/uPlot.iife.min.js")
    assert script.status == 200, "run `make vendor` (scripts/vendor-js.sh)"
    assert "uPlot" in await script.text()


def test_a_front_without_the_vendored_files_says_so(monkeypatch, tmp_path, caplog) -> None:
    monkeypatch.setattr(live, "VENDOR_DIR", tmp_path)
    (tmp_path / VENDORED[0]).write_text("")  # empty counts as missing
    with caplog.at_level("ERROR", logger="services.web.live"):
        live_app()
    [record] = [r for r in caplog.records if "chart library is missing" in r.getMessage()]
    assert "make vendor" in record.getMessage()
    assert record.missing == list(VENDORED)


def test_a_front_with_the_vendored_files_logs_nothing_about_them(caplog) -> None:
    with caplog.at_level("ERROR", logger="services.web.live"):
        live_app()
    assert not [r for r in caplog.records if "chart library" in r.getMessage()]


async def test_unknown_static_file_is_404(aiohttp_client, app) -> None:
    client = await aiohttp_client(app)
    assert (await client.get("/static/nope.js")).status == 404
    assert (await client.get("/static/../live.py")).status in {403, 404}


async def _next_stats(ws) -> dict:
    while True:
        message = await asyncio.wait_for(ws.receive(), DEADLINE)
        assert message.type == WSMsgType.TEXT, message
        data = message.json()
        if data["type"] == "stats":
            return data


async def test_feed_pushes_stats_for_every_backend(aiohttp_client, app) -> None:
    app[STATS].record("tcp-echo", 0.004, ok=True)
    app[STATS].record("udp-echo", 0.002, ok=False)
    client = await aiohttp_client(app)
    async with client.ws_connect("/ws/live") as ws:
        first = await _next_stats(ws)
        assert set(Backend) <= set(first["stats"])
        assert first["stats"]["tcp-echo"]["total"] == 1
        assert first["stats"]["tcp-echo"]["p50_ms"] == 4.0
        assert first["stats"]["udp-echo"]["errors_total"] == 1
        assert isinstance(first["backends"], dict)
        app[STATS].record("tcp-echo", 0.001, ok=True)
        second = await _next_stats(ws)
        assert second["ts"] > first["ts"]
        assert second["stats"]["tcp-echo"]["total"] == 2


async def test_feed_serves_several_sockets(aiohttp_client, app) -> None:
    client = await aiohttp_client(app)
    async with client.ws_connect("/ws/live") as one, client.ws_connect("/ws/live") as two:
        assert (await _next_stats(one))["type"] == "stats"
        assert (await _next_stats(two))["type"] == "stats"
        assert len(app[LIVE].subscribers) == 2


async def test_shutdown_closes_every_socket(aiohttp_client, app) -> None:
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/ws/live")
    await _next_stats(ws)
    await app.shutdown()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        message = await asyncio.wait_for(ws.receive(), max(0.01, deadline - loop.time()))
        if message.type in {WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED}:
            break
        assert loop.time() < deadline, "the socket was not closed on shutdown"
    assert ws.closed
    # the server's close frame says "going away" (the client's own reply may then race the
    # server's end of the connection, so its close_code can read 1006)
    assert message.type == WSMsgType.CLOSE and message.data == 1001, message
    assert len(app[LIVE].subscribers) == 0


async def test_backend_checks_run_at_most_every_two_seconds(aiohttp_client) -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def check(_app: web.Application) -> dict:
        calls.append(loop.time())
        return {name: {"state": "up", "latency_ms": 1.0, "error": None} for name in Backend}

    client = await aiohttp_client(live_app(check))
    async with client.ws_connect("/ws/live") as ws:
        messages = [await _next_stats(ws) for _ in range(4)]
    assert set(messages[-1]["backends"]) == set(Backend)
    assert 1 <= len(calls) <= 3  # four pushes, one a second: a check every other push
    assert all(b - a >= 1.9 for a, b in itertools.pairwise(calls))


async def test_no_backend_check_while_nobody_watches(aiohttp_client) -> None:
    calls: list[float] = []

    async def check(_app: web.Application) -> dict:
        calls.append(1.0)
        return {}

    client = await aiohttp_client(live_app(check))
    await asyncio.sleep(0)  # nothing to wait for: the check task must stay idle
    assert (await client.get("/")).status == 200
    assert calls == []
    async with client.ws_connect("/ws/live") as ws:
        await _next_stats(ws)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while not calls:
            assert loop.time() < deadline, "no check once a client watches"
            await asyncio.sleep(0.05)


async def test_a_failing_check_keeps_the_feed_going(aiohttp_client) -> None:
    async def check(_app: web.Application) -> dict:
        raise OSError("the checker broke")

    client = await aiohttp_client(live_app(check))
    async with client.ws_connect("/ws/live") as ws:
        first = await _next_stats(ws)
        second = await _next_stats(ws)
    assert first["backends"] == second["backends"] == {}
    assert second["ts"] > first["ts"]


# ---- the feed's bounds (issue 8 item 7), attacked with real clients on loopback ----------


async def _raw_ws(port: int, rcvbuf: int | None = None):
    """A hand-made WebSocket client on a plain socket: it reads only when told to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def _close_code(reader: asyncio.StreamReader) -> int:
    """Read server frames (unmasked) until the close frame; return its code."""
    while True:
        b0, b1 = await reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(length)
        if b0 & 0x0F == 0x8:
            return int.from_bytes(payload[:2], "big")


async def fill_then_refused(client, count: int) -> list:
    """``count`` sockets admitted and fed; the next one is closed at once with 1013 (try
    again later). The admitted ones, still open."""
    admitted = [await client.ws_connect("/ws/live") for _ in range(count)]
    for ws in admitted:
        await _next_stats(ws)
    extra = await client.ws_connect("/ws/live")
    message = await asyncio.wait_for(extra.receive(), DEADLINE)
    assert message.type == WSMsgType.CLOSE, message
    assert message.data == WSCloseCode.TRY_AGAIN_LATER  # 1013
    return admitted


async def test_the_client_past_the_cap_is_closed_with_try_again_later(aiohttp_client) -> None:
    app = live_app(live_max_clients=3)
    client = await aiohttp_client(app)
    admitted = await fill_then_refused(client, 3)
    assert len(app[LIVE].subscribers) == 3
    # the admitted ones are still fed, and a freed slot is taken again
    for ws in admitted:
        await _next_stats(ws)
    await admitted.pop().close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while len(app[LIVE].subscribers) > 2:
        assert loop.time() < deadline, "the closed client still counts"
        await asyncio.sleep(0.02)
    async with client.ws_connect("/ws/live") as again:
        assert (await _next_stats(again))["type"] == "stats"
    for ws in admitted:
        await ws.close()


async def test_a_message_over_the_limit_closes_the_client_with_1009(aiohttp_client) -> None:
    client = await aiohttp_client(live_app(live_max_message=1024))
    async with client.ws_connect("/ws/live") as ws:
        await ws.send_str("x" * 2048)
        while True:
            message = await asyncio.wait_for(ws.receive(), DEADLINE)
            if message.type != WSMsgType.TEXT:
                break
    assert message.type == WSMsgType.CLOSE and message.data == WSCloseCode.MESSAGE_TOO_BIG


@pytest.mark.parametrize(("size", "closed"), [(1024, False), (1025, True)])
async def test_a_message_of_the_limit_is_read_one_over_it_closes(
    aiohttp_client, size: int, closed: bool
) -> None:
    """The limit is what a client may send: exactly WEB_LIVE_MAX_MESSAGE bytes pass."""
    client = await aiohttp_client(live_app(live_max_message=1024))
    async with client.ws_connect("/ws/live") as ws:
        await ws.send_str("x" * size)
        for _ in range(2):  # two stats messages come while it stays open
            message = await asyncio.wait_for(ws.receive(), DEADLINE)
            if message.type != WSMsgType.TEXT:
                break
    if closed:
        assert message.type == WSMsgType.CLOSE and message.data == WSCloseCode.MESSAGE_TOO_BIG
    else:
        assert message.type == WSMsgType.TEXT, message


async def test_one_source_cannot_lock_the_others_out(aiohttp_client) -> None:
    """Past WEB_LIVE_MAX_PER_SOURCE sockets from one address, the next from there is 1013;
    a dashboard from another address (127.0.0.2, loopback too) still gets in."""
    app = live_app(live_max_clients=100, live_max_per_source=3)
    client = await aiohttp_client(app)
    hogs = await fill_then_refused(client, 3)
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=other) as session:
        url = f"http://127.0.0.1:{client.server.port}/ws/live"
        async with session.ws_connect(url) as dashboard:
            assert (await _next_stats(dashboard))["type"] == "stats"
    for ws in hogs:
        await ws.close()
    assert app[LIVE].per_source == {}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "http://127.0.0.1:1"}, 403),
        ({"Host": "evil.example", "Origin": "http://evil.example"}, 421),
    ],
)
async def test_a_foreign_page_cannot_subscribe(aiohttp_client, headers, status) -> None:
    app = live_app()
    client = await aiohttp_client(app)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/live", headers=headers)
    assert refused.value.status == status
    assert not app[LIVE].subscribers
    own = {"Origin": f"http://127.0.0.1:{client.server.port}"}
    async with client.ws_connect("/ws/live", headers=own) as ws:
        assert (await _next_stats(ws))["type"] == "stats"


async def test_unfinished_fragments_are_not_buffered(aiohttp_client) -> None:
    """The attack: each client starts a 256 KiB fragmented message and never finishes it;
    aiohttp would buffer up to max_msg_size (4 MiB by default) per client. Each is closed
    with 1009 as soon as the frame header announces more than WEB_LIVE_MAX_MESSAGE."""
    app = live_app(live_max_message=1024)
    client = await aiohttp_client(app)
    payload = bytes(256 * 1024)
    # FIN=0, opcode text; 64-bit length; masked with a zero key (so the bytes stay as they are)
    header = bytes([0x01, 0x80 | 127]) + len(payload).to_bytes(8, "big") + bytes(4)
    clients = [await _raw_ws(client.server.port) for _ in range(10)]
    for _reader, writer in clients:
        writer.write(header + payload[:4096])  # the rest never comes
    codes = [await asyncio.wait_for(_close_code(reader), DEADLINE) for reader, _ in clients]
    assert codes == [WSCloseCode.MESSAGE_TOO_BIG] * len(clients)
    for _reader, writer in clients:
        writer.close()


async def test_a_client_that_never_reads_does_not_hold_up_the_others(aiohttp_client) -> None:
    app = live_app(live_send_timeout=0.5)
    client = await aiohttp_client(app)
    feed = app[LIVE]
    stuck_reader, stuck_writer = await _raw_ws(client.server.port, rcvbuf=4096)
    good = await client.ws_connect("/ws/live", max_msg_size=0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while len(feed.subscribers) < 2:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    big = "x" * (512 * 1024)  # the kernel takes a few MB before the server's buffer fills
    slowest = 0.0
    for n in range(20):
        started = loop.time()
        feed.publish(f"{n}:{big}")
        while True:  # the good client gets message n promptly (stats pushes may interleave)
            message = await asyncio.wait_for(good.receive(), DEADLINE)
            assert message.type == WSMsgType.TEXT, message
            if message.data.startswith(f"{n}:"):
                break
        slowest = max(slowest, loop.time() - started)
        await asyncio.sleep(0.1)
    # well below the stuck client's send timeout: its socket never delayed the others
    assert slowest < 0.4, f"a message took {slowest:.2f} s to reach the reading client"
    deadline = loop.time() + DEADLINE
    while len(feed.subscribers) > 1:
        assert loop.time() < deadline, "the client that never reads was never dropped"
        await asyncio.sleep(0.05)
    # its connection is gone (aborted: a polite close would wait for it to read)
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while await asyncio.wait_for(stuck_reader.read(65536), DEADLINE):
            pass
    stuck_writer.close()
    await good.close()
