"""The front's scraper and ``GET /api/live`` against real prometheus-client endpoints.

Each "service" here is a real registry with the contract's metrics, served over HTTP on
127.0.0.1 by prometheus-client's own threaded server (``start_http_server``), as the
services serve theirs; the test moves its counters, histogram and gauge by hand.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from devstack import free_port
from services.common.catalogue import NAMES as SERVICES
from services.web.app import create_app
from services.web.config import WebConfig
from services.web.scrape import LAG_WINDOW, SCRAPER, Scraper, increase, parse, quantile
from tests.clock import FakeClock
from tests.sockets import closed_port

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DEADLINE = 10.0


@dataclass
class FakeService:
    """A real metrics endpoint with the contract's three polyloop_ series."""

    port: int
    requests: Counter
    lag: Histogram
    blocked: Gauge
    server: object

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"


def serve_metrics() -> FakeService:
    registry = CollectorRegistry()
    requests = Counter("polyloop_requests", "work served", registry=registry)
    lag = Histogram(
        "polyloop_event_loop_lag_seconds", "timer lateness", buckets=BUCKETS, registry=registry
    )
    blocked = Gauge(
        "polyloop_event_loop_blocked_max_seconds", "blocked now, 2 s window", registry=registry
    )
    Gauge("polyloop_tcp_echo_connections_open", "open", registry=registry).set(3)
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return FakeService(port, requests, lag, blocked, server)


@pytest.fixture
def service() -> Iterator[FakeService]:
    fake = serve_metrics()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def only_tcp_echo_up(port: int, scrape_timeout: float) -> WebConfig:
    """The front's config: tcp-echo's control port at ``port``, every other one (the front's
    own too) a port nothing listens on."""
    return WebConfig(
        tcp_echo_metrics_port=port,
        udp_echo_metrics_port=closed_port(),
        resolver_metrics_port=closed_port(),
        dns_metrics_port=closed_port(),
        metrics_port=closed_port(),
        scrape_timeout=scrape_timeout,
    )


async def feed_until(client: TestClient, ready: Callable[[dict], bool]) -> dict:
    """The first ``/ws/live`` message ``ready`` accepts (DEADLINE)."""
    async with client.ws_connect("/ws/live") as ws:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while True:
            message = await asyncio.wait_for(ws.receive_json(), DEADLINE)
            if ready(message):
                return message
            assert loop.time() < deadline, message


async def test_rate_from_two_scrapes(service: FakeService) -> None:
    clock = FakeClock()
    async with aiohttp.ClientSession() as session:
        scraper = Scraper({"tcp-echo": service.url}, session, timeout=1.0, clock=clock)
        service.requests.inc(100)
        await scraper.scrape()
        first = scraper.picture()["tcp-echo"]
        assert first["state"] == "up"
        assert first["rate"] == 0.0  # one scrape is no rate yet
        service.requests.inc(250)
        clock.now += 2.0
        await scraper.scrape()
        picture = scraper.picture()["tcp-echo"]
    assert picture["rate"] == 125.0  # 250 more in 2 s
    assert picture["metrics"]["polyloop_requests_total"] == 350
    assert picture["metrics"]["polyloop_tcp_echo_connections_open"] == 3


async def test_p99_comes_from_the_bucket_deltas_of_the_last_seconds(service: FakeService) -> None:
    clock = FakeClock()
    async with aiohttp.ClientSession() as session:
        scraper = Scraper({"dns": service.url}, session, timeout=1.0, clock=clock)
        # long ago: a huge lag that must fall out of the window
        for _ in range(50):
            service.lag.observe(4.0)
        await scraper.scrape()
        for _ in range(LAG_WINDOW):
            clock.now += 1.0
            for _ in range(98):
                service.lag.observe(0.0002)  # on time
            service.lag.observe(0.3)  # two late ticks in a hundred
            service.lag.observe(0.3)
            await scraper.scrape()
        recent = scraper.picture()["dns"]["lag_p99_ms"]
        # the window holds 500 ticks: 490 in the first bucket, 10 in (0.25, 0.5]; rank 495
        # is halfway into that bucket (the 4 s ticks of long ago are not counted)
        assert recent == pytest.approx(375.0), recent
        for _ in range(LAG_WINDOW):
            clock.now += 1.0
            for _ in range(100):
                service.lag.observe(0.0002)
            await scraper.scrape()
        calm = scraper.picture()["dns"]["lag_p99_ms"]
    assert calm <= 0.5  # the late ticks left the window: below the first bucket's bound


def test_quantile_interpolates_inside_the_bucket() -> None:
    old = ((0.01, 0.0), (0.1, 0.0), (float("inf"), 0.0))
    new = ((0.01, 50.0), (0.1, 100.0), (float("inf"), 100.0))
    assert quantile(0.5, old, new) == pytest.approx(0.01)
    assert quantile(0.99, old, new) == pytest.approx(0.01 + 0.09 * (49 / 50))
    assert quantile(0.99, new, new) is None  # no tick in the window
    only_inf = ((0.01, 0.0), (float("inf"), 10.0))
    assert quantile(0.99, (), only_inf) == 0.01  # past the last bound: the last bound


