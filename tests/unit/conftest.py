"""Fixtures of the front's unit tests: its four backends as real loopback stand-ins
(``tests/unit/web_fakes.py``), and a front wired to them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.web.app import create_app
from tests.sockets import closed_port
from tests.unit.web_fakes import (
    HOST,
    DnsServer,
    FakeBackends,
    MakeClient,
    TcpEcho,
    UdpEcho,
    resolver_app,
)


@pytest.fixture
async def backends(aiohttp_server) -> AsyncIterator[FakeBackends]:
    """tcp-echo, udp-echo, dns and the resolver, each running on a port the OS picked."""
    loop = asyncio.get_running_loop()
    tcp = await TcpEcho().start()
    udp_transport, udp = await loop.create_datagram_endpoint(UdpEcho, local_addr=(HOST, 0))
    dns_transport, dns_server = await loop.create_datagram_endpoint(DnsServer, local_addr=(HOST, 0))
    received: list[dict[str, Any]] = []
    resolver = await aiohttp_server(resolver_app(received))
    fakes = FakeBackends(tcp, udp, dns_server, resolver.port)
    fakes.resolve_requests = received
    yield fakes
    udp_transport.close()
    dns_transport.close()
    await tcp.stop()


@pytest.fixture
def front(aiohttp_client, backends: FakeBackends) -> MakeClient:
    """``await front(**config_overrides)``: a test client of the front wired to the fakes."""

    async def make(**overrides: Any) -> TestClient:
        return await aiohttp_client(create_app(backends.config(**overrides)))

    return make


@pytest.fixture
def served_front(aiohttp_server, aiohttp_client, unused_tcp_port_factory, backends) -> MakeClient:
    """``await served_front(**config_overrides)``: the front as ``__main__`` runs it (its
    control port, its steady client) on known ports, wired to the fakes; the fakes have no
    control port (they show as down), the steady client calls them quickly."""

    async def make(**overrides: Any) -> TestClient:
        port = unused_tcp_port_factory()
        settings: dict[str, Any] = {
            "port": port,
            "metrics_port": unused_tcp_port_factory(),
            "tcp_echo_metrics_port": closed_port(),
            "udp_echo_metrics_port": closed_port(),
            "resolver_metrics_port": closed_port(),
            "dns_metrics_port": closed_port(),
            "steady_rate": 10.0,
            "steady_timeout": 0.5,
        }
        config = backends.config(**(settings | overrides))
        app = create_app(config, control_port=True, steady=True)
        return await aiohttp_client(await aiohttp_server(app, port=port))

    return make
