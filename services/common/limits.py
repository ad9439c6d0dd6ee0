"""The limits a backend enforces that the front checks first: declared once, read by both.

The resolver and udp-echo refuse what exceeds them; the front reads the same variables
(compose passes them to ``web`` too) and refuses that input with a 422 itself, instead of
passing it on and answering a 502 or a 504. Services never import each other: both
configs ``declare()`` these.
"""

from __future__ import annotations

from services.common.settings import Setting

# the largest payload an IPv4 UDP datagram can carry
MAX_UDP_PAYLOAD = 65507

# a resolve request that names no timeout gets this (the contract's 5 s), capped by
# RESOLVER_MAX_TIMEOUT
DEFAULT_RESOLVE_TIMEOUT = 5.0

RESOLVER_MAX_NAMES = Setting(
    "RESOLVER_MAX_NAMES",
    256,
    "names per request; more is a 422",
    kind=int,
    minimum=1,
    maximum=10_000,
)
RESOLVER_MAX_TIMEOUT = Setting(
    "RESOLVER_MAX_TIMEOUT",
    30.0,
    "largest `timeout` a request may ask, in seconds; more is a 422",
    kind=float,
    minimum=0.1,
    maximum=600.0,
)
RESOLVER_MAX_CONNECTIONS = Setting(
    "RESOLVER_MAX_CONNECTIONS",
    100,
    "HTTP connections served at once; when full, a new one closes an idle keep-alive one,"
    " else the slowest still arriving; when all are busy, `/healthz` 200 and others 503"
    " (16 spare connections for that). The front holds at most half of them",
    kind=int,
    minimum=1,
    maximum=10_000,
)
UDP_ECHO_MAX_DATAGRAM = Setting(
    "UDP_ECHO_MAX_DATAGRAM",
    4096,
    "bytes; larger datagrams are dropped and counted, never echoed (the front refuses a"
    " longer UDP message)",
    kind=int,
    minimum=1,
    maximum=MAX_UDP_PAYLOAD,
)