def test_a_counter_that_went_down_is_a_restart() -> None:
    assert increase(100.0, 130.0) == 30.0
    assert increase(100.0, 5.0) == 5.0  # restarted, then served 5
    text = "# TYPE polyloop_requests counter\npolyloop_requests_total 5.0\n"
    assert parse(text, 0).requests == 5.0
    with pytest.raises(ValueError):
        parse("polyloop_requests_total not-a-number\n", 0)


async def test_blocked_gauge_passes_through(service: FakeService) -> None:
    async with aiohttp.ClientSession() as session:
        scraper = Scraper({"resolver": service.url}, session, timeout=1.0)
        service.blocked.set(1.25)
        await scraper.scrape()
        assert scraper.picture()["resolver"]["blocked_ms"] == 1250.0
        service.blocked.set(0)
        await scraper.scrape()
        assert scraper.picture()["resolver"]["blocked_ms"] == 0.0


async def test_a_service_that_does_not_answer_is_down_and_says_why(service: FakeService) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts (in the kernel) but never answers: a blocked service's loop
    try:
        urls = {
            "tcp-echo": service.url,
            "udp-echo": f"http://127.0.0.1:{closed_port()}/metrics",
            "dns": f"http://127.0.0.1:{silent.getsockname()[1]}/metrics",
        }
        async with aiohttp.ClientSession() as session:
            scraper = Scraper(urls, session, timeout=0.3)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await scraper.scrape()
            elapsed = loop.time() - started
            picture = scraper.picture()
    finally:
        silent.close()
    assert elapsed < 1.0  # concurrently, each bounded: one round is one timeout, not three
    assert picture["tcp-echo"]["state"] == "up"
    assert picture["udp-echo"]["state"] == "down"
    assert picture["udp-echo"]["error"] == "connection refused"
    assert picture["dns"]["state"] == "down"
    assert picture["dns"]["error"] == "no answer within 0.3 s"
    assert picture["dns"]["rate"] == 0.0 and picture["dns"]["lag_p99_ms"] is None


async def test_api_live_shows_every_service_up_or_down(aiohttp_client, service) -> None:
    config = only_tcp_echo_up(service.port, scrape_timeout=0.3)
    app = create_app(config)
    client = await aiohttp_client(app)
    service.requests.inc(7)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:  # the scraper runs once a second by itself; wait for its second round
        body = await (await client.get("/api/live")).json()
        replicas = app[SCRAPER].services["tcp-echo"].replicas.values()
        if any(len(series.samples) >= 2 for series in replicas):
            break
        assert loop.time() < deadline, body
        await asyncio.sleep(0.1)
    body = await (await client.get("/api/live")).json()
    assert set(body["services"]) == set(SERVICES)
    tcp = body["services"]["tcp-echo"]
    assert tcp["state"] == "up", tcp
    assert tcp["metrics"]["polyloop_requests_total"] == 7
    for name in ("udp-echo", "resolver", "dns", "web"):
        assert body["services"][name]["state"] == "down", name
        assert body["services"][name]["error"] == "connection refused"
    assert set(body["front"]) == {"stats", "backends", "loop"}
    assert body["front"]["loop"] == "asyncio"  # the test's own loop
    assert "tcp-echo" in body["front"]["stats"]
    assert isinstance(body["ts"], float)


async def test_the_feed_carries_the_services(aiohttp_client, service) -> None:
    config = WebConfig(tcp_echo_metrics_port=service.port, scrape_timeout=0.3)
    client = await aiohttp_client(create_app(config))
    message = await feed_until(client, lambda m: m["services"]["tcp-echo"]["state"] == "up")
    assert set(message["services"]) == set(SERVICES)
    assert {"stats", "backends", "ts"} <= set(message)


@pytest.mark.parametrize("over", [0, 1])
async def test_a_metrics_answer_is_read_whole_up_to_its_limit_and_refused_past_it(
    monkeypatch: pytest.MonkeyPatch, over: int
) -> None:
    """A control port's /metrics over many segments is read to its end; one byte past the
    limit and the service reads as down, saying why (never a cut document parsed)."""
    from services.web import scrape

    limit = 200_000
    monkeypatch.setattr(scrape, "MAX_BYTES", limit)
    line = b"polyloop_requests_total 7\n"
    body = b"#" * (limit + over - len(line) - 1) + b"\n" + line

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for start in range(0, len(body), 4096):  # in pieces, each sent on its own
            writer.write(body[start : start + 4096])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/metrics"
            scraper = Scraper({"tcp-echo": url}, session, timeout=5.0)
            await scraper.scrape()
            picture = scraper.picture()["tcp-echo"]
    finally:
        server.close()
        await server.wait_closed()
    if over:
        assert picture["state"] == "down", picture
        assert f"more than {limit} bytes" in picture["error"], picture
    else:
        assert picture["state"] == "up", picture
        assert picture["metrics"]["polyloop_requests_total"] == 7
