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
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import SCREEN, Watched, open_dashboard, wait_until

NODES = ("web", "tcp-echo", "udp-echo", "resolver", "dns")
BURST = 200  # echo calls sent while waiting for the charts to move
DEADLINE = 20.0


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


def timelines_now(page: Page) -> dict[str, dict]:
    """Each Resolve column as the user sees it: its total, its bars, the run it belongs to."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll("#resolve .timeline")].map(
            s => [s.dataset.mode, {total: s.querySelector(".total").textContent,
                                   done: s.dataset.totalMs !== undefined,
                                   count: Number(s.dataset.count || 0),
                                   bars: s.querySelectorAll(".bars li").length}]))"""
    )


def test_a_new_resolve_run_never_shows_the_previous_runs_bars(dashboard: Watched) -> None:
    page = dashboard.page
    form = page.locator("#resolve")
    first = len([n for n in form.locator("textarea").input_value().split() if n])
    form.get_by_role("button", name="Compare both").click()
    wait_until("the first run", lambda: all(c["done"] for c in timelines_now(page).values()))
    assert {c["bars"] for c in timelines_now(page).values()} == {first}
    names = ["host-1.polyloop.test", "x.delay-400.polyloop.test", "host-3.polyloop.test"]
    form.locator("textarea").fill("\n".join(names))
    form.get_by_role("button", name="Compare both").click()
    pending_seen = set()
    end = time.monotonic() + DEADLINE
    while True:
        columns = timelines_now(page)
        for mode, column in columns.items():
            if column["done"]:
                # a finished column holds this run's names only
                assert column["bars"] == column["count"] == len(names), (mode, columns)
            else:
                # a column still waiting shows no bars at all: none of the previous run
                assert column["bars"] == 0, (mode, columns)
                pending_seen.add(mode)
        if all(c["done"] for c in columns.values()):
            break
        assert time.monotonic() < end, f"timed out waiting for the second run: {columns}"
        time.sleep(0.02)
    assert "concurrent" in pending_seen, "the check never saw the concurrent column waiting"
    # one mode alone: the other column says it was not run, with nothing in it
    with page.expect_response("**/api/resolve"):
        form.get_by_role("button", name="Concurrent").click()
    wait_until("the concurrent run", lambda: timelines_now(page)["concurrent"]["done"])
    sequential = timelines_now(page)["sequential"]
    assert sequential["bars"] == 0 and "not run" in sequential["total"], sequential
    dashboard.assert_clean()


def test_the_map_shows_the_services_of_api_stack_and_the_fronts_loop(
    dashboard: Watched,
) -> None:
    page = dashboard.page
    with urllib.request.urlopen(f"{dashboard.front}/api/stack", timeout=5) as response:
        stack = json.load(response)
    names = [s["name"] for s in stack["services"]]
    wait_until("a node per service", lambda: page.locator(".node").count() == len(names))
    shown = page.eval_on_selector_all(".node", "nodes => nodes.map(n => n.dataset.node)")
    backends = [s["name"] for s in stack["services"] if s["backend"]]
    assert sorted(shown) == sorted(names)
    assert [n for n in shown if n in backends] == backends  # in the catalogue's order
    front = next(s for s in stack["services"] if not s["backend"])
    assert stack["front_loop"] in page.inner_text("#front-loop")
    assert stack["front_loop"] in page.inner_text(f'.node[data-node="{front["name"]}"] .loop')
    for service in stack["services"]:
        loop = page.inner_text(f'.node[data-node="{service["name"]}"] .loop')
        assert service["loop"] in loop, (service, loop)
    dashboard.assert_clean()


# the one scale of each quantity, whatever the service (charts.js: MS_RANGE, RATE_RANGE)
MS_SCALE = (0.1, 2000.0)
RATE_SCALE = (0.0, 100000.0)


def test_every_chart_draws_its_quantity_on_one_fixed_scale(dashboard: Watched) -> None:
    page = dashboard.page
    wait_until(
        "a few points on every service's charts",
        lambda: page.eval_on_selector_all(
            ".svc-chart", "cards => cards.length > 0 && cards.every(c => c.dataset.points >= 3)"
        ),
    )
    charts = page.eval_on_selector_all(
        ".uchart",
        """charts => charts.map(c => ({kind: c.classList.contains("c-rate") ? "rate" : "ms",
                                       where: c.closest("[data-service],[data-backend],[data-node]")
                                              ?.outerHTML.slice(0, 60),
                                       min: Number(c.dataset.yMin), max: Number(c.dataset.yMax),
                                       canvas: c.querySelectorAll("canvas").length}))""",
    )
    # the focus (2), each service's card (2 each), each node's spark, the front's view (2 each)
    assert len(charts) >= 2 + 3 * len(NODES), charts
    for chart in charts:
        assert chart["canvas"] == 1, chart  # drawn by uPlot, not a placeholder
        scale = RATE_SCALE if chart["kind"] == "rate" else MS_SCALE
        assert (chart["min"], chart["max"]) == pytest.approx(scale), chart
    dashboard.assert_clean()


def legend_values(chart) -> dict[str, str]:
    return chart.evaluate(
        """c => Object.fromEntries([...c.querySelectorAll(".u-legend .u-series")].map(
            s => [s.querySelector(".u-label").textContent,
                  s.querySelector(".u-value").textContent]))"""
    )


def test_hovering_a_chart_shows_the_values_on_both_charts_of_its_service(
    dashboard: Watched,
) -> None:
    page = dashboard.page
    card = page.locator('.svc-chart[data-service="tcp-echo"]')
    wait_until("a few points", lambda: int(card.get_attribute("data-points") or 0) >= 3)
    card.scroll_into_view_if_needed()
    over = card.locator(".c-ms .u-over").bounding_box()
    assert over is not None
    page.mouse.move(over["x"] + over["width"] - 2, over["y"] + over["height"] / 2)
    wait_until(
        "the lag under the cursor",
        lambda: legend_values(card.locator(".c-ms"))["loop lag p99"].endswith("ms"),
    )
    # the other chart of the same service follows the cursor (uPlot's cursor.sync)
    wait_until(
        "the rate under the shared cursor",
        lambda: legend_values(card.locator(".c-rate"))["served req/s"].endswith("/s"),
    )
    other = page.locator('.svc-chart[data-service="dns"] .c-ms')
    assert legend_values(other)["loop lag p99"] == "—", "another service's cursor moved too"
    dashboard.assert_clean()


def test_a_missing_chart_library_is_said_on_the_page(browser, front: str) -> None:
    def without_uplot(context) -> None:
        context.route("**/static/vendor/uPlot.iife.min.js", lambda route: route.fulfill(status=404))

    watched = open_dashboard(browser, front, SCREEN, before_load=without_uplot)
    try:
        page = watched.page
        banner = page.locator("#vendor-missing")
        banner.wait_for(state="visible")
        assert "make vendor" in banner.inner_text()
        # the rest of the page still works: the map's figures follow the feed
        wait_until(
            "tcp-echo's figures",
            lambda: page.inner_text('.node[data-node="tcp-echo"] .o-lag') != "—",
        )
        assert "uPlot is missing" in page.inner_text('.svc-chart[data-service="tcp-echo"] .c-ms')
        watched.assert_clean(expected=r"status of 404 .*uPlot\.iife\.min\.js")
    finally:
        watched.page.context.close()
