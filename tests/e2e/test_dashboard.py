"""The dashboard in a real browser (Debian's Chromium), against the running stack.

Needs every service running (``make up``, or local processes) and the front at
``stack.web_url``. Run: ``.venv/bin/pytest tests/e2e``. Screenshots land in
``reports/e2e/`` (not versioned).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import Watched

NODES = ("web", "tcp-echo", "udp-echo", "resolver", "dns")
BURST = 200  # echo calls sent while waiting for the charts to move
DEADLINE = 20.0


def wait_until(what: str, check: Callable[[], bool], deadline: float = DEADLINE) -> None:
    """Poll `check` until it holds; fail naming `what` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def node_state(page: Page, name: str) -> str | None:
    return page.get_attribute(f'.node[data-node="{name}"]', "data-state")


def chart_last(page: Page, backend: str) -> tuple[int, dict]:
    chart = page.locator(f'.chart[data-backend="{backend}"]')
    if chart.count() == 0:
        return 0, {}
    raw = chart.get_attribute("data-last")
    return int(chart.get_attribute("data-points") or 0), json.loads(raw) if raw else {}


@contextmanager
def echo_burst(front: str, count: int = BURST) -> Iterator[threading.Event]:
    """Send up to `count` TCP echo calls from a thread; stops early when the test is done."""
    stop = threading.Event()

    def run() -> None:
        body = json.dumps({"message": "load"}).encode()
        for _ in range(count):
            if stop.is_set():
                return
            request = urllib.request.Request(
                f"{front}/api/echo/tcp",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
            time.sleep(0.03)  # spread over several seconds so several chart points see it

    thread = threading.Thread(target=run, name="echo-burst", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)


def test_page_loads_with_every_service_up(dashboard: Watched) -> None:
    page = dashboard.page
    assert "polyloop" in page.title()
    for name in NODES:
        wait_until(f"{name} shown up", lambda name=name: node_state(page, name) == "up")
    wait_until("the live feed", lambda: page.get_attribute("#feed", "data-state") == "live")
    for name in ("tcp-echo", "udp-echo", "resolver", "dns"):
        assert page.locator(f'.chart[data-backend="{name}"]').count() == 1
    dashboard.assert_clean()
    # the guard saw the front's own traffic: the routes really were in place
    assert any(url.endswith("/static/app.js") for url in dashboard.served)
    assert any("/ws/live" in url for url in dashboard.served)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_echo_panel_round_trips_a_message(dashboard: Watched, proto: str) -> None:
    page = dashboard.page
    message = f"polyloop e2e {proto} {time.monotonic_ns()}"
    form = page.locator(f"#echo-{proto}")
    form.get_by_label("Message").fill(message)
    form.get_by_role("button", name="Send").click()
    form.locator(".result .echo").wait_for()
    assert form.locator(".result .echo").inner_text() == message
    assert f"{len(message.encode())} bytes" in form.locator(".result .meta").inner_text()
    dashboard.assert_clean()


def test_echo_is_reachable_by_keyboard(dashboard: Watched) -> None:
    page = dashboard.page
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "echo-tcp-message":
            break
    else:
        pytest.fail("the TCP message field is not reachable with Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    page.locator("#echo-tcp .result .echo").wait_for()
    assert page.locator("#echo-tcp .result .echo").inner_text() == "typed, not clicked"
    dashboard.assert_clean()


def test_concurrent_resolve_beats_sequential(dashboard: Watched) -> None:
    page = dashboard.page
    form = page.locator("#resolve")
    names = [n for n in form.locator("textarea").input_value().split() if n]
    assert any(".delay-" in n for n in names) and "nope.polyloop.test" in names
    form.get_by_role("button", name="Compare both").click()
    timelines = {}
    for mode in ("sequential", "concurrent"):
        section = form.locator(f'.timeline[data-mode="{mode}"]')
        wait_until(f"{mode} total", lambda s=section: s.get_attribute("data-total-ms") is not None)
        assert section.locator(".bars li").count() == len(names)
        widths = section.locator(".bar").evaluate_all("bars => bars.map(b => b.offsetWidth)")
        assert all(w > 0 for w in widths), widths
        assert section.locator("li.failed").filter(has_text="nope.polyloop.test").count() == 1
        timelines[mode] = float(section.get_attribute("data-total-ms") or "nan")
    assert timelines["concurrent"] < timelines["sequential"], timelines
    dashboard.assert_clean()


def test_fanout_fills_one_slot_per_part(dashboard: Watched) -> None:
    page = dashboard.page
    form = page.locator("#fanout")
    form.get_by_role("button", name="Fan out").click()
    for part in ("tcp", "udp", "resolve"):
        slot = form.locator(f'.slot[data-part="{part}"]')
        wait_until(f"{part} slot", lambda s=slot: s.get_attribute("data-state") == "ok")
    assert "one request, three loops" in form.locator('.slot[data-part="tcp"]').inner_text()
    dashboard.assert_clean()


def test_charts_move_under_load(dashboard: Watched, artefacts) -> None:
    page = dashboard.page
    wait_until("a first chart point", lambda: chart_last(page, "tcp-echo")[0] >= 1)
    points_before, _ = chart_last(page, "tcp-echo")
    with echo_burst(dashboard.front):
        wait_until(
            "tcp-echo requests/s above zero on the chart",
            lambda: chart_last(page, "tcp-echo")[1].get("rps", 0) > 0,
        )
        # a few seconds of history, so the screenshot shows lines rather than dots
        wait_until("5 more points", lambda: chart_last(page, "tcp-echo")[0] >= points_before + 5)
        _, last = chart_last(page, "tcp-echo")
        assert last["p50"] > 0 and last["p99"] >= last["p50"]
        assert float(page.locator('.chart[data-backend="tcp-echo"] .f-rps').inner_text()) > 0
        page.screenshot(path=artefacts / "dashboard-under-load.png", full_page=True)
    dashboard.assert_clean()


def test_readable_on_a_phone(narrow_dashboard: Watched, artefacts) -> None:
    page = narrow_dashboard.page
    wait_until("the live feed", lambda: page.get_attribute("#feed", "data-state") == "live")
    wait_until("charts", lambda: chart_last(page, "tcp-echo")[0] >= 1)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 390 px"
    page.screenshot(path=artefacts / "dashboard-390px.png", full_page=True)
    narrow_dashboard.assert_clean()


def test_a_refused_request_shows_the_problem_detail(dashboard: Watched) -> None:
    page = dashboard.page
    form = page.locator("#resolve")
    form.locator("textarea").fill("host-1.polyloop.test\nnot a host name!")
    with page.expect_response("**/api/resolve") as answer:
        form.get_by_role("button", name="Concurrent").click()
    problem = answer.value.json()
    assert answer.value.status in {400, 422}
    assert answer.value.headers["content-type"].startswith("application/problem+json")
    error = form.locator(".error")
    wait_until("the problem shown", lambda: problem["detail"] in error.inner_text())
    # Chromium itself logs every 4xx answer as "Failed to load resource": that one is expected
    status = answer.value.status
    dashboard.assert_clean(expected=rf"status of {status} .*/api/resolve")
