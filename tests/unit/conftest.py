"""Fixtures of the front's unit tests: its four backends as real loopback stand-ins
(``tests/unit/web_fakes.py``), and a front wired to them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.web.app import create_app
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
