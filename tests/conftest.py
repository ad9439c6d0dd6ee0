"""Fixtures shared by every test layer."""

from __future__ import annotations

import pytest

from tests.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    return Stack()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Disruptive tests (they stop and crash containers) run after everything else."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)
