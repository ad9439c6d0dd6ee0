"""Each service's loop watched in-process, as its ``__main__`` does: the loop's ``start`` from
``services.common.loops`` with the service's collector and faults (shared by the unit tests
that block a loop and scrape its control port)."""

from __future__ import annotations

from typing import Any

from services.common.loops import asyncio as asyncio_loop
from services.common.loops import twisted as twisted_loop
from services.dns.config import DnsConfig
from services.dns.metrics import DnsCollector
from services.tcp_echo.config import TcpEchoConfig
from services.tcp_echo.metrics import TcpEchoCollector
from services.tcp_echo.protocol import EchoFactory
from services.udp_echo.config import UdpEchoConfig
from services.udp_echo.metrics import UdpEchoCollector
from services.udp_echo.protocol import ServerUdpEchoProtocol


def start_tcp_metrics(reactor: Any, factory: EchoFactory, config: TcpEchoConfig) -> Any:
    """What tcp-echo's ``__main__`` starts: the reactor watched, its control port."""
    return twisted_loop.start(
        reactor,
        config,
        TcpEchoCollector(factory),
        faults=factory.faults,
    )


def start_dns_metrics(reactor: Any, factory: Any, config: DnsConfig) -> Any:
    return twisted_loop.start(
        reactor,
        config,
        DnsCollector(factory),
        faults=factory.faults,
    )


def start_udp_metrics(loop: Any, protocol: ServerUdpEchoProtocol, config: UdpEchoConfig) -> Any:
    return asyncio_loop.start(
        loop,
        config,
        UdpEchoCollector(protocol),
        faults=protocol.faults,
    )
