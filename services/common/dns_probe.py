"""The stack's DNS question and its verdict, written once: is the ``dns`` service answering?

``probe.polyloop.test A`` must come back NOERROR with ``192.0.2.10`` (the zone file's own
record). The name is the stack's probe mark (``services.common.probes``): the dns service
counts these queries apart, never as served. The dns container's healthcheck asks it with
``ask`` (blocking dnspython), the front's readiness check, its replica watcher and its steady
client with ``ask_async`` (on an asyncio loop); both return ``verdict``'s answer: None when
healthy, else what is wrong (an answer dnspython cannot read included). A server that does
not answer raises instead, ``OSError`` (a silent one ``TimeoutError``), so a caller can tell
silence from a wrong answer.

Try it (dns running on 1053)::

    python -c "from services.common.dns_probe import ask; print(ask('127.0.0.1', 1053, 2))"
"""

from __future__ import annotations

import dns.asyncquery
import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from services.common import probes

NAME = probes.NAME
ADDRESS = probes.ADDRESS


def question() -> dns.message.Message:
    return dns.message.make_query(NAME, dns.rdatatype.A)


def verdict(answer: dns.message.Message) -> str | None:
    """None when `answer` is NOERROR with ``ADDRESS``, else what is wrong with it."""
    if answer.rcode() != dns.rcode.NOERROR:
        return f"answered {dns.rcode.to_text(answer.rcode())}"
    addresses = {item.to_text() for rrset in answer.answer for item in rrset}
    if ADDRESS not in addresses:
        return f"answered {sorted(addresses)}, not {ADDRESS}"
    return None


def ask(host: str, port: int, timeout: float) -> str | None:
    """``verdict`` of the answer from ``host:port`` over UDP, blocking up to `timeout`."""
    try:
        answer = dns.query.udp(question(), host, port=port, timeout=timeout)
    except dns.exception.DNSException as exc:
        return _unanswered(exc, timeout)
    return verdict(answer)


async def ask_async(host: str, port: int, timeout: float) -> str | None:
    """``ask`` on the running asyncio loop."""
    try:
        answer = await dns.asyncquery.udp(question(), host, port=port, timeout=timeout)
    except dns.exception.DNSException as exc:
        return _unanswered(exc, timeout)
    return verdict(answer)


def _unanswered(exc: dns.exception.DNSException, timeout: float) -> str:
    """Silence raises ``TimeoutError``; anything else dnspython refuses is a wrong answer."""
    if isinstance(exc, dns.exception.Timeout):
        raise TimeoutError(f"no DNS answer within {timeout:g} s") from None
    return f"answered something unreadable ({type(exc).__name__})"
