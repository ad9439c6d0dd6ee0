"""One name's addresses: the zone's A and AAAA side by side, a cache, and the rule for names
outside ``polyloop.test``.

* names under ``polyloop.test`` are asked of the stack's ``dns`` service, one question per
  record type (A and AAAA at once, as ``getaddrinfo`` would ask them), through the backend
  chosen with ``RESOLVER_BACKEND`` (``backends.py``);
* other names get ``"refused"`` and are never looked up, unless ``RESOLVER_EXTERNAL=1``:
  then they go to the system resolver, the book's real-world ``gethostbyname``. Off by
  default, because the front passes any name through: the stack would be a lookup proxy
  for whoever reaches it;
* answers are kept for their TTL (at most ``RESOLVER_CACHE_SIZE`` of them, least recently
  used out first), as any stub resolver in front of a busy service would. An answer of TTL
  0 (every ``delay-N`` answer) is never stored: it may not be cached, and storing it would
  push real entries out.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import OrderedDict

import gevent

from services.resolver.backends import BACKENDS, RETRY_AFTER, Answer, Heard, ResolveError

ZONE = "polyloop.test"
RDTYPES = ("A", "AAAA")


_DOT_ZONE = "." + ZONE


def in_zone(name: str) -> bool:
    return _in_zone(name.rstrip(".").lower())


def _in_zone(key: str) -> bool:
    # key: the name without its final dot, in lower case
    return key == ZONE or key.endswith(_DOT_ZONE)


class AnswerCache:
    """At most ``size`` answers, by (name, record type), each until its TTL runs out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str], tuple[float, Answer]] = OrderedDict()

    def get(self, key: tuple[str, str]) -> Answer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: tuple[str, str], answer: Answer) -> None:
        """Keep ``answer`` for its TTL; one of TTL 0 is not kept (nor anything, when size is 0)."""
        if answer.ttl <= 0 or self.size == 0:
            return
        self._entries[key] = (time.monotonic() + answer.ttl, answer)
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class Lookups:
    """Looks names up for every request of the process (one instance, shared)."""

    def __init__(
        self,
        dns_ip: str,
        dns_port: int,
        *,
        backend: str = "dnspython",
        cache_size: int = 0,
        external: bool = False,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self.dns_port = dns_port
        self.backend = BACKENDS[backend]
        self.cache = AnswerCache(cache_size)
        self.external = external
        self.heard = Heard(retry_after)  # what the dns service answered: when to ask again
        self.use_server(dns_ip)

    def use_server(self, dns_ip: str) -> None:
        """Ask the zone's questions of ``dns_ip`` from now on (the dns service moved)."""
        address = ipaddress.ip_address(dns_ip)
        self.dns_ip = str(address)
        self._server = (self.dns_ip, self.dns_port)
        self._family = socket.AF_INET6 if address.version == 6 else socket.AF_INET

    @property
    def server(self) -> tuple[tuple[str, int], int]:
        """Where the zone's questions go: (address, port) and its socket family."""
        return self._server, self._family

    def known(self, name: str) -> list[str] | None:
        """The addresses of ``name`` when no question is needed (both answers cached), else
        None; ``ResolveError("refused")`` for a name outside the zone that may not leave."""
        key = name.rstrip(".").lower()
        if not _in_zone(key):
            if self.external:
                return None
            raise ResolveError("refused")
        a, aaaa = self.cache.get((key, "A")), self.cache.get((key, "AAAA"))
        if a is None or aaaa is None:
            return None
        return _addresses(a, aaaa)

    def ask(self, name: str, deadline: float) -> list[str]:
        """The addresses of ``name`` (IPv4 first), or ResolveError; ends by ``deadline``."""
        key = name.rstrip(".").lower()
        if not _in_zone(key):
            return self.backend.system(name, deadline)
        # A in a greenlet of its own, AAAA in this one: both questions in flight at once
        a = gevent.spawn(self._answer, key, "A", deadline)
        try:
            aaaa = self._answer(key, "AAAA", deadline)
            a.join()
        finally:
            a.kill()  # a no-op when done; else this greenlet was killed at the timeout
        if isinstance(a.value, ResolveError):
            raise a.value
        if isinstance(aaaa, ResolveError):
            raise aaaa
        return _addresses(a.value, aaaa)

    def _answer(self, key: str, rdtype: str, deadline: float) -> Answer | ResolveError:
        # returned, not raised: a greenlet dying of an exception is printed by the hub
        answer = self.cache.get((key, rdtype))
        if answer is not None:
            return answer
        try:
            answer = self.backend.ask(self._server, self._family, key, rdtype, deadline, self.heard)
        except ResolveError as exc:
            return exc
        self.cache.put((key, rdtype), answer)
        return answer


def _addresses(a: Answer, aaaa: Answer) -> list[str]:
    if a.not_found or aaaa.not_found:
        raise ResolveError("not_found")
    addresses = a.addresses + aaaa.addresses
    if not addresses:
        raise ResolveError("no_address")
    return addresses
