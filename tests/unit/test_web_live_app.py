"""The live feed inside the real front (``create_app``) with every backend down.

Backends point at loopback ports nothing listens on, so ``check_backends`` reports each
one ``down`` quickly; the feed must still push a message a second naming all of them.
"""

from __future__ import annotations

import asyncio
import socket

from aiohttp import WSMsgType

from services.web.app import create_app
from services.web.backends import Backend
from services.web.config import WebConfig
from tests.sockets import closed_port

DEADLINE = 10.0


def _config() -> WebConfig:
    return WebConfig(
        tcp_echo_port=closed_port(),
        udp_echo_port=closed_port(socket.SOCK_DGRAM),
        resolver_port=closed_port(),
        dns_port=closed_port(socket.SOCK_DGRAM),
        health_timeout=0.3,
        udp_try_timeout=0.1,
        udp_retries=0,
    )


async def test_feed_reports_every_backend_down(aiohttp_client) -> None:
    client = await aiohttp_client(create_app(_config()))
    async with client.ws_connect("/ws/live") as ws:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while True:
            message = await asyncio.wait_for(ws.receive(), max(0.01, deadline - loop.time()))
            assert message.type == WSMsgType.TEXT
            data = message.json()
            if data["type"] == "stats" and data["backends"]:
                break
        assert set(data["backends"]) == set(Backend)
        for name, state in data["backends"].items():
            assert state["state"] == "down", name
            assert state["error"], name
        assert set(Backend) <= set(data["stats"])


async def test_front_serves_the_dashboard_with_its_csp(aiohttp_client) -> None:
    client = await aiohttp_client(create_app(_config()))
    response = await client.get("/")
    assert response.status == 200
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'self'
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert '<script type="module" src="/static/app.js">' in await response.text()
    assert (await client.get("/static/style.css")).status == 200
