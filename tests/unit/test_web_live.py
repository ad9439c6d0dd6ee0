"""The dashboard page, its static files and the /ws/live feed, in-process.

The app here is the minimum ``setup_live`` needs: ``app[STATS]``. No backend is
configured, so the feed's backend check fails (and is logged) while the stats keep
flowing — which is also what the page must survive.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from html.parser import HTMLParser

import pytest
from aiohttp import WSMsgType, web

from services.web.backends import Backend
from services.web.keys import STATS
from services.web.live import SOCKETS, STATIC_DIR, setup_live
from services.web.stats import BackendStats

DEADLINE = 5.0


@pytest.fixture
def app() -> web.Application:
    app = web.Application()
    app[STATS] = BackendStats()
    setup_live(app)
    return app


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
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path.name
            assert "@import" not in text and "@font-face" not in text, path.name


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
        assert len(app[SOCKETS]) == 2


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
    assert ws.close_code == 1001  # going away
    assert len(app[SOCKETS]) == 0


async def test_backend_checks_run_at_most_every_two_seconds(
    aiohttp_client, app, monkeypatch
) -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def check(_app: web.Application) -> dict:
        calls.append(loop.time())
        return {name: {"state": "up", "latency_ms": 1.0, "error": None} for name in Backend}

    monkeypatch.setattr("services.web.live._check", check)
    client = await aiohttp_client(app)
    async with client.ws_connect("/ws/live") as ws:
        messages = [await _next_stats(ws) for _ in range(4)]
    assert all(set(m["backends"]) == set(Backend) for m in messages)
    assert 1 <= len(calls) <= 3  # four pushes, one a second: a check every other push
    assert all(b - a >= 1.9 for a, b in itertools.pairwise(calls))
