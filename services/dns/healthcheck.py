"""Is the ``dns`` service answering? A real DNS query: ``www.polyloop.test A`` over UDP to
127.0.0.1:DNS_PORT (whatever LISTEN_HOST is) must answer ``192.0.2.10`` within two seconds.

Run: ``DNS_PORT=11053 python -m services.dns.healthcheck; echo $?`` — exit 0 if healthy,
else 1 and one JSON line saying why (compose uses it as the container's healthcheck; the
contract is in services/common/healthcheck.py).
"""

from __future__ import annotations

import sys

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from services.common import healthcheck

NAME = "www.polyloop.test"
EXPECTED = "192.0.2.10"
TIMEOUT = 2.0


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


if __name__ == "__main__":
    sys.exit(healthcheck.main("dns", "DNS_PORT", 1053, check))
