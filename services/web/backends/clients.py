"""The front's four backend clients, opened together at startup and closed together.

Each operation runs through the backend's ``BackendCall`` (timeout, concurrency bound,
stats, metrics) and checks what came back: an echo that differs from what was sent is a
bad reply (502), not a success.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from services.web.backends import Backend
from services.web.backends import replicas as rep
from services.web.backends.call import BackendCall
from services.web.backends.dns import DnsProbe
from services.web.backends.resolver import ResolverClient
from services.web.backends.tcp import TcpEchoPool
from services.web.backends.udp import UdpEchoPool
from services.web.config import WebConfig
from services.web.errors import BadBackendReply
from services.web.metrics import Metrics
from services.web.stats import BackendStats

# the resolver answers at its own `timeout`; allow it this long to send the answer back
RESOLVE_MARGIN = 1.0
# what the readiness probes echo: marked, never counted as served (services.common.probes)
PROBE = rep.PING


@dataclass
class BackendClients:
    tcp: TcpEchoPool
    udp: UdpEchoPool
    resolver: ResolverClient
    dns: DnsProbe
    calls: dict[Backend, BackendCall]
    # every replica of each backend, refreshed and probed by `watcher` (backends/replicas.py)
    replicas: dict[Backend, rep.ReplicaSet]
    watcher: rep.ReplicaWatcher

    @classmethod
    def open(cls, config: WebConfig, stats: BackendStats, metrics: Metrics) -> BackendClients:
        """Create the clients (connections are opened lazily, on first use) and start the
        replica watcher (so: from a running loop)."""
        # the echo pools bound their own calls (a call holds a connection or an endpoint):
        # the guard's semaphore would be a second one on the same calls
        pooled = (Backend.TCP_ECHO, Backend.UDP_ECHO)
        calls = {
            backend: BackendCall(
                backend,
                timeout=config.backend_timeout,
                concurrency=None if backend in pooled else config.backend_concurrency,
                stats=stats,
                metrics=metrics,
            )
            for backend in Backend
        }
        replicas = replica_sets(config)
        watcher = rep.ReplicaWatcher(
            replicas.values(), every=config.replica_refresh, probe_timeout=config.health_timeout
        )
        watcher.start()
        return cls(
            tcp=TcpEchoPool(
                config.tcp_echo_host,
                config.tcp_echo_port,
                config.tcp_pool_size,
                replicas[Backend.TCP_ECHO],
                config.connect_timeout,
                max_calls=config.backend_concurrency,
            ),
            udp=UdpEchoPool(
                config.udp_echo_host,
                config.udp_echo_port,
                config.udp_pool_size,
                try_timeout=config.udp_try_timeout,
                retries=config.udp_retries,
                replicas=replicas[Backend.UDP_ECHO],
                max_calls=config.backend_concurrency,
            ),
            # never every one of the resolver's RESOLVER_MAX_CONNECTIONS: its healthcheck
            # and its direct clients must still get a connection while the front is busy
            resolver=ResolverClient(
                config.resolver_host,
                config.resolver_port,
                limit=config.resolver_pool_size,
                replicas=replicas[Backend.RESOLVER],
                connect_timeout=config.connect_timeout,
            ),
            dns=DnsProbe(config.dns_host, config.dns_port, replicas[Backend.DNS]),
            calls=calls,
            replicas=replicas,
            watcher=watcher,
        )

    # the echoes return the guarded call itself (a coroutine layer fewer measured no
    # difference: it is for reading). The pools check the echo (TCP: the bytes read back,
    # a differing one closes its connection; UDP: only an identical datagram is the echo)

    def echo_tcp(self, data: bytes) -> Awaitable[bytes]:
        return self.calls[Backend.TCP_ECHO].run(partial(self.tcp.echo, data))

    def echo_udp(self, data: bytes) -> Awaitable[bytes]:
        return self.calls[Backend.UDP_ECHO].run(partial(self.udp.echo, data))

    async def resolve(self, request: dict[str, Any]) -> dict[str, Any]:
        """Pass a validated resolve request through; bounded by its own timeout + a margin
        (validation already capped it at the resolver's ``RESOLVER_MAX_TIMEOUT``)."""
        timeout = float(request["timeout"]) + RESOLVE_MARGIN
        call = self.calls[Backend.RESOLVER]
        return await call.run(lambda: self.resolver.resolve(request), timeout)

    async def probe(self, backend: Backend, timeout: float) -> None:
        """One readiness round trip to `backend` within `timeout`, raising a ``Problem`` if
        it fails; counted as a probe, never as traffic (the live stats leave it out)."""
        call: Callable[[], Awaitable[object]]
        match backend:
            case Backend.TCP_ECHO:
                # a connection of its own: the pool's connections carry the clients' traffic
                call = partial(self._probe_tcp, timeout)
            case Backend.UDP_ECHO:
                call = partial(self.udp.echo, PROBE)
            case Backend.RESOLVER:
                call = self.resolver.ping
            case Backend.DNS:
                call = partial(self.dns.query, timeout)
        await self.calls[backend].run(call, timeout, probe=True)

    async def _probe_tcp(self, timeout: float) -> None:
        port = self.tcp.port

        async def on(address: str) -> None:
            try:
                await rep.probe_tcp_echo(address, port, timeout)
            except ValueError as wrong:
                raise BadBackendReply(Backend.TCP_ECHO, str(wrong)) from None

        await rep.call_on_replica(self.tcp.replicas, on)

    async def close(self) -> None:
        await self.watcher.close()
        await self.tcp.close()
        await self.udp.close()
        await self.resolver.close()


def replica_sets(config: WebConfig) -> dict[Backend, rep.ReplicaSet]:
    """One ``ReplicaSet`` per backend, each with its protocol's own probe."""
    udp = socket.SOCK_DGRAM
    specs = {
        Backend.TCP_ECHO: (config.tcp_echo_host, config.tcp_echo_port, rep.probe_tcp_echo, None),
        Backend.UDP_ECHO: (config.udp_echo_host, config.udp_echo_port, rep.probe_udp_echo, udp),
        Backend.RESOLVER: (
            config.resolver_host,
            config.resolver_port,
            rep.probe_http_healthz,
            None,
        ),
        Backend.DNS: (config.dns_host, config.dns_port, rep.probe_dns, udp),
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
