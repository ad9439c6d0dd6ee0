"""Fixtures and collection rules shared by every test layer."""

from __future__ import annotations

import pytest

from tests.stack import Stack, stack_mode

LOCAL_PATH = (
    "the stack runs as local processes (make up without a Docker engine): these tests need it"
    " in containers"
)
DESELECTED = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def stack() -> Stack:
    return Stack()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the local path the tests marked `compose` are deselected (neither run nor skipped:
    that path passes without them), and the summary says why. Disruptive tests (they stop
    and crash containers) run after everything else."""
    if stack_mode() == "local":
        dropped = [item for item in items if item.get_closest_marker("compose")]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if not item.get_closest_marker("compose")]
            config.stash[DESELECTED] = len(dropped)
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if count := config.stash.get(DESELECTED, 0):
        terminalreporter.write_line(f"{count} deselected, marked compose: {LOCAL_PATH}")
