"""The web front's configuration, read once from the environment at start.

Every backend is reached at ``<SERVICE>_HOST:<SERVICE>_PORT`` (README defaults: loopback
and the stack's ports); the ``WEB_*`` limits bound what one request may ask of them.

The limits a backend enforces on its own input are read from that backend's own variables
(``RESOLVER_MAX_NAMES``, ``RESOLVER_MAX_TIMEOUT``, ``RESOLVER_MAX_CONNECTIONS``,
``UDP_ECHO_MAX_DATAGRAM``, with the same defaults and ranges; compose passes them to
``web`` too), so the front refuses with a 422 what the backend would refuse, instead of
passing it on and answering a 502 or a 504.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.config import env_float, env_int, env_log_level, env_port, env_str, listen_host
from services.common.control import ControlSettings as MetricsSettings
from services.common.settings import ADMIN_TOKEN

# a request that names no timeout gets this, capped by RESOLVER_MAX_TIMEOUT (as the resolver does)
DEFAULT_RESOLVE_TIMEOUT = 5.0
# the largest payload an IPv4 UDP datagram can carry (udp-echo's own maximum)
MAX_UDP_PAYLOAD = 65507


@dataclass(frozen=True)
class WebConfig:
    listen_host: str = "127.0.0.1"
    port: int = 8080
    tcp_echo_host: str = "127.0.0.1"
    tcp_echo_port: int = 8000
    udp_echo_host: str = "127.0.0.1"
    udp_echo_port: int = 9999
    resolver_host: str = "127.0.0.1"
    resolver_port: int = 8053
    dns_host: str = "127.0.0.1"
    dns_port: int = 1053
    backend_timeout: float = 5.0
    backend_concurrency: int = 100
    health_timeout: float = 1.0
    max_body: int = 65536
    max_message: int = 8192
    tcp_pool_size: int = 32
    udp_pool_size: int = 32
    udp_retries: int = 2
    udp_try_timeout: float = 0.5
    shutdown_timeout: float = 3.0
    replica_refresh: float = 2.0
    max_replicas: int = 64
    connect_timeout: float = 1.0
    max_connections: int = 1024
    body_timeout: float = 10.0
    log_interval: float = 10.0
    log_level: str = "INFO"
    # the backends' own limits, read from their variables
    resolver_max_names: int = 256
    resolver_max_timeout: float = 30.0
    resolver_max_connections: int = 100
    udp_max_datagram: int = 4096
    # every service's own metrics endpoint (issue 10's contract), scraped by services/web/scrape.py
    web_host: str = "127.0.0.1"
    tcp_echo_metrics_port: int = 9101
    udp_echo_metrics_port: int = 9102
    resolver_metrics_port: int = 9103
    dns_metrics_port: int = 9104
    metrics_port: int = 9105  # WEB_METRICS_PORT: the front's own, scraped like the others
    scrape_timeout: float = 0.5
    # the /ws/live feed (services/web/live.py)
    live_max_clients: int = 100
    live_max_message: int = 1024
    live_send_timeout: float = 2.0
    # issue 11: WEB_FAULTS (default on only when published on loopback, POLYLOOP_BIND)
    faults_enabled: bool = True
    # POLYLOOP_ADMIN_TOKEN: passed to the services' /faults; never in a repr or a log
    admin_token: str | None = field(default=None, repr=False)
    # POLYLOOP_METRICS, POLYLOOP_LAG_INTERVAL, POLYLOOP_METRICS_MAX_CONNECTIONS
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebConfig:
        """Build the config from the environment; a bad value raises ``ConfigError``."""
        return cls(
            listen_host=listen_host(env),
            port=env_port("WEB_PORT", 8080, env),
            metrics_port=env_int("WEB_METRICS_PORT", 9105, minimum=0, maximum=65535, env=env),
            metrics=MetricsSettings.from_env(env),
            faults_enabled=faults_enabled(env),
            admin_token=ADMIN_TOKEN.read(env),
            tcp_echo_host=env_str("TCP_ECHO_HOST", "127.0.0.1", env),
            tcp_echo_port=env_port("TCP_ECHO_PORT", 8000, env),
            udp_echo_host=env_str("UDP_ECHO_HOST", "127.0.0.1", env),
            udp_echo_port=env_port("UDP_ECHO_PORT", 9999, env),
            resolver_host=env_str("RESOLVER_HOST", "127.0.0.1", env),
            resolver_port=env_port("RESOLVER_PORT", 8053, env),
            dns_host=env_str("DNS_HOST", "127.0.0.1", env),
            dns_port=env_port("DNS_PORT", 1053, env),
            backend_timeout=env_float("WEB_BACKEND_TIMEOUT", 5.0, minimum=0.1, maximum=60, env=env),
            backend_concurrency=env_int(
                "WEB_BACKEND_CONCURRENCY", 100, minimum=1, maximum=10_000, env=env
            ),
            health_timeout=env_float("WEB_HEALTH_TIMEOUT", 1.0, minimum=0.1, maximum=30, env=env),
            max_body=env_int("WEB_MAX_BODY", 65536, minimum=1024, maximum=16 * 2**20, env=env),
            max_message=env_int("WEB_MAX_MESSAGE", 8192, minimum=1, maximum=2**20, env=env),
            tcp_pool_size=env_int("WEB_TCP_POOL_SIZE", 32, minimum=1, maximum=1000, env=env),
            udp_pool_size=env_int("WEB_UDP_POOL_SIZE", 32, minimum=1, maximum=1000, env=env),
            udp_retries=env_int("WEB_UDP_RETRIES", 2, minimum=0, maximum=10, env=env),
            udp_try_timeout=env_float(
                "WEB_UDP_TRY_TIMEOUT", 0.5, minimum=0.05, maximum=30, env=env
            ),
            shutdown_timeout=env_float("WEB_SHUTDOWN_TIMEOUT", 3.0, minimum=0, maximum=60, env=env),
            replica_refresh=env_float("WEB_REPLICA_REFRESH", 2.0, minimum=0.1, maximum=60, env=env),
            max_replicas=env_int("WEB_MAX_REPLICAS", 64, minimum=1, maximum=1024, env=env),
            connect_timeout=env_float(
                "WEB_CONNECT_TIMEOUT", 1.0, minimum=0.05, maximum=30, env=env
            ),
            max_connections=env_int(
                "WEB_MAX_CONNECTIONS", 1024, minimum=1, maximum=1_000_000, env=env
            ),
            body_timeout=env_float("WEB_BODY_TIMEOUT", 10.0, minimum=0.1, maximum=600, env=env),
            log_interval=env_float("WEB_LOG_INTERVAL", 10.0, minimum=0.1, maximum=3600, env=env),
            log_level=env_log_level(env),
            resolver_max_names=env_int(
                "RESOLVER_MAX_NAMES", 256, minimum=1, maximum=10_000, env=env
            ),
            resolver_max_timeout=env_float(
                "RESOLVER_MAX_TIMEOUT", 30.0, minimum=0.1, maximum=600, env=env
            ),
            resolver_max_connections=env_int(
                "RESOLVER_MAX_CONNECTIONS", 100, minimum=1, maximum=10_000, env=env
            ),
            udp_max_datagram=env_int(
                "UDP_ECHO_MAX_DATAGRAM", 4096, minimum=1, maximum=MAX_UDP_PAYLOAD, env=env
            ),
            web_host=env_str("WEB_HOST", "127.0.0.1", env),
            tcp_echo_metrics_port=env_port("TCP_ECHO_METRICS_PORT", 9101, env),
            udp_echo_metrics_port=env_port("UDP_ECHO_METRICS_PORT", 9102, env),
            resolver_metrics_port=env_port("RESOLVER_METRICS_PORT", 9103, env),
            dns_metrics_port=env_port("DNS_METRICS_PORT", 9104, env),
            scrape_timeout=env_float("WEB_SCRAPE_TIMEOUT", 0.5, minimum=0.05, maximum=0.9, env=env),
            live_max_clients=env_int(
                "WEB_LIVE_MAX_CLIENTS", 100, minimum=1, maximum=10_000, env=env
            ),
            live_max_message=env_int(
                "WEB_LIVE_MAX_MESSAGE", 1024, minimum=64, maximum=2**20, env=env
            ),
            live_send_timeout=env_float(
                "WEB_LIVE_SEND_TIMEOUT", 2.0, minimum=0.1, maximum=30, env=env
            ),
        )


def faults_enabled(env: Mapping[str, str] | None = None) -> bool:
    """``WEB_FAULTS`` (0 or 1); unset: on when the front is published on loopback only.

    ``POLYLOOP_BIND`` is where compose publishes the front (default 127.0.0.1): anyone who
    reaches a front published wider could break the stack, so that takes ``WEB_FAULTS=1``.
    """
    bind = env_str("POLYLOOP_BIND", "127.0.0.1", env)
    default = 1 if bind in ("127.0.0.1", "::1", "localhost") else 0
    return bool(env_int("WEB_FAULTS", default, minimum=0, maximum=1, env=env))
