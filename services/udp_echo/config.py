"""udp-echo's configuration, read once from the environment at start.

Try a bad value to see the start fail cleanly: ``UDP_ECHO_LOOP=trio python -m services.udp_echo``.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.catalogue import service
from services.common.config import ServiceConfig
from services.common.limits import UDP_ECHO_MAX_DATAGRAM
from services.common.settings import declare, setting

UDP_ECHO = service("udp-echo")


@dataclass(frozen=True)
class UdpEchoConfig(ServiceConfig, service=UDP_ECHO):
    """Everything udp-echo reads from the environment (docs/configuration.md)."""

    max_datagram: int = declare(UDP_ECHO_MAX_DATAGRAM)
    rate_limit: int = setting(
        "UDP_ECHO_RATE_LIMIT",
        0,
        "datagrams/s per source address, in bursts of one second (0: off, so load tests are"
        " not throttled)",
        minimum=0,
        maximum=10_000_000,
    )
    max_sources: int = setting(
        "UDP_ECHO_MAX_SOURCES",
        10_000,
        "source addresses the rate limiter remembers (a spoofed flood cannot grow memory); the"
        " least recently seen is evicted, and evictions are counted and reported in the drop"
        " summary",
        minimum=1,
        maximum=10_000_000,
    )
    stats_interval: float = setting(
        "UDP_ECHO_STATS_INTERVAL",
        10.0,
        "seconds between the log lines that summarise drops (and rate-limiter evictions); 0: none",
        minimum=0.0,
        maximum=86_400.0,
    )
    loop: str = setting(
        "UDP_ECHO_LOOP",
        "asyncio",
        "the stdlib loop, or uvloop: the same protocol on libuv, about 4.4x the echoes/s from"
        " 10 sockets on (`make bench`)",
        choices=("asyncio", "uvloop"),
    )
