"""The front's four backend clients, opened together at startup and closed together.

Each operation runs through the backend's ``BackendCall`` (timeout, concurrency bound,
stats, metrics) and checks what came back: an echo that differs from what was sent is a
bad reply (502), not a success.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.web.backends import replicas as rep
from services.web.backends.call import BackendCall
from services.web.backends.dns import DnsProbe
from services.web.backends.resolver import ResolverClient
from services.web.backends.tcp import TcpEchoPool
from services.web.backends.udp import UdpEchoPool
from services.web.config import WebConfig
from services.web.errors import BadBackendReply
from services.web.metrics import Metrics
from services.web.stats import BACKENDS, BackendStats

# the resolver answers at its own `timeout`; allow it this long to send the answer back
RESOLVE_MARGIN = 1.0
RESOLVE_MAX_TIMEOUT = 30.0


@dataclass
class Backends:
    config: WebConfig
    tcp: TcpEchoPool
    udp: UdpEchoPool
    resolver: ResolverClient
    dns: DnsProbe
    calls: dict[str, BackendCall]
    # every replica of each backend, refreshed and probed by `watcher` (backends/replicas.py)
    replicas: dict[str, rep.ReplicaSet]
    watcher: rep.ReplicaWatcher

    @classmethod
    def open(cls, config: WebConfig, stats: BackendStats, metrics: Metrics) -> Backends:
        """Create the clients (connections are opened lazily, on first use) and start the
        replica watcher (so: from a running loop)."""
        calls = {
            name: BackendCall(
                name,
                timeout=config.backend_timeout,
                concurrency=config.backend_concurrency,
                stats=stats,
                metrics=metrics,
            )
            for name in BACKENDS
        }
        replicas = replica_sets(config)
        watcher = rep.ReplicaWatcher(
            replicas.values(), every=config.replica_refresh, probe_timeout=config.health_timeout
        )
        watcher.start()
        return cls(
            config=config,
            tcp=TcpEchoPool(
                config.tcp_echo_host,
                config.tcp_echo_port,
                config.tcp_pool_size,
                replicas["tcp-echo"],
                config.connect_timeout,
            ),
            udp=UdpEchoPool(
                config.udp_echo_host,
                config.udp_echo_port,
                config.udp_pool_size,
                try_timeout=config.udp_try_timeout,
                retries=config.udp_retries,
                replicas=replicas["udp-echo"],
            ),
            resolver=ResolverClient(
                config.resolver_host,
                config.resolver_port,
                limit=config.backend_concurrency,
                replicas=replicas["resolver"],
            ),
            dns=DnsProbe(config.dns_host, config.dns_port, replicas["dns"]),
            calls=calls,
            replicas=replicas,
            watcher=watcher,
        )

    async def echo_tcp(self, data: bytes, timeout: float | None = None) -> bytes:
        echo = self.tcp.echo
        return await self.calls["tcp-echo"].run(lambda: _checked("tcp-echo", echo, data), timeout)

    async def echo_udp(self, data: bytes, timeout: float | None = None) -> bytes:
        echo = self.udp.echo
        return await self.calls["udp-echo"].run(lambda: _checked("udp-echo", echo, data), timeout)

    async def resolve(self, request: dict[str, Any]) -> dict[str, Any]:
        """Pass a validated resolve request through; bounded by its own timeout + a margin."""
        timeout = min(float(request["timeout"]), RESOLVE_MAX_TIMEOUT) + RESOLVE_MARGIN
        return await self.calls["resolver"].run(lambda: self.resolver.resolve(request), timeout)

    async def ping_resolver(self, timeout: float) -> None:
        await self.calls["resolver"].run(self.resolver.ping, timeout)

    async def query_dns(self, timeout: float) -> None:
        await self.calls["dns"].run(lambda: self.dns.query(timeout), timeout)

    async def close(self) -> None:
        await self.watcher.close()
        await self.tcp.close()
        await self.udp.close()
        await self.resolver.close()


def replica_sets(config: WebConfig) -> dict[str, rep.ReplicaSet]:
    """One ``ReplicaSet`` per backend, each with its protocol's own probe."""
    udp = socket.SOCK_DGRAM
    specs = {
        "tcp-echo": (config.tcp_echo_host, config.tcp_echo_port, rep.probe_tcp_echo, None),
        "udp-echo": (config.udp_echo_host, config.udp_echo_port, rep.probe_udp_echo, udp),
        "resolver": (config.resolver_host, config.resolver_port, rep.probe_http_healthz, None),
        "dns": (config.dns_host, config.dns_port, rep.probe_dns, udp),
    }
    return {
        name: rep.ReplicaSet(
            name,
            host,
            port,
            probe=probe,
            socktype=socktype or socket.SOCK_STREAM,
            max_replicas=config.max_replicas,
        )
        for name, (host, port, probe, socktype) in specs.items()
    }


async def _checked(name: str, echo: Callable[[bytes], Awaitable[bytes]], data: bytes) -> bytes:
    reply = await echo(data)
    if reply != data:
        raise BadBackendReply(name, "the echo differs from the message sent")
    return reply
