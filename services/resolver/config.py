"""The resolver's configuration, read once from the environment at start.

``GEVENT_RESOLVER`` is gevent's own (set to ``dnspython`` by ``__main__`` when unset). Try a
bad value to see the start fail cleanly: ``RESOLVER_BACKEND=ares python -m services.resolver``.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common import settings
from services.common.catalogue import service
from services.common.config import ServiceConfig
from services.common.limits import (
    DEFAULT_RESOLVE_TIMEOUT,
    RESOLVER_MAX_CONNECTIONS,
    RESOLVER_MAX_NAMES,
    RESOLVER_MAX_TIMEOUT,
)
from services.common.settings import declare, setting

RESOLVER = service("resolver")
DNS = service("dns")
# above a quick answer's round trip on a busy machine, far below a request's budget
RETRY_AFTER = 0.25


@dataclass(frozen=True)
class ResolverConfig(ServiceConfig, service=RESOLVER):
    """Everything the resolver reads from the environment (docs/configuration.md)."""

    # the stack's dns service, asked for polyloop.test names; a host name (compose: dns)
    # is resolved once at start
    dns_host: str = declare(settings.host(DNS))
    dns_port: int = declare(settings.port(DNS))
    backend: str = setting(
        "RESOLVER_BACKEND",
        "dnspython",
        "dnspython (cooperative sockets, truly concurrent) or threadpool (the same lookups in"
        " gevent's default thread pool, for comparison)",
        choices=("dnspython", "threadpool"),
    )
    # by default the largest request runs whole at once, and alone fills the service's bound
    pool_size: int = setting(
        "RESOLVER_POOL_SIZE",
        RESOLVER_MAX_NAMES.default,
        "lookups of one request running at once (the gevent `Pool`)",
        minimum=1,
        maximum=RESOLVER_MAX_NAMES.maximum,
    )
    max_lookups: int = setting(
        "RESOLVER_MAX_LOOKUPS",
        RESOLVER_MAX_NAMES.default,
        "lookups in flight across all requests (each holds up to two sockets, A and AAAA);"
        ' beyond it names wait, and one still waiting at its deadline is `"overloaded"`',
        minimum=1,
        maximum=RESOLVER_MAX_NAMES.maximum,
    )
    external: bool = setting(
        "RESOLVER_EXTERNAL",
        False,
        "1: names outside polyloop.test go to the system resolver (the book's"
        ' `gethostbyname`); 0: they are `"refused"`, never looked up',
    )
    cache_size: int = setting(
        "RESOLVER_CACHE_SIZE",
        10_000,
        "answers from the zone kept for their TTL (0: none); TTL-0 answers (every `delay-N`"
        " one) are never stored",
        minimum=0,
        maximum=1_000_000,
    )
    retry_after: float = setting(
        "RESOLVER_RETRY_AFTER",
        RETRY_AFTER,
        "seconds a zone question may stay unanswered before it is sent again, once, and only"
        " when the dns service has meanwhile answered a newer one (a lost datagram, not a"
        " slow name)",
        minimum=0.01,
        maximum=30.0,
    )
    max_names: int = declare(RESOLVER_MAX_NAMES)
    max_timeout: float = declare(RESOLVER_MAX_TIMEOUT)
    max_body: int = setting(
        "RESOLVER_MAX_BODY", 64 * 1024, "request body bytes; more is a 413", minimum=1024
    )
    max_connections: int = declare(RESOLVER_MAX_CONNECTIONS)
    client_timeout: float = setting(
        "RESOLVER_CLIENT_TIMEOUT",
        30.0,
        "seconds a silent client keeps its connection (an idle keep-alive one too)",
        minimum=0.1,
        maximum=3600.0,
    )
    request_timeout: float = setting(
        "RESOLVER_REQUEST_TIMEOUT",
        10.0,
        "seconds for a whole request (line, headers, body) to arrive after its first byte,"
        " however it trickles; past it a 408",
        minimum=0.1,
        maximum=3600.0,
    )
    drain_seconds: float = setting(
        "RESOLVER_DRAIN_SECONDS",
        3.0,
        "at SIGTERM, time for requests in flight to finish",
        minimum=0.0,
        maximum=60.0,
    )

    @property
    def default_timeout(self) -> float:
        """The contract's 5 s, unless the operator capped timeouts below it."""
        return min(DEFAULT_RESOLVE_TIMEOUT, self.max_timeout)
