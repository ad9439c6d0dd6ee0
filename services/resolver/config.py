"""The resolver's configuration, read once from the environment at start.

Every variable has a default that works on a developer machine (the stack's ``dns``
service on 127.0.0.1:1053); compose sets ``LISTEN_HOST=0.0.0.0`` and ``DNS_HOST=dns``.
A bad value raises ``ConfigError`` naming the variable, so the start fails clearly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import (
    ConfigError,
    env_float,
    env_int,
    env_port,
    env_str,
    listen_host,
)

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
    max_names: int = 256
    max_timeout: float = 30.0
    max_body: int = 64 * 1024
    max_connections: int = 100
    client_timeout: float = 30.0
    drain_seconds: float = 3.0
    log_level: str = "INFO"

    @property
    def default_timeout(self) -> float:
        """The contract's 5 s, unless the operator capped timeouts below it."""
        return min(DEFAULT_TIMEOUT, self.max_timeout)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ResolverConfig:
        backend = env_str("RESOLVER_BACKEND", "dnspython", env).lower()
        if backend not in BACKENDS:
            raise ConfigError(f"RESOLVER_BACKEND={backend!r}: expected one of {BACKENDS}")
        log_level = env_str("LOG_LEVEL", "INFO", env).upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"LOG_LEVEL={log_level!r}: expected DEBUG, INFO, WARNING or ERROR")
        return cls(
            listen_host=listen_host(env),
            port=env_port("RESOLVER_PORT", 8053, env),
            dns_host=env_str("DNS_HOST", "127.0.0.1", env),
            dns_port=env_port("DNS_PORT", 1053, env),
            backend=backend,
            pool_size=env_int("RESOLVER_POOL_SIZE", 256, minimum=1, maximum=10_000, env=env),
            max_names=env_int("RESOLVER_MAX_NAMES", 256, minimum=1, maximum=10_000, env=env),
            max_timeout=env_float("RESOLVER_MAX_TIMEOUT", 30.0, minimum=0.1, maximum=600, env=env),
            max_body=env_int("RESOLVER_MAX_BODY", 64 * 1024, minimum=1024, env=env),
            max_connections=env_int(
                "RESOLVER_MAX_CONNECTIONS", 100, minimum=1, maximum=10_000, env=env
            ),
            client_timeout=env_float(
                "RESOLVER_CLIENT_TIMEOUT", 30.0, minimum=0.1, maximum=3600, env=env
            ),
            drain_seconds=env_float("RESOLVER_DRAIN_SECONDS", 3.0, minimum=0, maximum=60, env=env),
            log_level=log_level,
        )
