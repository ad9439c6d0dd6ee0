"""The resolver's settings, read once from the environment at start.

- LISTEN_HOST (127.0.0.1): interface bound; compose sets 0.0.0.0.
- RESOLVER_PORT (8053): the HTTP port.
- DNS_HOST (127.0.0.1) / DNS_PORT (1053): the stack's dns service, asked for
  ``polyloop.test`` names; a host name (compose: ``dns``) is resolved once at start.
- RESOLVER_BACKEND (dnspython): ``dnspython`` (cooperative sockets) or ``threadpool``
  (the same lookups in gevent's default thread pool, to compare).
- RESOLVER_POOL_SIZE (256): lookups of one request running at once (the gevent Pool).
- RESOLVER_MAX_LOOKUPS (256): lookups in flight across every request (each holds up to
  two sockets, A and AAAA); beyond it names wait, then are ``"overloaded"``.
- RESOLVER_EXTERNAL (0): 1 sends names outside polyloop.test to the system resolver;
  0 answers them ``"refused"`` without a lookup.
- RESOLVER_CACHE_SIZE (10000): answers of the zone kept for their TTL (0: no cache).
- RESOLVER_MAX_NAMES (256): names in one request; more is a 422.
- RESOLVER_MAX_TIMEOUT (30): largest ``timeout`` a request may ask, in seconds.
- RESOLVER_MAX_BODY (65536): request body bytes; more is a 413.
- RESOLVER_MAX_CONNECTIONS (100): HTTP connections served at once.
- RESOLVER_CLIENT_TIMEOUT (30): seconds a silent client keeps its connection.
- RESOLVER_REQUEST_TIMEOUT (10): seconds for a whole request (line, headers, body) to
  arrive once its first byte has, however it trickles in.
- RESOLVER_DRAIN_SECONDS (3): at SIGTERM, how long requests in flight may finish.
- RESOLVER_METRICS_PORT (9103): GET /metrics from a real OS thread (answers while the
  hub is blocked); 0 = any free port. POLYLOOP_METRICS, POLYLOOP_LAG_INTERVAL: see
  ``services.common.control``.
- LOG_LEVEL (INFO); GEVENT_RESOLVER (dnspython, set by ``__main__`` when unset).

A bad value raises ``ConfigError`` naming the variable, so the start fails clearly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.config import (
    ConfigError,
    env_float,
    env_int,
    env_log_level,
    env_port,
    env_str,
    listen_host,
)
from services.common.control import ControlSettings as MetricsSettings

BACKENDS = ("dnspython", "threadpool")
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class ResolverConfig:
    listen_host: str = "127.0.0.1"
    port: int = 8053
    dns_host: str = "127.0.0.1"
    dns_port: int = 1053
    backend: str = "dnspython"
    pool_size: int = 256
    max_lookups: int = 256
    external: bool = False
    cache_size: int = 10_000
    max_names: int = 256
    max_timeout: float = 30.0
    max_body: int = 64 * 1024
    max_connections: int = 100
    client_timeout: float = 30.0
    request_timeout: float = 10.0
    drain_seconds: float = 3.0
    log_level: str = "INFO"
    metrics_port: int = 9103
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @property
    def default_timeout(self) -> float:
        """The contract's 5 s, unless the operator capped timeouts below it."""
        return min(DEFAULT_TIMEOUT, self.max_timeout)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ResolverConfig:
        backend = env_str("RESOLVER_BACKEND", "dnspython", env).lower()
        if backend not in BACKENDS:
            raise ConfigError(f"RESOLVER_BACKEND={backend!r}: expected one of {BACKENDS}")
        return cls(
            listen_host=listen_host(env),
            port=env_port("RESOLVER_PORT", 8053, env),
            dns_host=env_str("DNS_HOST", "127.0.0.1", env),
            dns_port=env_port("DNS_PORT", 1053, env),
            backend=backend,
            pool_size=env_int("RESOLVER_POOL_SIZE", 256, minimum=1, maximum=10_000, env=env),
            max_lookups=env_int("RESOLVER_MAX_LOOKUPS", 256, minimum=1, maximum=10_000, env=env),
            external=bool(env_int("RESOLVER_EXTERNAL", 0, minimum=0, maximum=1, env=env)),
            cache_size=env_int(
                "RESOLVER_CACHE_SIZE", 10_000, minimum=0, maximum=1_000_000, env=env
            ),
            max_names=env_int("RESOLVER_MAX_NAMES", 256, minimum=1, maximum=10_000, env=env),
            max_timeout=env_float("RESOLVER_MAX_TIMEOUT", 30.0, minimum=0.1, maximum=600, env=env),
            max_body=env_int("RESOLVER_MAX_BODY", 64 * 1024, minimum=1024, env=env),
            max_connections=env_int(
                "RESOLVER_MAX_CONNECTIONS", 100, minimum=1, maximum=10_000, env=env
            ),
            client_timeout=env_float(
                "RESOLVER_CLIENT_TIMEOUT", 30.0, minimum=0.1, maximum=3600, env=env
            ),
            request_timeout=env_float(
                "RESOLVER_REQUEST_TIMEOUT", 10.0, minimum=0.1, maximum=3600, env=env
            ),
            drain_seconds=env_float("RESOLVER_DRAIN_SECONDS", 3.0, minimum=0, maximum=60, env=env),
            metrics_port=env_int("RESOLVER_METRICS_PORT", 9103, minimum=0, maximum=65535, env=env),
            metrics=MetricsSettings.from_env(env),
            log_level=env_log_level(env),
        )
