"""How one question reaches a name server: the two lookup backends (``RESOLVER_BACKEND``).

* ``dnspython`` (the default): the question is built and parsed by dnspython and sent
  over a gevent socket, so the greenlet that asks waits on the hub; 200 names are 400
  datagrams in flight at once.
* ``threadpool``: the very same question over a plain blocking socket in one of the hub's
  threads, which is what gevent does by default; its 10 threads serialise the lookups past
  ten (``make bench`` and the README compare the two).

A zone question is one datagram and one answer, waited for until the request's deadline
and no longer, so a name that answers in N ms resolves whenever N is below what is left of
the budget. A datagram can still be lost (a receive buffer overflowing in a burst): a
question silent for ``RESOLVER_RETRY_AFTER`` seconds is sent once more, but only when the
server has meanwhile answered a question sent after it (``Heard``): it is up and hearing us,
so this one was most likely lost. A slow ``delay-N`` name asked alone is never asked twice
(each ask is a pending timer on the dns service); in a batch of faster names it may be, once.
Names outside the zone, when ``RESOLVER_EXTERNAL=1`` allows them, go to the system resolver
(``getaddrinfo``) the same two ways.

The nameserver must be an IP address: a host name as nameserver can hang gevent's
resolvers (``resolve.server_address`` turns ``DNS_HOST`` into one at start).
"""

from __future__ import annotations

import _socket
import errno
import socket as stdlib_socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import gevent
import gevent.socket
from gevent import monkey

from services.resolver.config import RETRY_AFTER

# every ``error`` a result can carry: a closed set (it is also a metrics label)
ERRORS = (
    "timeout",  # no answer before the request's deadline
    "not_found",  # NXDOMAIN, or no such host
    "no_address",  # the name exists but has no A/AAAA
    "refused",  # outside the zone (not looked up), or the server refused
    "servfail",  # the server failed to answer
    "temporary_failure",  # the system resolver's EAI_AGAIN
    "overloaded",  # every lookup slot of the service was busy until the deadline
    "unreachable",  # the network said no (ICMP unreachable)
    "out_of_sockets",  # no socket to ask with (EMFILE, ENFILE, ENOBUFS)
    "socket_error",  # any other socket error
    "fault",  # failed on purpose by a fail-X % fault
    "error",  # anything else
)

_OUT_OF_SOCKETS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_UNREACHABLE = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH}

# the real socket class, for the thread pool backend: a gevent socket must not block a thread
# (and for the sync_dns block fault, which blocks the hub with it on purpose)
NativeSocket = monkey.get_original("socket", "socket")


