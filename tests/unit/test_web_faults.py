"""The front's fault API (services/web/faults.py) against a real /faults endpoint.

A real ``Faults`` behind a real metrics port (``services.common.control.serve``, the same code every
service runs) stands for tcp-echo; the other services point at a closed port, so they
are "down". Needs nothing running.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.control import ControlServer, ControlSettings, new_registry, serve
from services.common.faults import Faults, FaultSpec
from services.web.app import create_app
from services.web.config import WebConfig
from services.web.keys import FAULTS

TOKEN = secrets.token_urlsafe(16)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def service() -> Iterator[tuple[Faults, ControlServer]]:
    faults = Faults()
    server = serve(
        ControlSettings(admin_token=TOKEN), "127.0.0.1", 0, new_registry(), faults=faults
    )
    yield faults, server
    server.close()


def config_for(server: ControlServer, token: str | None = TOKEN, **changes: Any) -> WebConfig:
    down = closed_port()
    values: dict[str, Any] = {
        "tcp_echo_metrics_port": server.port,
        "udp_echo_metrics_port": down,
        "resolver_metrics_port": down,
        "dns_metrics_port": down,
        "metrics": ControlSettings(admin_token=token),
        "health_timeout": 1.0,
    }
    return WebConfig(**(values | changes))


async def test_put_get_delete_pass_through_to_the_service(aiohttp_client, service) -> None:
    faults, server = service
    client = await aiohttp_client(create_app(config_for(server)))
    listed = await (await client.get("/api/faults")).json()
    assert listed["enabled"] is True
    assert listed["services"]["tcp-echo"]["active"] is False
    assert listed["services"]["dns"]["state"] == "down"
    assert set(listed["services"]) == {"tcp-echo", "udp-echo", "dns", "resolver", "web"}

    response = await client.put("/api/faults/tcp-echo", json={"latency_ms": 250})
    assert response.status == 200
    assert (await response.json())["faults"] == {"latency": {"ms": 250}}
    assert faults.current() == FaultSpec(latency_ms=250)
    listed = await (await client.get("/api/faults")).json()
    assert 0 < listed["services"]["tcp-echo"]["remaining_s"] <= 60

    response = await client.delete("/api/faults/tcp-echo")
    assert response.status == 200 and not faults.active


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"block_ms": 2001}, "block_ms"),
        ({"fail_percent": -1}, "fail_percent"),
        ([], "body"),
        ({"block_ms": 300, "block_kind": "nap"}, "block_kind"),
        ({"block_ms": 300, "block_kind": "sync_dns"}, "block_kind"),  # the resolver's only
    ],
)
async def test_a_bad_value_is_a_422_naming_the_field(
    aiohttp_client, service, body: Any, field: str
) -> None:
    faults, server = service
    client = await aiohttp_client(create_app(config_for(server)))
    response = await client.put("/api/faults/tcp-echo", json=body)
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert (await response.json())["field"] == field
    assert not faults.active


async def test_the_resolver_s_own_block_kind_passes_through(aiohttp_client, service) -> None:
    # the control port here plays the resolver's, with the resolver's kinds
    faults, server = service
    faults.blockers["sync_dns"] = lambda seconds: None
    client = await aiohttp_client(create_app(config_for(server, resolver_metrics_port=server.port)))
    spec = {"block_ms": 300, "block_kind": "sync_dns"}
    response = await client.put("/api/faults/resolver", json=spec)
    assert response.status == 200, await response.text()
    assert (await response.json())["faults"]["block"]["kind"] == "sync_dns"
    assert (await client.put("/api/faults/tcp-echo", json=spec)).status == 422


async def test_an_unknown_service_is_a_404(aiohttp_client, service) -> None:
    _, server = service
    client = await aiohttp_client(create_app(config_for(server)))
    response = await client.put("/api/faults/postgres", json={"latency_ms": 1})
    assert response.status == 404


@pytest.mark.parametrize("token", [None, "not-the-token"])
async def test_the_services_token_is_enforced(aiohttp_client, service, token) -> None:
    faults, server = service
    client = await aiohttp_client(create_app(config_for(server, token=token)))
    response = await client.put("/api/faults/tcp-echo", json={"fail_percent": 50})
    assert response.status == 502
    assert "token" in (await response.json())["detail"]
    assert not faults.active


async def test_a_service_that_does_not_answer_is_a_503(aiohttp_client, service) -> None:
    _, server = service
    client = await aiohttp_client(create_app(config_for(server)))
    response = await client.put("/api/faults/dns", json={"fail_percent": 50})
    assert response.status == 503


async def test_off_when_published_beyond_loopback(aiohttp_client, service) -> None:
    faults, server = service
    client = await aiohttp_client(create_app(config_for(server, faults=False)))
    assert (await client.put("/api/faults/tcp-echo", json={"latency_ms": 5})).status == 403
    faults.apply(FaultSpec(latency_ms=5))
    assert (await client.delete("/api/faults/tcp-echo")).status == 403
    assert faults.active
    assert (await (await client.get("/api/faults")).json())["enabled"] is False


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, True),
        ({"POLYLOOP_BIND": "127.0.0.1"}, True),
        ({"POLYLOOP_BIND": "0.0.0.0"}, False),
        ({"POLYLOOP_BIND": "0.0.0.0", "WEB_FAULTS": "1"}, True),
        ({"WEB_FAULTS": "0"}, False),
    ],
)
def test_the_switch_follows_the_bind(env: dict[str, str], enabled: bool) -> None:
    assert WebConfig.from_env(env).faults_enabled is enabled


async def test_the_fronts_own_fail_answers_503_and_can_be_cleared(aiohttp_client, service) -> None:
    _, server = service
    app = create_app(config_for(server))
    client = await aiohttp_client(app)
    assert (await client.put("/api/faults/web", json={"fail_percent": 100})).status == 200
    response = await client.post("/api/echo/tcp", json={"message": "hi"})
    assert response.status == 503
    assert (await response.json())["type"] == "urn:polyloop:problem:injected-fault"
    listed = await (await client.get("/api/faults")).json()
    assert listed["services"]["web"]["faults"] == {"fail": {"percent": 100}}
    assert (await client.delete("/api/faults/web")).status == 200
    assert not app[FAULTS].active


async def test_the_fronts_own_latency_delays_its_api(aiohttp_client, service) -> None:
    _, server = service
    client = await aiohttp_client(create_app(config_for(server)))
    await client.put("/api/faults/web", json={"latency_ms": 300})
    started = time.monotonic()
    # a body the front refuses itself: the latency comes before any backend is asked
    response = await client.post("/api/resolve", json={"names": []})
    assert response.status == 422
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert (await client.get("/api/faults")).status == 200  # its own API is never delayed
    assert time.monotonic() - started < 0.3
