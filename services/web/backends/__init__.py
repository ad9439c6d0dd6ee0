"""One client per backend, created at startup and closed at cleanup (``app.cleanup_ctx``).

Every call goes through ``BackendCall.run``: a timeout, a bound on concurrent calls, and
one record in the live stats and the Prometheus metrics, whatever the outcome.

``Backend`` names the four: the stats, the readiness checks, the OpenAPI document, the
metric labels and the problems that name a backend all use these values.
"""

from __future__ import annotations

from enum import StrEnum


class Backend(StrEnum):
    """The services the front calls, by their compose names (their order is the map's)."""

    TCP_ECHO = "tcp-echo"
    UDP_ECHO = "udp-echo"
    RESOLVER = "resolver"
    DNS = "dns"