class ResolveError(Exception):
    """A lookup that ended without addresses; ``code`` (one of ``ERRORS``) is the result's
    ``error``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Answer:
    """What a server said about one name and record type: the addresses (none for NODATA),
    ``not_found`` for NXDOMAIN, and how many seconds it may be kept (0: never)."""

    addresses: list[str]
    ttl: int
    not_found: bool = False


class Heard:
    """What the name server has answered lately, shared by every question of the process:
    the send time of the newest question it answered, and how many were sent again."""

    def __init__(self, retry_after: float = RETRY_AFTER) -> None:
        self.retry_after = retry_after
        self.newest_answered = float("-inf")  # monotonic send time
        self.resent = 0

    def answered(self, sent_at: float) -> None:
        if sent_at > self.newest_answered:
            self.newest_answered = sent_at


def ask(
    socket_class: Callable[..., Any],
    server: tuple[str, int],
    family: int,
    name: str,
    rdtype: str,
    deadline: float,
    heard: Heard | None = None,
) -> Answer:
    """One question to ``server``, its answer awaited until ``deadline``; raises ResolveError.

    With ``heard``, a question silent for ``heard.retry_after`` seconds is sent again, once,
    as soon as a question sent after it has been answered (checked at growing intervals).
    """
    query = dns.message.make_query(name, rdtype)
    wire = query.to_wire()
    try:
        with socket_class(family, stdlib_socket.SOCK_DGRAM) as sock:
            sent_at = time.monotonic()
            sock.sendto(wire, server)
            wait = heard.retry_after if heard is not None else 0.0
            check_at = sent_at + wait
            while True:
                left = remaining(deadline)
                if heard is not None and wait:
                    now = time.monotonic()
                    if now >= check_at:
                        if heard.newest_answered > sent_at:
                            sock.sendto(wire, server)
                            heard.resent += 1
                            wait = 0.0  # once: from now on only the deadline
                        else:
                            wait *= 2
                            check_at = now + wait
                    if wait:
                        left = min(left, check_at - now)
                sock.settimeout(left)
                try:
                    reply = sock.recv(65535)
                except TimeoutError:
                    continue  # the deadline (remaining() raises) or the next check
                try:
                    response = dns.message.from_wire(reply)
                except dns.exception.DNSException:
                    continue  # not an answer: wait for the real one
                if query.is_response(response):
                    break
    except OSError as exc:
        raise ResolveError(socket_error(exc)) from None
    if heard is not None:
        heard.answered(sent_at)
    return _answer(response, dns.rdatatype.from_text(rdtype))


def _answer(response: dns.message.Message, wanted: int) -> Answer:
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return Answer([], _negative_ttl(response), not_found=True)
    if rcode == dns.rcode.REFUSED:
        raise ResolveError("refused")
    if rcode != dns.rcode.NOERROR:
        raise ResolveError("servfail")
    addresses = [
        rdata.address for rrset in response.answer if rrset.rdtype == wanted for rdata in rrset
    ]
    if not addresses:
        return Answer([], _negative_ttl(response))
    return Answer(addresses, min(rrset.ttl for rrset in response.answer))


def _negative_ttl(response: dns.message.Message) -> int:
    # RFC 2308: a "no such name/data" answer is kept for the SOA's TTL, at most its minimum
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return min(rrset.ttl, rrset[0].minimum)
    return 0


def socket_error(exc: OSError) -> str:
    """The result ``error`` for a socket error: what it is, not a DNS failure."""
    if exc.errno in _OUT_OF_SOCKETS:
        return "out_of_sockets"
    if exc.errno in _UNREACHABLE:
        return "unreachable"
    return "socket_error"


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline``; ResolveError("timeout") when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ResolveError("timeout")
    return left


class Cooperative:
    """``RESOLVER_BACKEND=dnspython``: gevent sockets, and the hub's resolver for system names
    (``GEVENT_RESOLVER=dnspython``, set by ``__main__``; it reads /etc/resolv.conf and
    /etc/hosts, so compose's embedded DNS keeps working)."""

    name = "dnspython"

    def ask(
        self,
        server: tuple[str, int],
        family: int,
        name: str,
        rdtype: str,
        deadline: float,
        heard: Heard | None = None,
    ) -> Answer:
        return ask(gevent.socket.socket, server, family, name, rdtype, deadline, heard)

    def system(self, name: str, deadline: float) -> list[str]:
        with gevent.Timeout(remaining(deadline), ResolveError("timeout")):
            return _addresses(_getaddrinfo(gevent.socket.getaddrinfo, name))


class InThreads:
    """``RESOLVER_BACKEND=threadpool``: blocking sockets and the C ``getaddrinfo``, each call
    in the hub's thread pool while the asking greenlet waits cooperatively."""

    name = "threadpool"

    def ask(
        self,
        server: tuple[str, int],
        family: int,
        name: str,
        rdtype: str,
        deadline: float,
        heard: Heard | None = None,
    ) -> Answer:
        # a task queued behind the ten threads may start late: ask() checks the deadline first
        return _in_thread(ask, NativeSocket, server, family, name, rdtype, deadline, heard)

    def system(self, name: str, deadline: float) -> list[str]:
        with gevent.Timeout(remaining(deadline), ResolveError("timeout")):
            return _addresses(_in_thread(_getaddrinfo, _socket.getaddrinfo, name))


BACKENDS = {backend.name: backend for backend in (Cooperative(), InThreads())}


def _in_thread(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` in the hub's thread pool, this greenlet waiting cooperatively."""
    outcome = gevent.get_hub().threadpool.apply(_returning, (func, *args))
    if isinstance(outcome, ResolveError):
        raise outcome
    return outcome


def _returning(func: Callable[..., Any], *args: Any) -> Any:
    # returned, not raised: the thread pool prints every exception that leaves a task
    try:
        return func(*args)
    except ResolveError as exc:
        return exc


def _getaddrinfo(getaddrinfo: Callable[..., list], name: str) -> list:
    try:
        return getaddrinfo(name, None, 0, stdlib_socket.SOCK_STREAM)
    except stdlib_socket.gaierror as exc:
        if exc.errno == stdlib_socket.EAI_NONAME:
            raise ResolveError("not_found") from None
        if exc.errno == getattr(stdlib_socket, "EAI_NODATA", None):
            raise ResolveError("no_address") from None
        if exc.errno == stdlib_socket.EAI_AGAIN:
            raise ResolveError("temporary_failure") from None
        raise ResolveError("error") from None
    except OSError as exc:
        raise ResolveError(socket_error(exc)) from None


def _addresses(infos: list) -> list[str]:
    # IPv4 first, then IPv6, each once, in the resolver's order
    seen = dict.fromkeys(
        str(info[4][0]) for info in sorted(infos, key=lambda info: info[0] != stdlib_socket.AF_INET)
    )
    return list(seen)
