"""The ``dns`` service's configuration, read once from the environment at start.

Try a bad value to see the start fail cleanly:
``DNS_ZONE_FILE=/nowhere python -m services.dns``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.common.catalogue import service
from services.common.config import ServiceConfig
from services.common.settings import setting
from services.dns.zone import ZONE_FILE

DNS = service("dns")


@dataclass(frozen=True)
class DnsConfig(ServiceConfig, service=DNS):
    """Everything dns reads from the environment (docs/configuration.md)."""

    zone_file: Path = setting(
        "DNS_ZONE_FILE",
        ZONE_FILE,
        "the BIND zone file served; it must exist",
        doc_default="`services/dns/polyloop.test.zone`",
    )
    max_delay_ms: int = setting(
        "DNS_MAX_DELAY_MS",
        10_000,
        "largest N of `X.delay-N.polyloop.test` honoured; above it REFUSED",
        minimum=0,
        maximum=600_000,
    )
    max_pending_delays: int = setting(
        "DNS_MAX_PENDING_DELAYS",
        10_000,
        "delayed answers waiting at once; beyond it REFUSED",
        minimum=1,
        maximum=1_000_000,
    )
    tcp_idle_timeout: float = setting(
        "DNS_TCP_IDLE_TIMEOUT",
        30.0,
        "seconds before a silent DNS-over-TCP client is closed",
        minimum=0.1,
        maximum=3600.0,
    )
    udp_receive_buffer: int = setting(
        "DNS_UDP_RECEIVE_BUFFER",
        1 << 20,
        "bytes asked for the UDP socket's receive buffer, so a burst of queries waits there"
        " instead of being dropped (Linux doubles it, capped by the host's"
        " net.core.rmem_max; the size given is logged at start)",
        minimum=4096,
        maximum=1 << 28,
    )
    stats_interval: float = setting(
        "DNS_STATS_INTERVAL",
        10.0,
        "seconds between the summary lines of malformed messages and of refused delays (one"
        " line per interval with counts, never one per message; 0: only at stop)",
        minimum=0.0,
        maximum=86_400.0,
    )

    def check(self) -> None:
        if not self.zone_file.is_file():
            raise self.invalid("zone_file", "no such file")
