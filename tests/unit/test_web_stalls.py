"""The front gathers every service's stalls: ``GET /api/stalls``, and ``stalls`` in each
service of ``/api/live`` and ``/ws/live``, against real control ports.

Each "service" is a real control port (``services.common.control.serve``: ``/metrics`` and
``/stalls``, served from a thread as the services serve theirs) whose stalls counter,
blocked gauge and ``/stalls`` document the test sets by hand, counting how often the front
asked for ``/stalls``: only when the counter moved or a stall is in progress.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from services.common.catalogue import NAMES
from services.common.control import ControlServer, ControlSettings, new_registry, serve
from services.web.app import create_app
from services.web.config import WebConfig
from services.web.openapi import openapi_document
from services.web.scrape import LIVE_EVENTS, LIVE_FRAMES, Scraper, compact_stalls
from tests.unit.test_web_scrape import feed_until, only_tcp_echo_up

STACK = [f"services/x.py:{i} in f{i}" for i in range(20)]  # innermost last


def documented(answer: Any, schema: str) -> None:
    """``answer`` fits the OpenAPI document's component ``schema`` (its $refs resolved)."""
    components = openapi_document(WebConfig())["components"]
    validator = Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", **{"components": components}}
    )
    validator.validate(answer)


def event(at: float, duration_ms: float) -> dict[str, Any]:
    return {"at": at, "duration_ms": duration_ms, "stack": STACK}


@dataclass(eq=False)  # hashable by identity: a registry keeps its collectors in a dict
class FakeControlPort:
    """A service's control port with stalls the test decides."""

    stalls_total: int = 0
    blocked_now: float = 0.0
    document: dict[str, Any] = field(default_factory=dict)
    asked: int = 0  # GET /stalls answered
    server: ControlServer | None = None

    def collect(self) -> Iterator[Any]:
        yield CounterMetricFamily("polyloop_event_loop_stalls", "stalls", value=self.stalls_total)
        yield GaugeMetricFamily("polyloop_event_loop_blocked_seconds", "now", self.blocked_now)
        yield GaugeMetricFamily("polyloop_event_loop_blocked_max_seconds", "max", 0.0)

    def answer(self) -> dict[str, Any]:
        self.asked += 1
        return {
            "service": "tcp-echo",
            "loop": "twisted",
            "threshold_ms": 200.0,
            "watchdog": {"wakeups": 1, "unsampled": 0},
            "stalls_total": self.stalls_total,
            "stalled_seconds_total": 0.0,
            "stalled_now": None,
            "events": [],
            **self.document,
        }

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port


@pytest.fixture
def control() -> Iterator[FakeControlPort]:
    fake = FakeControlPort()
    registry = new_registry(fake)
    fake.server = serve(ControlSettings(), "127.0.0.1", 0, registry, stalls=fake.answer)
    yield fake
    fake.server.close()


def test_the_live_form_keeps_the_innermost_frames_of_the_last_stalls() -> None:
    document = {
        "threshold_ms": 200.0,
        "stalls_total": 9,
        "stalled_now": {"since_ms": 321.0, "stack": STACK},
        "events": [event(float(i), 300.0 + i) for i in range(9)],
    }
    live = compact_stalls(document)
    assert live["threshold_ms"] == 200.0 and live["stalls_total"] == 9
    assert live["stalled_now"] == {"since_ms": 321.0, "stack": STACK[-LIVE_FRAMES:], "frames": 20}
    assert [e["duration_ms"] for e in live["events"]] == [306.0, 307.0, 308.0]
    assert len(live["events"]) == LIVE_EVENTS
    assert all(e["stack"] == STACK[-LIVE_FRAMES:] and e["frames"] == 20 for e in live["events"])
    assert STACK[-1] == live["events"][-1]["stack"][-1]  # the culprit end is kept


