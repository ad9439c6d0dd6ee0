"""udp-echo configuration, read once from the environment at start.

| variable                 | default   | meaning                                                  |
|--------------------------|-----------|----------------------------------------------------------|
| LISTEN_HOST              | 127.0.0.1 | interface to bind (compose sets 0.0.0.0)                 |
| UDP_ECHO_PORT            | 9999      | UDP port to listen on                                    |
| UDP_ECHO_MAX_DATAGRAM    | 4096      | bytes; larger datagrams are dropped and counted          |
| UDP_ECHO_RATE_LIMIT      | 0         | datagrams/s per source IP (bursts of one second); 0 = off |
| UDP_ECHO_MAX_SOURCES     | 10000     | source IPs the rate limiter remembers (bounds memory)    |
| UDP_ECHO_STATS_INTERVAL  | 10        | seconds between drop-summary log lines; 0 = off          |
| UDP_ECHO_LOOP            | asyncio   | asyncio (the stdlib loop) or uvloop (the same protocol)  |
| UDP_ECHO_METRICS_PORT    | 9102      | TCP port of GET /metrics (served from a thread); 0 = any |
| LOG_LEVEL                | INFO      | DEBUG, INFO, WARNING, ERROR                              |
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

LOOPS = ("asyncio", "uvloop")
# the largest payload an IPv4 UDP datagram can carry
MAX_UDP_PAYLOAD = 65507


@dataclass(frozen=True)
class UdpEchoConfig:
    listen_host: str = "127.0.0.1"
    port: int = 9999
    max_datagram: int = 4096
    rate_limit: int = 0
    max_sources: int = 10_000
    stats_interval: float = 10.0
    loop: str = "asyncio"
    log_level: str = "INFO"
    metrics_port: int = 9102
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UdpEchoConfig:
        """Build the config from the environment; a bad value raises ConfigError naming it."""
        loop = env_str("UDP_ECHO_LOOP", "asyncio", env).lower()
        if loop not in LOOPS:
            raise ConfigError(f"UDP_ECHO_LOOP={loop!r}: expected one of {', '.join(LOOPS)}")
        return cls(
            listen_host=listen_host(env),
            port=env_port("UDP_ECHO_PORT", 9999, env),
            max_datagram=env_int(
                "UDP_ECHO_MAX_DATAGRAM", 4096, minimum=1, maximum=MAX_UDP_PAYLOAD, env=env
            ),
            rate_limit=env_int("UDP_ECHO_RATE_LIMIT", 0, minimum=0, maximum=10_000_000, env=env),
            max_sources=env_int(
                "UDP_ECHO_MAX_SOURCES", 10_000, minimum=1, maximum=10_000_000, env=env
            ),
            stats_interval=env_float(
                "UDP_ECHO_STATS_INTERVAL", 10.0, minimum=0.0, maximum=86_400.0, env=env
            ),
            loop=loop,
            metrics_port=env_int("UDP_ECHO_METRICS_PORT", 9102, minimum=0, maximum=65535, env=env),
            metrics=MetricsSettings.from_env(env),
            log_level=env_log_level(env),
        )
