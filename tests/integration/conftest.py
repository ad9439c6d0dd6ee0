"""Integration tests need the running stack: `make up` (containers, or local processes)."""

from __future__ import annotations

import pytest

from tests.stack import IN_CI, Stack, compose, stack_mode, unavailable


@pytest.fixture(scope="session")
def in_containers(stack: Stack) -> str:
    """The compose project is up in containers; fail in CI / skip elsewhere if not."""
    mode = stack_mode()
    if mode == "local":
        message = "the stack runs as local processes: this test needs it in containers"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(f"{message} (make down, then make up with a Docker engine)")
    if mode != "docker":
        unavailable("the stack in containers (make up with a Docker engine)")
    compose("ps", "--quiet")
    return "docker"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
