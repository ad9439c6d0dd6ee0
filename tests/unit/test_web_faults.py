"""The front's fault API (services/web/faults.py) against real control ports.

A real ``Faults`` behind a real control port (``services.common.control.serve``, the same
code every service runs) stands for tcp-echo; the other services point at a closed port, so
they are "down". Several replicas are several control ports on 127.0.0.2-4 (loopback too),
one name resolving to all of them. Needs nothing running.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from services.common.control import ControlServer, ControlSettings, faults_app, new_registry, serve
from services.common.faults import Faults, FaultSpec
from services.web.app import create_app
from services.web.backends import replicas as replica_module
from services.web.config import WebConfig
from services.web.keys import FAULTS
from services.web.scrape import SCRAPER, Scraper, Target
from tests.clock import FakeClock
from tests.control_port import faults_served
from tests.sockets import closed_port

TOKEN = secrets.token_urlsafe(16)
DEADLINE = 10.0


@pytest.fixture
def service() -> Iterator[tuple[Faults, ControlServer]]:
    with faults_served(TOKEN) as served:
        yield served


def config_for(server: ControlServer, token: str | None = TOKEN, **changes: Any) -> WebConfig:
    down = closed_port()
    values: dict[str, Any] = {
        "tcp_echo_metrics_port": server.port,
        "udp_echo_metrics_port": down,
        "resolver_metrics_port": down,
        "dns_metrics_port": down,
        # the front's own control port (not served in-process): never a running stack's 9105
        "metrics_port": down,
        "metrics": ControlSettings(admin_token=token),
        "health_timeout": 1.0,
    }
    return WebConfig(**(values | changes))


async def read(client: Any, ready: Callable[[dict], bool] = lambda body: True) -> dict:
    """GET /api/faults once `ready(body)` holds (the front reads the services once a
    second, the first time at start): polled with a deadline."""
    deadline = time.monotonic() + DEADLINE
    while True:
        body = await (await client.get("/api/faults")).json()
        if ready(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


def tcp_echo_read(body: dict) -> bool:
    return "active" in body["services"]["tcp-echo"]


async def test_put_get_delete_pass_through_to_the_service(aiohttp_client, service) -> None:
    faults, server = service
    client = await aiohttp_client(create_app(config_for(server)))
    listed = await read(client, tcp_echo_read)
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
    # the front's own faults under the same rule
    assert (await client.put("/api/faults/web", json={"block_ms": 2000})).status == 403
    faults.apply(FaultSpec(latency_ms=5))
    assert (await client.delete("/api/faults/tcp-echo")).status == 403
    assert faults.active
    assert (await (await client.get("/api/faults")).json())["enabled"] is False


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, True),  # local processes on 127.0.0.1
        ({"LISTEN_HOST": "::1"}, True),
        ({"LISTEN_HOST": "0.0.0.0"}, False),  # local processes on every interface
        ({"LISTEN_HOST": "192.0.2.7"}, False),
        ({"LISTEN_HOST": "0.0.0.0", "WEB_PUBLISHED_HOST": "127.0.0.1"}, True),  # compose
        ({"LISTEN_HOST": "0.0.0.0", "WEB_PUBLISHED_HOST": "0.0.0.0"}, False),
        ({"LISTEN_HOST": "0.0.0.0", "WEB_FAULTS": "1"}, True),  # said explicitly
        ({"WEB_FAULTS": "0"}, False),
        ({"POLYLOOP_BIND": "127.0.0.1", "LISTEN_HOST": "0.0.0.0"}, False),  # compose's, not ours
    ],
)
def test_the_switch_follows_where_the_front_is_reached(env: dict[str, str], enabled: bool) -> None:
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


# ---- the body rules of every other route (WEB_MAX_BODY, WEB_BODY_TIMEOUT, JSON)


async def raw_exchange(port: int, head: bytes, body: bytes = b"", wait: float = 5.0) -> bytes:
    """Send `head` (and `body`), then the status line of whatever comes back within `wait`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), wait)
    finally:
        writer.close()


