"""The web front's configuration, read once from the environment at start.

Every backend is reached at ``<SERVICE>_HOST:<SERVICE>_PORT`` (loopback and the stack's ports
unless told; compose sets the service names), its control port at
``<SERVICE>_HOST:<SERVICE>_METRICS_PORT``; the ``WEB_*`` limits bound what one request may ask
of them. The limits a backend enforces on its own input are the backend's own settings
(``services.common.limits``), so the front refuses with a 422 what the backend would refuse.
Try a bad value to see the start fail cleanly: ``WEB_MAX_BODY=lots python -m services.web``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property

from services.common import settings
from services.common.catalogue import service
from services.common.config import ServiceConfig
from services.common.limits import (
    DEFAULT_RESOLVE_TIMEOUT,
    RESOLVER_MAX_CONNECTIONS,
    RESOLVER_MAX_NAMES,
    RESOLVER_MAX_TIMEOUT,
    UDP_ECHO_MAX_DATAGRAM,
)
from services.common.settings import declare, setting

WEB, TCP_ECHO, UDP_ECHO = service("web"), service("tcp-echo"), service("udp-echo")
RESOLVER, DNS = service("resolver"), service("dns")
# the names a front on this machine is always served as (Host, Origin): see origin.py
LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class WebConfig(ServiceConfig, service=WEB):
    """Everything the front reads from the environment (docs/configuration.md)."""

    tcp_echo_host: str = declare(settings.host(TCP_ECHO))
    tcp_echo_port: int = declare(settings.port(TCP_ECHO))
    udp_echo_host: str = declare(settings.host(UDP_ECHO))
    udp_echo_port: int = declare(settings.port(UDP_ECHO))
    resolver_host: str = declare(settings.host(RESOLVER))
    resolver_port: int = declare(settings.port(RESOLVER))
    dns_host: str = declare(settings.host(DNS))
    dns_port: int = declare(settings.port(DNS))
    # the backends' own limits: the front refuses what they would refuse
    resolver_max_names: int = declare(RESOLVER_MAX_NAMES)
    resolver_max_timeout: float = declare(RESOLVER_MAX_TIMEOUT)
    resolver_max_connections: int = declare(RESOLVER_MAX_CONNECTIONS)
    udp_max_datagram: int = declare(UDP_ECHO_MAX_DATAGRAM)
    backend_concurrency: int = setting(
        "WEB_BACKEND_CONCURRENCY", 100, "calls in flight per backend", minimum=1, maximum=10_000
    )
    backend_timeout: float = setting(
        "WEB_BACKEND_TIMEOUT",
        5.0,
        "seconds for any backend call; past it a 504",
        minimum=0.1,
        maximum=60.0,
    )
    health_timeout: float = setting(
        "WEB_HEALTH_TIMEOUT",
        1.0,
        "seconds per readiness probe (`/readyz`, the dashboard's map)",
        minimum=0.1,
        maximum=30.0,
    )
    max_body: int = setting(
        "WEB_MAX_BODY",
        65536,
        "request body bytes; more is a 413 — at once, before any of the body is read, when"
        " the `Content-Length` says so",
        minimum=1024,
        maximum=16 * 2**20,
    )
    max_message: int = setting(
        "WEB_MAX_MESSAGE",
        8192,
        "bytes of an echo `message` (at most `UDP_ECHO_MAX_DATAGRAM` for UDP and fan-out);"
        " more is a 422",
        minimum=1,
        maximum=2**20,
    )
    tcp_pool_size: int = setting(
        "WEB_TCP_POOL_SIZE", 32, "pooled connections to tcp-echo", minimum=1, maximum=1000
    )
    udp_pool_size: int = setting(
        "WEB_UDP_POOL_SIZE", 32, "pooled datagram endpoints to udp-echo", minimum=1, maximum=1000
    )
    udp_retries: int = setting(
        "WEB_UDP_RETRIES", 2, "resends of a lost datagram", minimum=0, maximum=10
    )
    udp_try_timeout: float = setting(
        "WEB_UDP_TRY_TIMEOUT",
        0.5,
        "seconds to wait for each UDP try",
        minimum=0.05,
        maximum=30.0,
    )
    shutdown_timeout: float = setting(
        "WEB_SHUTDOWN_TIMEOUT",
        3.0,
        "at SIGTERM, time for requests in flight to finish",
        minimum=0.0,
        maximum=60.0,
    )
    replica_refresh: float = setting(
        "WEB_REPLICA_REFRESH",
        2.0,
        "seconds between two lookups of each backend's name (every replica) and probes of its"
        " replicas",
        minimum=0.1,
        maximum=60.0,
    )
    max_replicas: int = setting(
        "WEB_MAX_REPLICAS",
        64,
        "replicas the front keeps per backend (the lowest addresses); more are ignored",
        minimum=1,
        maximum=1024,
    )
    connect_timeout: float = setting(
        "WEB_CONNECT_TIMEOUT",
        1.0,
        "seconds for a new connection to a tcp-echo replica; past it the call goes to another"
        " replica",
        minimum=0.05,
        maximum=30.0,
    )
    max_connections: int = setting(
        "WEB_MAX_CONNECTIONS",
        1024,
        "client connections served at once; at the limit the oldest idle one (between"
        " requests, or still sending its headers) is closed to make room, and only when all"
        " are busy does a new one get a 503 problem, at once. Lowered at start (logged) if the"
        " file-descriptor limit could not hold it plus the backend pools and the accept"
        " backlog, so `accept()` never fails with EMFILE",
        minimum=1,
        maximum=1_000_000,
    )
    body_timeout: float = setting(
        "WEB_BODY_TIMEOUT",
        10.0,
        "seconds for a request body to arrive whole once its headers are in; past it a 408"
        " and the connection is closed (a body at 1 byte per 10 s no longer holds a"
        " connection forever)",
        minimum=0.1,
        maximum=600.0,
    )
    log_interval: float = setting(
        "WEB_LOG_INTERVAL",
        10.0,
        "seconds between two log lines of the same kind of flood event (a refused"
        " connection, a malformed request, an event-loop error such as a failing `accept()`);"
        " each line counts the ones held back (`suppressed`)",
        minimum=0.1,
        maximum=3600.0,
    )
    loop: str = setting(
        "WEB_LOOP",
        "asyncio",
        "the stdlib loop, or uvloop: the same app on libuv (`make bench` compares each route's"
        " CPU on both)",
        choices=("asyncio", "uvloop"),
    )
    # every service's control port, read every second (services/web/scrape.py); its own is
    # metrics_port
    web_host: str = declare(settings.host(WEB))
    tcp_echo_metrics_port: int = declare(settings.metrics_port(TCP_ECHO))
    udp_echo_metrics_port: int = declare(settings.metrics_port(UDP_ECHO))
    resolver_metrics_port: int = declare(settings.metrics_port(RESOLVER))
    dns_metrics_port: int = declare(settings.metrics_port(DNS))
    scrape_timeout: float = setting(
        "WEB_SCRAPE_TIMEOUT",
        0.5,
        "seconds the front waits for a service's `/metrics` (read once a second); past it, or"
        " on an answer over 1 MiB, that service shows as down",
        minimum=0.05,
        maximum=0.9,
    )
    # the /ws/live feed (services/web/live.py)
    live_max_clients: int = setting(
        "WEB_LIVE_MAX_CLIENTS",
        100,
        "dashboards subscribed to `/ws/live` at once; the next one is closed with code 1013"
        " (try again later)",
        minimum=1,
        maximum=10_000,
    )
    live_max_message: int = setting(
        "WEB_LIVE_MAX_MESSAGE",
        1024,
        "bytes a `/ws/live` client may send in one message (the feed is one-way); more closes"
        " it with 1009",
        minimum=64,
        maximum=2**20,
    )
    live_max_per_source: int = setting(
        "WEB_LIVE_MAX_PER_SOURCE",
        10,
        "`/ws/live` subscribers from one client address at once; the next one from there is"
        " closed with code 1013, the others still get in",
        minimum=1,
        maximum=10_000,
    )
    live_send_timeout: float = setting(
        "WEB_LIVE_SEND_TIMEOUT",
        2.0,
        "seconds one feed message may wait on a client's socket; a client that does not read"
        " is dropped (its connection aborted), the others never wait for it",
        minimum=0.1,
        maximum=30.0,
    )
    # the steady client (services/web/steady.py)
    steady: bool = setting(
        "WEB_STEADY",
        True,
        "the steady client: a few calls a second to every service over its own protocol, its"
        " round trips in `/api/live` (`steady`); 0: off",
    )
    steady_rate: float = setting(
        "WEB_STEADY_RATE", 2.0, "steady calls a second to each service", minimum=0.2, maximum=20.0
    )
    steady_timeout: float = setting(
        "WEB_STEADY_TIMEOUT",
        2.0,
        "seconds one steady call may take; past it, an error counted at exactly this time",
        minimum=0.1,
        maximum=10.0,
    )
    # one-click experiments (services/web/experiments.py, docs/experiments.md)
    experiment_seconds: float = setting(
        "WEB_EXPERIMENT_SECONDS",
        20.0,
        "seconds an experiment's fault lasts, unless its request says (`duration_s`)",
        minimum=2.0,
        maximum=300.0,
    )
    experiment_baseline: float = setting(
        "WEB_EXPERIMENT_BASELINE",
        3.0,
        "seconds an experiment measures the stack before its fault",
        minimum=1.0,
        maximum=30.0,
    )
    # who may change the stack: anyone who reaches the front, so the fault API is on by
    # default only where that is loopback alone (services/web/faults.py)
    published_host: str = setting(
        "WEB_PUBLISHED_HOST",
        "",
        "where the front's port is published when it listens on every interface inside a"
        " container (compose sets it from `POLYLOOP_BIND`); unset: the front is reached where"
        " it listens (`LISTEN_HOST`)",
    )
    faults: bool | None = setting(
        "WEB_FAULTS",
        None,
        "the front's fault API (`PUT`/`DELETE /api/faults/...`, the experiments); 0: 403",
        kind=bool,
        doc_default="`1` when the front is reached from loopback only (`WEB_PUBLISHED_HOST`,"
        " else `LISTEN_HOST`), else `0`",
    )
    allowed_hosts: str = setting(
        "WEB_ALLOWED_HOSTS",
        "",
        "more names the front is served as, comma-separated (its own: 127.0.0.1, localhost,"
        " [::1], `WEB_HOST`, a specific `LISTEN_HOST`): a change (POST, PUT, DELETE) or a"
        " `/ws/live` subscription naming another in `Host` is refused (DNS rebinding)",
    )

    def address(self, name: str) -> tuple[str, int]:
        """Where the front reaches service ``name`` (a catalogue name): ``<SERVICE>_HOST``,
        ``<SERVICE>_PORT``."""
        package = name.replace("-", "_")
        return getattr(self, f"{package}_host"), getattr(self, f"{package}_port")

    def control_address(self, name: str) -> tuple[str, int]:
        """Where service ``name``'s control port is reached: ``<SERVICE>_HOST``,
        ``<SERVICE>_METRICS_PORT`` (the front's own: ``WEB_HOST``, ``WEB_METRICS_PORT``)."""
        if name == "web":
            return self.web_host, self.metrics_port
        package = name.replace("-", "_")
        return getattr(self, f"{package}_host"), getattr(self, f"{package}_metrics_port")

    @property
    def admin_token(self) -> str | None:
        """The stack's token (``POLYLOOP_ADMIN_TOKEN``), sent on every control port call."""
        return self.metrics.admin_token

    @property
    def reached_at(self) -> str:
        """Where clients reach the front: where compose publishes it, else where it listens."""
        return self.published_host or self.listen_host

    @property
    def faults_enabled(self) -> bool:
        """``WEB_FAULTS``; unset, on only when the front is reached from loopback alone (a
        wildcard such as 0.0.0.0 is every interface: off)."""
        return is_loopback(self.reached_at) if self.faults is None else self.faults

    @cached_property
    def served_names(self) -> frozenset[str]:
        """The host names (lower case, IPv6 without brackets) the front answers a change
        for: the local ones, ``WEB_HOST``, a specific ``LISTEN_HOST``/``WEB_PUBLISHED_HOST``
        and ``WEB_ALLOWED_HOSTS``. Made once (every POST asks)."""
        names = {*LOCAL_NAMES, self.web_host}
        names |= {h for h in (self.listen_host, self.published_host) if h and not _wildcard(h)}
        names |= {n.strip() for n in self.allowed_hosts.split(",") if n.strip()}
        return frozenset(n.lower().strip("[]") for n in names)

    @property
    def udp_max_message(self) -> int:
        """Bytes of a UDP echo message: one datagram udp-echo does not drop."""
        return min(self.max_message, self.udp_max_datagram)

    @property
    def resolve_default_timeout(self) -> float:
        return min(DEFAULT_RESOLVE_TIMEOUT, self.resolver_max_timeout)

    @property
    def resolver_pool_size(self) -> int:
        """Connections the front may hold to the resolver: half of its slots, so that its
        healthcheck and its direct clients always get one, however busy the front is."""
        return max(1, self.resolver_max_connections // 2)


def is_loopback(host: str) -> bool:
    """``localhost`` or an address of the loopback network (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")
