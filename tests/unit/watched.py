"""Each service's loop watched in-process, as its ``__main__`` does: the loop's ``start`` from
``services.common.loops`` with the service's collector and faults (shared by the unit tests
that block a loop and scrape its control port)."""

from __future__ import annotations

from typing import Any

from services.common.loops import asyncio as asyncio_loop
from services.common.loops import twisted as twisted_loop
from services.dns.metrics import DnsCollector
from services.tcp_echo.metrics import TcpEchoCollector
from services.udp_echo.metrics import UdpEchoCollector

# each service: the loop module that watches it, and its collector of what it served
WATCHERS: dict[str, tuple[Any, Any]] = {
    "tcp-echo": (twisted_loop, TcpEchoCollector),
    "dns": (twisted_loop, DnsCollector),
    "udp-echo": (asyncio_loop, UdpEchoCollector),
}


def start_metrics(service: str, loop: Any, served: Any, config: Any) -> Any:
    """What the service's ``__main__`` starts: its loop watched, its control port. ``served``
    is its factory (Twisted) or protocol (asyncio): the collector reads it, its faults apply."""
    loop_module, collector = WATCHERS[service]
    return loop_module.start(loop, config, collector(served), faults=served.faults)
