"""Is the resolver serving? ``GET http://127.0.0.1:$RESOLVER_PORT/healthz`` must answer 200
``{"status": "ok"}`` within ``healthcheck.TIMEOUT`` (longer than any block a fault can put
on its loop).

Run: ``python -m services.resolver.healthcheck`` — exit 0 if healthy, else 1 and one JSON
line saying why (compose uses it as the container's healthcheck; the contract is in
services/common/healthcheck.py).
"""

from __future__ import annotations

import sys

from services.common import healthcheck

TIMEOUT = healthcheck.TIMEOUT  # longer than any block a fault can put on the hub


def check(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> str | None:
    """None when /healthz answers ok, else what went wrong."""
    return healthcheck.check_healthz(host, port, timeout)


if __name__ == "__main__":
    sys.exit(healthcheck.main("resolver", check))
