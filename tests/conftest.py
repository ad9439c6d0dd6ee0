"""Fixtures shared by every test layer."""

from __future__ import annotations

import pytest

from tests.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    return Stack()
