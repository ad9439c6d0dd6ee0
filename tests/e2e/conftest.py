"""Browser fixtures: Debian's Chromium driven by Playwright's sync API.

Needs the running front (``stack.web_url``, WEB_PORT) and its backends, and Chromium at
``/usr/bin/chromium`` (or ``$CHROMIUM``); ``playwright install`` is never used. Every
request the page makes is routed: the front's own go through, anything else is
aborted and recorded, so a test can assert that none was attempted.
"""

from __future__ import annotations

import os
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    WebSocketRoute,
    sync_playwright,
)

from tests.stack import ROOT, Stack, unavailable

CHROMIUM = os.environ.get("CHROMIUM", "").strip() or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTEFACTS = ROOT / "reports" / "e2e"
WIDE = {"width": 1280, "height": 900}
SCREEN = {"width": 1440, "height": 900}  # the first screen the dashboard is laid out for
NARROW = {"width": 390, "height": 844}
DEADLINE = 20.0  # seconds a wait_until waits by default


def wait_until(
    what: str, check: Callable[[], bool], deadline: float = DEADLINE, every: float = 0.1
) -> None:
    """Poll `check` every `every` seconds until it holds; fail naming `what` after
    `deadline` seconds."""
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(every)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_browser_test(item):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def front(stack: Stack) -> str:
    """The front's base URL, once it answers /healthz."""
    try:
        with urllib.request.urlopen(f"{stack.web_url}/healthz", timeout=3) as response:
            if response.status == 200:
                return stack.web_url
    except OSError:
        pass
    unavailable(f"the web front at {stack.web_url}")
    raise AssertionError("unreachable")  # unavailable() fails or skips


class _Chromium:
    """One Chromium for the whole browser run, started on first use.

    Playwright's sync API keeps an asyncio loop marked as running in this thread while it
    is open, which breaks every asyncio test after it in the same process; so it is
    closed as soon as the next test is not a browser test (``pytest_runtest_teardown``).
    """

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def get(self) -> Browser:
        if self._browser is None:
            if not Path(CHROMIUM).is_file():
                unavailable(f"Chromium ({CHROMIUM}; apt-get install chromium, or set CHROMIUM)")
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
        return self._browser

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None


_CHROMIUM = _Chromium()


def _is_browser_test(item: pytest.Item | None) -> bool:
    return item is not None and Path(__file__).parent in Path(item.path).parents


@pytest.hookimpl(trylast=True)  # after the test's own fixtures (its page) are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if not _is_browser_test(nextitem):
        _CHROMIUM.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[_Chromium]:
    yield _CHROMIUM
    _CHROMIUM.close()


@pytest.fixture
def browser(chromium: _Chromium) -> Browser:
    """The shared headless Chromium (Debian's, never a downloaded build)."""
    return chromium.get()


@pytest.fixture(scope="session")
def artefacts() -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS


@dataclass
class Watched:
    """A page of the dashboard and everything it did that a test may want to refuse."""

    page: Page
    front: str
    console_errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    served: list[str] = field(default_factory=list)

    def assert_clean(self, expected: str | None = None) -> None:
        """No foreign request, no console error but the `expected` one (a regex)."""
        assert self.foreign == [], f"requests to hosts other than the front: {self.foreign}"
        errors = [e for e in self.console_errors if not (expected and re.search(expected, e))]
        assert errors == [], f"console errors: {errors}"


def _same_origin(url: str, front: str) -> bool:
    got, want = urlsplit(url), urlsplit(front)
    return got.scheme in {"http", "ws"} and got.netloc == want.netloc


def open_dashboard(
    browser: Browser,
    front: str,
    viewport: dict[str, int],
    before_load: Callable[[BrowserContext], None] | None = None,
) -> Watched:
    """The dashboard in a new context, every request watched; `before_load` may add its
    own routes (the newest route wins) before the page is opened."""
    context = browser.new_context(viewport=viewport, service_workers="block")
    context.set_default_timeout(15_000)
    page = context.new_page()
    watched = Watched(page=page, front=front)

    def guard(route: Route) -> None:
        url = route.request.url
        if _same_origin(url, front):
            watched.served.append(url)
            route.continue_()
        else:
            watched.foreign.append(url)
            route.abort("blockedbyclient")

    def guard_socket(ws: WebSocketRoute) -> None:
        if _same_origin(ws.url, front):
            watched.served.append(ws.url)
            ws.connect_to_server()
        else:
            watched.foreign.append(ws.url)
            ws.close()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(f"{message.text} @ {message.location}")

    context.route("**/*", guard)
    context.route_web_socket(re.compile(".*"), guard_socket)
    page.on("console", console)
    page.on("pageerror", lambda error: watched.console_errors.append(f"page error: {error}"))
    if before_load is not None:
        before_load(context)
    page.goto(front + "/", wait_until="load")
    return watched


def dashboard_at(browser: Browser, front: str, viewport: dict[str, int]) -> Iterator[Watched]:
    """A fixture's body: the dashboard opened at ``viewport``, its context closed after."""
    watched = open_dashboard(browser, front, viewport)
    yield watched
    watched.page.context.close()


@pytest.fixture
def dashboard(browser: Browser, front: str) -> Iterator[Watched]:
    """The dashboard at 1280 px, loaded, with its requests and console watched."""
    yield from dashboard_at(browser, front, WIDE)


@pytest.fixture
def narrow_dashboard(browser: Browser, front: str) -> Iterator[Watched]:
    """The dashboard at 390 px (a phone)."""
    yield from dashboard_at(browser, front, NARROW)
