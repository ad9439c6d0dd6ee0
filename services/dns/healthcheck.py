"""Healthcheck of the ``dns`` service: a real DNS query, exit 0 if healthy, 1 otherwise.

Asks ``www.polyloop.test A`` over UDP of 127.0.0.1:DNS_PORT (whatever LISTEN_HOST is)
and expects ``192.0.2.10`` within two seconds. Run it:

    DNS_PORT=11053 .venv/bin/python -m services.dns.healthcheck; echo $?
"""

from __future__ import annotations

import logging
import sys

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from services.common.config import ConfigError, env_port
from services.common.logging import setup_logging

NAME = "www.polyloop.test"
EXPECTED = "192.0.2.10"
TIMEOUT = 2.0

log = logging.getLogger("services.dns.healthcheck")


def check(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> str | None:
    """None when the server answers ``EXPECTED`` for ``NAME``, else what went wrong."""
    query = dns.message.make_query(NAME, dns.rdatatype.A)
    try:
        response = dns.query.udp(query, host, port=port, timeout=timeout)
    except (OSError, dns.exception.DNSException) as exc:
        return f"no answer from {host}:{port}: {exc!r}"
    if response.rcode() != dns.rcode.NOERROR:
        return f"rcode {dns.rcode.to_text(response.rcode())}"
    addresses = {item.to_text() for rrset in response.answer for item in rrset}
    if EXPECTED not in addresses:
        return f"expected {EXPECTED}, got {sorted(addresses)}"
    return None


def main() -> int:
    setup_logging("dns-healthcheck", "WARNING")
    try:
        problem = check(env_port("DNS_PORT", 1053))
    except ConfigError as exc:
        problem = str(exc)
    if problem:
        log.error("unhealthy: %s", problem)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
