"""The dashboard under protocol-only load, in a real browser (Debian's Chromium).

Needs every service running with its metrics port (``make up``, or local processes) and
the front at ``stack.web_url``. Locust's ``TcpEchoUser``, ``UdpEchoUser`` and ``DnsUser``
send straight to their services (never through the front), as a subprocess bounded in
users and time; the map's nodes and the per-service charts must move with that traffic,
which only the services' own metrics can see. Screenshots land in ``reports/e2e/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e import conftest
from tests.e2e.conftest import NARROW, Watched
from tests.stack import ROOT, Stack

LOADED = ("tcp-echo", "udp-echo", "dns")
SERVICES = (*LOADED, "resolver", "web")
LOAD_SECONDS = 40  # an upper bound: the run is stopped as soon as the test is done
DEADLINE = 20.0


def wait_until(what: str, check: Callable[[], bool], deadline: float = DEADLINE) -> None:
    conftest.wait_until(what, check, deadline, every=0.2)  # a Locust run: no need to hurry


@pytest.fixture
def protocol_load(stack: Stack) -> Iterator[None]:
    """Locust headless with the three protocol users only, stopped when the test ends."""
    env = dict(os.environ)
    env.update(stack.address_env())
    command = [
        str(Path(sys.executable).with_name("locust")),
        "-f", "loadtest", "--headless", "-u", "15", "-r", "15", "-t", f"{LOAD_SECONDS}s",
        "--only-summary", "TcpEchoUser", "UdpEchoUser", "DnsUser",
    ]  # fmt: skip
    locust = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        locust.terminate()
        try:
            locust.wait(timeout=15)
        except subprocess.TimeoutExpired:
            locust.kill()
            locust.wait(timeout=5)


def node(page: Page, name: str) -> dict:
    return page.evaluate(
        """name => {
            const n = document.querySelector(`.node[data-node="${name}"]`);
            return {rate: Number(n.dataset.rate || 0), metrics: n.dataset.metrics || "",
                    text: n.querySelector(".o-rate").textContent,
                    lag: n.querySelector(".o-lag").textContent,
                    spark: n.querySelector(".spark canvas").toDataURL()};
        }""",
        name,
    )


def service_chart(page: Page, name: str) -> dict:
    chart = page.locator(f'.svc-chart[data-service="{name}"]')
    if chart.count() == 0:
        return {"points": 0, "last": {}, "pixels": ""}
    raw = chart.get_attribute("data-last")
    pixels = chart.locator(".c-rate canvas").evaluate("c => c.toDataURL()")
    return {
        "points": int(chart.get_attribute("data-points") or 0),
        "last": json.loads(raw) if raw else {},
        "pixels": pixels,
    }


def test_map_and_service_charts_move_under_protocol_only_load(
    dashboard: Watched, protocol_load: None, artefacts: Path
) -> None:
    page = dashboard.page
    wait_until("the live feed", lambda: page.get_attribute("#feed", "data-state") == "live")
    for name in SERVICES:
        wait_until(f"{name}'s metrics", lambda name=name: node(page, name)["metrics"] == "up")
        assert page.locator(f'.svc-chart[data-service="{name}"]').count() == 1
    before = {name: (node(page, name), service_chart(page, name)) for name in LOADED}
    # Locust's users talk to the services directly: their own rates show it
    for name in LOADED:
        wait_until(
            f"{name}'s own rate on the map",
            lambda name=name: node(page, name)["rate"] > 1,
            deadline=30,
        )
        wait_until(
            f"{name}'s chart",
            lambda name=name: service_chart(page, name)["last"].get("rate", 0) > 1,
        )
    for name in LOADED:
        node_before, chart_before = before[name]
        # the load may already run when `before` is read: each must move on from there
        # (drawn once a second), not merely differ within the same second
        wait_until(
            f"{name}'s sparkline moves",
            lambda name=name, node_before=node_before: (
                node(page, name)["spark"] != node_before["spark"]
            ),
        )
        wait_until(
            f"{name}'s chart moves",
            lambda name=name, chart_before=chart_before: (
                (chart := service_chart(page, name))["points"] > chart_before["points"]
                and chart["pixels"] != chart_before["pixels"]
            ),
        )
        node_after, chart_after = node(page, name), service_chart(page, name)
        assert node_after["text"].endswith("/s"), node_after
        assert node_after["lag"].endswith("ms"), node_after  # the loop's lag p99
        assert chart_after["last"]["lag_p99_ms"] is not None, chart_after
    # the front's own charts stay, labelled as its view
    assert page.locator("#front-title").inner_text() == "The front's view"
    assert page.locator('.chart[data-backend="tcp-echo"]').count() == 1
    page.screenshot(path=str(artefacts / "live-load-1280.png"), full_page=True)
    dashboard.assert_clean()


def test_the_live_section_fits_a_phone(narrow_dashboard: Watched, artefacts: Path) -> None:
    page = narrow_dashboard.page
    for name in SERVICES:
        wait_until(f"{name}'s chart", lambda name=name: service_chart(page, name)["points"] > 1)
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= NARROW["width"], f"the page scrolls sideways at 390 px ({width} px)"
    for name in SERVICES:
        box = page.locator(f'.svc-chart[data-service="{name}"]').bounding_box()
        assert box is not None and box["x"] >= 0
        assert box["x"] + box["width"] <= NARROW["width"], (name, box)
    page.screenshot(path=str(artefacts / "live-390.png"), full_page=True)
    narrow_dashboard.assert_clean()
