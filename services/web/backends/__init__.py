"""One client per backend, created at startup and closed at cleanup (``app.cleanup_ctx``).

Every call goes through ``BackendCall.run``: a timeout, a bound on concurrent calls, and
one record in the live stats and the Prometheus metrics, whatever the outcome.

``Backend`` names the four: the stats, the readiness checks, the OpenAPI document, the
metric labels and the problems that name a backend all use these values.
"""

from __future__ import annotations

from enum import StrEnum

from services.common.catalogue import BACKENDS

# the services the front calls, by their compose names, in the catalogue's (the map's) order:
# Backend.TCP_ECHO == "tcp-echo", Backend.UDP_ECHO, Backend.RESOLVER, Backend.DNS
Backend = StrEnum("Backend", [(service.prefix, service.name) for service in BACKENDS])
