"""The ``dns`` service's settings, read once from the environment at start.

- LISTEN_HOST (127.0.0.1): interface bound; compose sets 0.0.0.0.
- DNS_PORT (1053): the UDP and TCP port; 53 inside compose.
- DNS_ZONE_FILE (services/dns/polyloop.test.zone): the BIND zone file served.
- DNS_MAX_DELAY_MS (10000): largest N of ``X.delay-N`` honoured; above it, REFUSED.
- DNS_MAX_PENDING_DELAYS (10000): delayed answers waiting at once; beyond it, REFUSED.
- DNS_TCP_IDLE_TIMEOUT (30): seconds before a silent TCP client is disconnected.
- DNS_METRICS_PORT (9104): TCP port of GET /metrics, served from a thread; 0 = any free.
- POLYLOOP_METRICS, POLYLOOP_LAG_INTERVAL: see ``services.common.control``.
- LOG_LEVEL (INFO): DEBUG, INFO, WARNING, ERROR or CRITICAL.
- DNS_STATS_INTERVAL (10): seconds between the summary lines of malformed messages and
  refused delays (one line per interval with counts, never one per message); 0: only at stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
from services.dns.zone import ZONE_FILE


@dataclass(frozen=True)
class DnsConfig:
    listen_host: str = "127.0.0.1"
    port: int = 1053
    zone_file: Path = ZONE_FILE
    max_delay_ms: int = 10_000
    max_pending_delays: int = 10_000
    tcp_idle_timeout: float = 30.0
    log_level: str = "INFO"
    stats_interval: float = 10.0
    metrics_port: int = 9104
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DnsConfig:
        """Read and check every variable; a bad one raises ``ConfigError`` naming it."""
        zone_file = Path(env_str("DNS_ZONE_FILE", str(ZONE_FILE), env))
        if not zone_file.is_file():
            raise ConfigError(f"DNS_ZONE_FILE={str(zone_file)!r}: no such file")
        return cls(
            listen_host=listen_host(env),
            port=env_port("DNS_PORT", 1053, env),
            zone_file=zone_file,
            max_delay_ms=env_int("DNS_MAX_DELAY_MS", 10_000, minimum=0, maximum=600_000, env=env),
            max_pending_delays=env_int(
                "DNS_MAX_PENDING_DELAYS", 10_000, minimum=1, maximum=1_000_000, env=env
            ),
            tcp_idle_timeout=env_float(
                "DNS_TCP_IDLE_TIMEOUT", 30.0, minimum=0.1, maximum=3600.0, env=env
            ),
            metrics_port=env_int("DNS_METRICS_PORT", 9104, minimum=0, maximum=65535, env=env),
            metrics=MetricsSettings.from_env(env),
            log_level=env_log_level(env),
            stats_interval=env_float(
                "DNS_STATS_INTERVAL", 10.0, minimum=0.0, maximum=86_400.0, env=env
            ),
        )
