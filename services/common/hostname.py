"""The one host-name rule of the stack: the resolver checks names with it, the front checks
them at its edge and publishes it in its OpenAPI document.

A host name is at most 253 characters (one trailing dot aside) of dot-separated labels,
each 1-63 letters, digits or hyphens, not starting or ending with a hyphen (RFC 1123).
"""

from __future__ import annotations

import re

MAX_LENGTH = 253
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# JSON Schema patterns are not anchored, so this one is (ECMA-262 `$` is the very end)
PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*\.?$"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


def is_host_name(name: object) -> bool:
    """True for a string that is a syntactically valid host name (see the module)."""
    if not isinstance(name, str):
        return False
    length = len(name) - 1 if name.endswith(".") else len(name)
    return 0 < length <= MAX_LENGTH and _HOST_NAME.fullmatch(name) is not None
