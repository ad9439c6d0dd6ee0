"""tcp-echo's configuration, read once from the environment at start.

Try a bad value to see the start fail cleanly:
``TCP_ECHO_MAX_CONNECTIONS=lots python -m services.tcp_echo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.config import (
    env_float,
    env_int,
    env_log_level,
    env_port,
    listen_host,
)
from services.common.metrics import MetricsSettings, env_metrics_port


@dataclass(frozen=True)
class TcpEchoConfig:
    """Everything tcp-echo reads from the environment (README defaults)."""

    listen_host: str = "127.0.0.1"  # LISTEN_HOST: interface to bind (compose: 0.0.0.0)
    port: int = 8000  # TCP_ECHO_PORT: port to listen on
    max_connections: int = 1024  # TCP_ECHO_MAX_CONNECTIONS: beyond it, closed at once
    idle_timeout: float = 300.0  # TCP_ECHO_IDLE_TIMEOUT: seconds of silence; 0 disables
    drain_seconds: float = 2.0  # TCP_ECHO_DRAIN_SECONDS: flush time at close/SIGTERM
    log_level: str = "INFO"  # LOG_LEVEL
    metrics_port: int = 9101  # TCP_ECHO_METRICS_PORT: GET /metrics, from a thread
    # POLYLOOP_METRICS, POLYLOOP_LAG_INTERVAL, POLYLOOP_METRICS_MAX_CONNECTIONS
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TcpEchoConfig:
        """Read the variables; raise ConfigError naming the first bad one."""
        return cls(
            listen_host=listen_host(env),
            port=env_port("TCP_ECHO_PORT", 8000, env),
            max_connections=env_int(
                "TCP_ECHO_MAX_CONNECTIONS", 1024, minimum=1, maximum=1_000_000, env=env
            ),
            idle_timeout=env_float(
                "TCP_ECHO_IDLE_TIMEOUT", 300.0, minimum=0.0, maximum=86_400.0, env=env
            ),
            drain_seconds=env_float(
                "TCP_ECHO_DRAIN_SECONDS", 2.0, minimum=0.0, maximum=60.0, env=env
            ),
            metrics_port=env_metrics_port("TCP_ECHO_METRICS_PORT", 9101, env),
            metrics=MetricsSettings.from_env(env),
            log_level=env_log_level(env),
        )
