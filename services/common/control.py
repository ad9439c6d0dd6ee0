"""A service's control port: reaching its loop from outside (metrics, faults, stalls).

``ControlSettings`` are the switches every service reads for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import ADMIN_TOKEN, Settings, declare, setting

DEFAULT_LAG_INTERVAL = 0.05


@dataclass(frozen=True)
class ControlSettings(Settings):
    """What every service's control port and lag timer read (docs/configuration.md)."""

    enabled: bool = setting(
        "POLYLOOP_METRICS", True, "0: no lag timer and no control port (the bench's 'off')"
    )
    lag_interval: float = setting(
        "POLYLOOP_LAG_INTERVAL",
        DEFAULT_LAG_INTERVAL,
        "seconds between two ticks of each loop's lag timer",
        minimum=0.001,
        maximum=10,
    )
    max_connections: int = setting(
        "POLYLOOP_METRICS_MAX_CONNECTIONS",
        16,
        "connections each control port serves at once; beyond it a new one is closed",
        minimum=1,
        maximum=1024,
    )
    admin_token: str | None = declare(ADMIN_TOKEN)