async def test_stalls_are_read_again_only_when_they_moved(control: FakeControlPort) -> None:
    url = f"http://127.0.0.1:{control.port}/metrics"
    async with aiohttp.ClientSession() as session:
        scraper = Scraper({"tcp-echo": url}, session, timeout=2.0)
        await scraper.scrape()
        assert control.asked == 1  # the first time: nothing known yet
        for _ in range(3):
            await scraper.scrape()
        assert control.asked == 1  # idle: the scrape itself says nothing moved
        control.stalls_total = 1
        control.document = {"events": [event(1.0, 412.0)], "stalls_total": 1}
        await scraper.scrape()
        assert control.asked == 2
        stalls = scraper.picture()["tcp-echo"]["stalls"]
        assert [e["duration_ms"] for e in stalls["events"]] == [412.0]
        control.blocked_now = 0.25  # over the service's 200 ms: a stall in progress
        control.document = {
            "stalled_now": {"since_ms": 250.0, "stack": STACK},
            "events": [event(1.0, 412.0)],
            "stalls_total": 1,
        }
        await scraper.scrape()
        assert control.asked == 3
        assert scraper.picture()["tcp-echo"]["stalls"]["stalled_now"]["since_ms"] == 250.0
        control.blocked_now = 0.0
        control.stalls_total = 2
        control.document = {"events": [event(1.0, 412.0), event(2.0, 600.0)], "stalls_total": 2}
        await scraper.scrape()
        assert control.asked == 4
        assert scraper.picture()["tcp-echo"]["stalls"]["stalled_now"] is None
        await scraper.scrape()
        assert control.asked == 4
        # the loop counted a third stall that its watchdog has not recorded yet
        control.stalls_total = 3
        await scraper.scrape()
        assert control.asked == 5
        await scraper.scrape()
        assert control.asked == 6  # still behind: read again
        control.document = {"events": [event(2.0, 600.0), event(3.0, 700.0)], "stalls_total": 3}
        await scraper.scrape()
        assert control.asked == 7
        assert scraper.picture()["tcp-echo"]["stalls"]["events"][-1]["duration_ms"] == 700.0
        await scraper.scrape()
        assert control.asked == 7


async def test_a_service_without_stalls_is_still_up(control: FakeControlPort) -> None:
    control.document = {"events": "not a list"}
    url = f"http://127.0.0.1:{control.port}/metrics"
    async with aiohttp.ClientSession() as session:
        scraper = Scraper({"tcp-echo": url}, session, timeout=2.0)
        await scraper.scrape()
    picture = scraper.picture()["tcp-echo"]
    assert picture["state"] == "up" and picture["stalls"] is None


async def test_api_stalls_gathers_every_service(aiohttp_client, control) -> None:
    control.stalls_total = 1
    control.document = {"events": [event(1.0, 412.0)], "stalls_total": 1}
    config = only_tcp_echo_up(control.port, scrape_timeout=0.5)
    client = await aiohttp_client(create_app(config))
    response = await client.get("/api/stalls")
    assert response.status == 200
    services = (await response.json())["services"]
    assert set(services) == set(NAMES)
    assert services["tcp-echo"]["events"] == [event(1.0, 412.0)]  # whole, every frame
    assert services["udp-echo"]["state"] == "down"
    # the front's own, from its watchdog (the app in a test has no control port)
    assert services["web"]["service"] == "web" and services["web"]["loop"] == "asyncio"
    assert services["web"]["threshold_ms"] == 200.0
    documented(await response.json(), "Stalls")


async def test_a_long_stalls_document_is_read_whole(aiohttp_client, control) -> None:
    # before: the front kept what had arrived at its first read, and a document over one
    # segment was "Unterminated string" (a service read as down in CI)
    deep = [f"services/{'x' * 100}.py:{i} in f{i}" for i in range(30)]
    events = [{"at": float(i), "duration_ms": 300.0, "stack": deep} for i in range(100)]
    control.stalls_total = len(events)
    control.document = {"events": events, "stalls_total": len(events)}
    config = only_tcp_echo_up(control.port, scrape_timeout=0.9)
    client = await aiohttp_client(create_app(config))
    response = await client.get("/api/stalls")
    assert response.status == 200
    served = (await response.json())["services"]["tcp-echo"]
    assert served.get("events") == events, served.get("detail")  # 360 KB: many segments


async def test_the_feed_carries_each_service_s_stalls(aiohttp_client, control) -> None:
    control.stalls_total = 1
    control.document = {"events": [event(1.0, 412.0)], "stalls_total": 1}
    config = WebConfig(tcp_echo_metrics_port=control.port, scrape_timeout=0.5)
    client = await aiohttp_client(create_app(config))
    message = await feed_until(client, lambda m: m["services"]["tcp-echo"]["stalls"] is not None)
    stalls = message["services"]["tcp-echo"]["stalls"]
    assert stalls["events"][0]["duration_ms"] == 412.0
    assert stalls["events"][0]["stack"] == STACK[-LIVE_FRAMES:]
    documented(await (await client.get("/api/live")).json(), "Live")
