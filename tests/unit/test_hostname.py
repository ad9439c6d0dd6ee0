"""The stack's one host-name rule (services.common.hostname), as the front applies it (the
resolver's request.py uses the same function; its tests run in tests/gevent)."""

from __future__ import annotations

import pytest

from services.common.hostname import is_host_name
from services.web.config import WebConfig
from services.web.errors import InvalidField
from services.web.validation import resolve_request

VALID = [
    "www.polyloop.test",
    "www.polyloop.test.",
    "a",
    "host-250.polyloop.test",
    "X.delay-100.polyloop.test",
    "a" * 63 + ".test",
    ".".join(["a" * 63] * 3) + "." + "b" * 61,  # 253 characters
    ".".join(["a" * 63] * 3) + "." + "b" * 61 + ".",  # and a trailing dot
]
INVALID = [
    "",
    ".",
    "a..b",
    ".a",
    "-a.test",
    "a-.test",
    "a" * 64 + ".test",
    ".".join(["a" * 63] * 3) + "." + "b" * 62,  # 254 characters
    "a_b.test",
    "a b",
    "www.polyloop.test\n",
    "émoji.test",
    "a.test..",
]


@pytest.mark.parametrize("name", VALID)
def test_valid_names_pass_everywhere(name: str) -> None:
    assert is_host_name(name)
    assert resolve_request({"names": [name]}, WebConfig())["names"] == [name]


@pytest.mark.parametrize("name", INVALID)
def test_invalid_names_fail_everywhere(name: str) -> None:
    assert not is_host_name(name)
    with pytest.raises(InvalidField):
        resolve_request({"names": [name]}, WebConfig())


def test_non_strings_are_not_host_names() -> None:
    assert not is_host_name(None)
    assert not is_host_name(42)