def put_head(length: int) -> bytes:
    return (
        "PUT /api/faults/web HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def test_a_huge_content_length_is_a_413_at_once(aiohttp_client, service) -> None:
    _, server = service
    app = create_app(config_for(server))
    client = await aiohttp_client(app)
    status = await raw_exchange(client.server.port, put_head(10**9))
    assert status.split()[1] == b"413", status
    assert not app[FAULTS].active


async def test_a_slow_body_is_cut_at_the_body_deadline(aiohttp_client, service) -> None:
    """A body that never ends gets its 408 after WEB_BODY_TIMEOUT, as on every other route."""
    _, server = service
    app = create_app(config_for(server, body_timeout=0.3))
    client = await aiohttp_client(app)
    status = await raw_exchange(client.server.port, put_head(100), b'{"latency_ms"')
    assert status.split()[1] == b"408", status
    assert not app[FAULTS].active


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b'{"latency_ms": NaN}', 422, "latency_ms"),
        (b'{"latency_ms": Infinity}', 422, "latency_ms"),
        (b'{"latency_ms": 1e400}', 422, "latency_ms"),
        (b'{"block_ms": -Infinity}', 422, "block_ms"),
        (b"[" * 3000 + b"]" * 3000, 422, "body"),
        (b'{"block_ms": ' + b"[" * 2000 + b"]" * 2000 + b"}", 422, "body"),
        (b'{"latency_ms": 5', 400, None),
    ],
)
async def test_what_no_fault_can_be_is_refused_naming_the_field(
    aiohttp_client, service, raw: bytes, status: int, field: str | None
) -> None:
    faults, server = service
    client = await aiohttp_client(create_app(config_for(server)))
    for target in ("tcp-echo", "web"):
        response = await client.put(
            f"/api/faults/{target}", data=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status == status, await response.text()
        assert (await response.json()).get("field") == field
    assert not faults.active


async def test_a_flood_of_fault_puts_logs_one_line_per_interval(
    aiohttp_client, service, caplog
) -> None:
    _, server = service
    client = await aiohttp_client(create_app(config_for(server)))
    with caplog.at_level(logging.INFO):
        for _ in range(50):
            assert (await client.put("/api/faults/web", json={"latency_ms": 1})).status == 200
            bad = await client.put("/api/faults/web", data=b'{"latency_ms": 1e400}')
            assert bad.status == 422
    requested = [r for r in caplog.records if r.message == "fault requested"]
    assert len(requested) == 1
    assert not [r for r in caplog.records if r.exc_info]  # no traceback at all


# ---- what the front reads: once a second, never per client


def counting(app: Callable[..., Any], calls: list[str]) -> Callable[..., Any]:
    def counted(environ: dict, start_response: Callable[..., Any]) -> Any:
        calls.append(environ["REQUEST_METHOD"])
        return app(environ, start_response)

    return counted


async def test_get_api_faults_asks_no_service_itself(aiohttp_client) -> None:
    """A hundred clients at once cost the control ports nothing: the answer is the front's
    once-a-second read, and it shows no service down because of them."""
    faults, calls = Faults(), []
    registry = new_registry()
    server = ControlServer(
        registry,
        "127.0.0.1",
        0,
        token=TOKEN,
        routes={"/faults": counting(faults_app(faults, TOKEN), calls)},
    )
    server.start()
    try:
        app = create_app(config_for(server))
        client = await aiohttp_client(app)
        await read(client, tcp_echo_read)
        before, rounds = len(calls), app[SCRAPER].rounds
        answers = await asyncio.gather(*(client.get("/api/faults") for _ in range(100)))
        bodies = [await answer.json() for answer in answers]
        assert all(b["services"]["tcp-echo"].get("active") is False for b in bodies)
        assert len(calls) - before <= app[SCRAPER].rounds - rounds + 1
    finally:
        server.close()


# ---- whether faults can be changed: the token


@pytest.mark.parametrize(
    ("front", "service", "state"),
    [
        (TOKEN, TOKEN, "ok"),
        (None, TOKEN, "missing"),
        (TOKEN, None, "missing"),
        (TOKEN, TOKEN[::-1], "mismatch"),
    ],
)
async def test_the_listing_says_plainly_when_faults_cannot_be_changed(
    aiohttp_client, front: str | None, service: str | None, state: str
) -> None:
    faults = Faults()
    server = serve(
        ControlSettings(admin_token=service), "127.0.0.1", 0, new_registry(), faults=faults
    )
    try:
        client = await aiohttp_client(create_app(config_for(server, token=front)))
        body = await read(client, lambda b: b["token"]["state"] != "unknown")
        assert body["token"]["state"] == state
        assert (body["token"]["detail"] is None) is (state == "ok")
        if state == "missing" and front is not None:
            assert "tcp-echo" in body["token"]["detail"]
    finally:
        server.close()


# ---- every replica


REPLICAS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
NAME = "tcp-echo.replicas.test"


@pytest.fixture
def replicas(monkeypatch) -> Iterator[list[tuple[str, Faults, ControlServer]]]:
    """tcp-echo as three replicas: a control port each on 127.0.0.2-4, one port number, one
    name resolving to the three (as compose --scale, Swarm's dnsrr or a headless Service)."""
    started: list[tuple[str, Faults, ControlServer]] = []
    port = 0
    for address in REPLICAS:
        faults = Faults()
        settings = ControlSettings(admin_token=TOKEN)
        server = serve(settings, address, port, new_registry(), faults=faults)
        port = server.port
        started.append((address, faults, server))

    async def resolve(host: str, port: int, socktype: int = socket.SOCK_STREAM) -> list[str]:
        if host == NAME:
            return [a for a, _, s in started if s.server is not None]
        return await real_resolve(host, port, socktype)

    real_resolve = replica_module.resolve_all
    monkeypatch.setattr(replica_module, "resolve_all", resolve)
    yield started
    for _, _, server in started:
        server.close()


def replicas_config(started: list[tuple[str, Faults, ControlServer]]) -> WebConfig:
    return config_for(started[0][2], tcp_echo_host=NAME, tcp_echo_metrics_port=started[0][2].port)


async def test_a_fault_goes_to_every_replica_and_is_cleared_on_every_one(
    aiohttp_client, replicas
) -> None:
    client = await aiohttp_client(create_app(replicas_config(replicas)))
    for _ in range(4):
        response = await client.put("/api/faults/tcp-echo", json={"latency_ms": 5})
        assert response.status == 200
        answer = await response.json()
        assert [r["address"] for r in answer["replicas"]] == list(REPLICAS)
        assert all(r["active"] for r in answer["replicas"])
        assert [f.current() for _, f, _ in replicas] == [FaultSpec(latency_ms=5)] * 3
        listed = await read(client)
        assert listed["services"]["tcp-echo"]["active"] is True
        assert len(listed["services"]["tcp-echo"]["replicas"]) == 3
        assert (await client.delete("/api/faults/tcp-echo")).status == 200
        assert not any(f.active for _, f, _ in replicas)
        listed = await read(client)
        assert listed["services"]["tcp-echo"]["active"] is False


async def test_a_replica_that_does_not_take_it_is_named(aiohttp_client, replicas) -> None:
    replicas[1][2].close()  # 127.0.0.3's control port is gone; the name still lists it
    client = await aiohttp_client(create_app(replicas_config(replicas)))
    response = await client.put("/api/faults/tcp-echo", json={"fail_percent": 10})
    assert response.status == 503
    problem = await response.json()
    assert "1 of 3 replicas" in problem["detail"]
    states = {r["address"]: r["state"] for r in problem["replicas"]}
    assert states == {"127.0.0.2": "up", "127.0.0.3": "down", "127.0.0.4": "up"}
    assert [f.active for _, f, _ in replicas] == [True, False, True]


async def test_the_live_rate_of_a_service_is_the_sum_of_its_replicas() -> None:
    servers, counters = [], []
    port = 0
    try:
        for address in REPLICAS:
            registry = CollectorRegistry()
            counters.append(Counter("polyloop_requests", "served", registry=registry))
            server = ControlServer(registry, address, port)
            server.start()
            port = server.port
            servers.append(server)
        clock = FakeClock()
        target = Target(NAME, port, lambda: list(REPLICAS))
        async with aiohttp.ClientSession() as session:
            scraper = Scraper({"tcp-echo": target}, session, timeout=1.0, clock=clock)
            await scraper.scrape()
            for counter, served in zip(counters, (100, 200, 300), strict=True):
                counter.inc(served)
            clock.now += 2.0
            await scraper.scrape()
            picture = scraper.picture()["tcp-echo"]
            (combined,) = scraper.series["tcp-echo"].samples  # what the experiments measure
    finally:
        for server in servers:
            server.close()
    assert picture["rate"] == 300.0  # (100 + 200 + 300) / 2 s
    assert [r["rate"] for r in picture["replicas"]] == [50.0, 100.0, 150.0]
    assert picture["metrics"]["polyloop_requests_total"] == 600
    assert combined.requests == 600


# ---- who may change anything: the front's own names, from its own pages (origin.py)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "evil.example:8080"}, 421),  # DNS rebinding: the page's own name
        ({"Host": "evil.example", "Origin": "http://evil.example"}, 421),
        ({"Host": "127.0.0.1@evil.example"}, 421),
        ({"Host": "localhost."}, 421),
        ({"Host": "[::ffff:127.0.0.1]"}, 421),
        ({"Host": ""}, 421),
        ({"Host": "127.0.0.1:8080", "Origin": "http://evil.example"}, 403),
        ({"Host": "127.0.0.1:8080", "Origin": "null"}, 403),
        ({"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8081"}, 403),
    ],
)
async def test_a_foreign_host_or_page_changes_nothing(
    aiohttp_client, service, headers: dict[str, str], status: int
) -> None:
    faults, server = service
    app = create_app(config_for(server))
    client = await aiohttp_client(app)
    for method, path, body in [
        ("PUT", "/api/faults/tcp-echo", {"latency_ms": 5}),
        ("PUT", "/api/faults/web", {"latency_ms": 5}),
        ("DELETE", "/api/faults/tcp-echo", None),
        ("POST", "/api/experiments", {"service": "tcp-echo", "kind": "latency"}),
        ("DELETE", "/api/experiments/current", None),
        ("POST", "/api/echo/tcp", {"message": "hi"}),
    ]:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status == status, (method, path, await response.text())
        assert response.content_type == "application/problem+json"
    assert not faults.active and not app[FAULTS].active


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080"},
        {"Host": "LOCALHOST:9", "Origin": "http://localhost:9"},
        {"Host": "[::1]:8080", "Origin": "http://[::1]:8080"},
        {"Host": "127.0.0.1"},  # curl, Locust: no Origin
        {"Host": "demo.lan", "Origin": "http://demo.lan"},  # WEB_ALLOWED_HOSTS
    ],
)
async def test_the_fronts_own_names_and_pages_may(aiohttp_client, service, headers) -> None:
    faults, server = service
    client = await aiohttp_client(create_app(config_for(server, allowed_hosts="demo.lan")))
    response = await client.put("/api/faults/tcp-echo", json={"latency_ms": 5}, headers=headers)
    assert response.status == 200, await response.text()
    assert faults.current() == FaultSpec(latency_ms=5)


async def test_an_absolute_form_target_is_checked_by_its_own_authority(
    aiohttp_client, service
) -> None:
    # RFC 9112 3.2.2: the authority of an absolute-form target replaces Host
    faults, server = service
    client = await aiohttp_client(create_app(config_for(server)))
    head = (
        b"PUT http://evil.example/api/faults/tcp-echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 16\r\n\r\n"
    )
    status = await raw_exchange(client.server.port, head, b'{"latency_ms":5}')
    assert status.split()[1] == b"421", status
    assert not faults.active
    own = head.replace(b"evil.example", b"localhost:1")
    status = await raw_exchange(client.server.port, own, b'{"latency_ms":5}')
    assert status.split()[1] == b"200", status


def test_host_names_read_once_stay_few() -> None:
    """``origin.host_name`` keeps the Hosts it read (a URL parse each otherwise), at most
    64: a client sending a new Host per request evicts, never grows the front."""
    from services.web.origin import host_name

    host_name.cache_clear()
    for i in range(1000):
        assert host_name(f"h{i}.example:8080") == f"h{i}.example"
    assert host_name("[::1]:8080") == "::1"
    assert host_name("evil.example/path") is None
    assert host_name.cache_info().currsize <= 64
