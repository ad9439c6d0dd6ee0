"""The dashboard's manual fault panel in a real browser, against the running stack.

Latency 500 ms on the resolver from the panel: the map badges its node, the panel says
what is active; a resolve from the try-it panel still answers (late); "Clear" removes
the badge without a reload. Then a block of 500 ms every second: the resolver's own loop
lag on its node rises. Each test clears what it set, whatever happens.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Watched
from tests.e2e.test_dashboard import wait_until
from tests.stack import Stack

BADGE = '.node[data-node="resolver"] .fault-badge'
ROW = 'form.fault[data-service="resolver"]'


@pytest.fixture
def cleared(stack: Stack) -> Iterator[None]:
    yield
    request = urllib.request.Request(f"{stack.web_url}/api/faults/resolver", method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as response:
        json.load(response)


def test_latency_set_from_the_panel_badges_the_node_then_clears(
    dashboard: Watched, cleared: None
) -> None:
    page = dashboard.page
    row = page.locator(ROW)
    wait_until("the panel says faults are on", lambda: "is on" in page.inner_text("#faults-state"))
    row.locator('input[name="latency_ms"]').fill("500")
    row.locator('button[type="submit"]').click()
    wait_until("the badge on the resolver node", lambda: page.locator(BADGE).count() == 1)
    wait_until(
        "the panel shows the latency",
        lambda: "latency 500 ms" in row.locator(".fault-status").inner_text(),
    )
    assert page.locator('.node[data-node="dns"] .fault-badge').count() == 0
    row.locator("button.secondary").click()
    wait_until("the badge gone", lambda: page.locator(BADGE).count() == 0)
    assert "no fault" in row.locator(".fault-status").inner_text()
    dashboard.assert_clean()


def test_block_every_second_from_the_panel_shows_in_the_resolvers_lag(
    dashboard: Watched, cleared: None
) -> None:
    page = dashboard.page
    row = page.locator(ROW)
    wait_until("the panel says faults are on", lambda: "is on" in page.inner_text("#faults-state"))
    row.locator('input[name="block_ms"]').fill("500")
    row.locator('input[name="block_every_second"]').check()
    row.locator('input[name="duration_s"]').fill("20")
    row.locator('button[type="submit"]').click()
    wait_until("the badge on the resolver node", lambda: page.locator(BADGE).count() == 1)

    def lag_ms() -> float:
        text = page.inner_text('.node[data-node="resolver"] .o-lag')
        try:
            return float(text.split()[0])
        except (ValueError, IndexError):
            return 0.0

    wait_until("the resolver's loop lag p99 over 100 ms", lambda: lag_ms() >= 100, 20)
    row.locator("button.secondary").click()
    wait_until("the badge gone", lambda: page.locator(BADGE).count() == 0)
    dashboard.assert_clean()
