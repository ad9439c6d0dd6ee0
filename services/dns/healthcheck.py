"""Is the ``dns`` service answering? The stack's DNS question (``services.common.dns_probe``:
``probe.polyloop.test A``) over UDP to 127.0.0.1:DNS_PORT (whatever LISTEN_HOST is) must get
its right answer within ``healthcheck.TIMEOUT`` (longer than any block a fault can put on
the reactor).

Run: ``DNS_PORT=11053 python -m services.dns.healthcheck; echo $?`` — exit 0 if healthy,
else 1 and one JSON line saying why (compose uses it as the container's healthcheck; the
contract is in services/common/healthcheck.py).
"""

from __future__ import annotations

import sys

from services.common import dns_probe, healthcheck

TIMEOUT = healthcheck.TIMEOUT  # longer than any block a fault can put on the reactor


def check(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> str | None:
    """None when the server answers the stack's question right, else what went wrong."""
    try:
        return dns_probe.ask(host, port, timeout)
    except OSError as exc:
        return f"no answer from {host}:{port}: {exc!r}"


if __name__ == "__main__":
    sys.exit(healthcheck.main("dns", check))
