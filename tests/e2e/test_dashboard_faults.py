"""The dashboard's map follows a backend going down and coming back, in a real browser.

Needs the stack in containers (`make up` with a Docker engine): the test stops the
udp-echo container, watches its node turn "down" without a reload, starts it again and
watches it turn "up". It disturbs the stack, so it runs with the other disruptive tests,
last, and always starts the container again.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Watched
from tests.e2e.test_dashboard import node_state, wait_until
from tests.stack import compose, stack_mode, unavailable

pytestmark = [pytest.mark.compose, pytest.mark.disruptive]


def test_a_stopped_backend_shows_down_on_the_map_then_up_again(dashboard: Watched) -> None:
    if stack_mode() != "docker":
        unavailable("the stack in containers (make up with a Docker engine)")
    page = dashboard.page
    wait_until("udp-echo shown up", lambda: node_state(page, "udp-echo") == "up")
    compose("stop", "udp-echo")
    try:
        wait_until("udp-echo shown down", lambda: node_state(page, "udp-echo") == "down")
        assert node_state(page, "tcp-echo") == "up", "only the stopped backend is down"
    finally:
        compose("start", "udp-echo")
    wait_until("udp-echo shown up again", lambda: node_state(page, "udp-echo") == "up", 30)
    dashboard.assert_clean()
