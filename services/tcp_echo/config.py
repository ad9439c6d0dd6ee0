"""tcp-echo's configuration, read once from the environment at start.

Try a bad value to see the start fail cleanly:
``TCP_ECHO_MAX_CONNECTIONS=lots python -m services.tcp_echo``.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.catalogue import service
from services.common.config import ServiceConfig
from services.common.settings import setting

TCP_ECHO = service("tcp-echo")


@dataclass(frozen=True)
class TcpEchoConfig(ServiceConfig, service=TCP_ECHO):
    """Everything tcp-echo reads from the environment (docs/configuration.md)."""

    max_connections: int = setting(
        "TCP_ECHO_MAX_CONNECTIONS",
        1024,
        "concurrent connections; beyond it a new one is closed at once, counted, logged once"
        " per burst",
        minimum=1,
        maximum=1_000_000,
    )
    idle_timeout: float = setting(
        "TCP_ECHO_IDLE_TIMEOUT",
        300.0,
        "seconds of silence before a connection is closed (0: never); a half-closed client"
        " that never reads its echo is aborted then",
        minimum=0.0,
        maximum=86_400.0,
    )
    drain_seconds: float = setting(
        "TCP_ECHO_DRAIN_SECONDS",
        2.0,
        "at SIGTERM (or an idle close), time to flush what was already echoed",
        minimum=0.0,
        maximum=60.0,
    )
