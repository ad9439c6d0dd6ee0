"""What the users send: only names the stack's own zone serves, and echo messages.

The ``dns`` service is authoritative for ``polyloop.test``: ``www`` -> 192.0.2.10,
``host-N`` -> 192.0.2.N and AAAA 2001:db8::N (N = 1..250, N written as is), unknown names
NXDOMAIN, and ``X.delay-N`` answers after N ms. Nothing here ever names a host
outside that zone, so a load run resolves nothing on the internet.
"""

from __future__ import annotations

import random
import secrets

ZONE = "polyloop.test"
WWW = f"www.{ZONE}"
WWW_ADDRESS = "192.0.2.10"
HOSTS = 250


def host_name() -> tuple[str, str]:
    """A random ``host-N`` name of the zone and the address it must resolve to."""
    n = random.randint(1, HOSTS)
    return f"host-{n}.{ZONE}", f"192.0.2.{n}"


def host_name_v6() -> tuple[str, str]:
    """A random ``host-N`` name and its AAAA address (RFC 3849 documentation prefix)."""
    n = random.randint(1, HOSTS)
    return f"host-{n}.{ZONE}", f"2001:db8::{n}"


def host_names(count: int) -> list[tuple[str, str]]:
    return [host_name() for _ in range(count)]


def missing_name() -> str:
    """A name inside the zone that does not exist: the server answers NXDOMAIN."""
    return f"nope-{secrets.token_hex(4)}.{ZONE}"


def delayed_name(milliseconds: int) -> str:
    """A name the zone answers only after ``milliseconds`` (keep it small in a load mix)."""
    return f"x{secrets.token_hex(2)}.delay-{milliseconds}.{ZONE}"


def message(size: int) -> str:
    """A printable message of ``size`` characters, unique enough to tell echoes apart."""
    token = secrets.token_hex(8)
    return (token * (size // len(token) + 1))[:size]
