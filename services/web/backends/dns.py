"""Readiness of the Twisted Names server: one real DNS query over UDP (dnspython).

dnspython wants an IP address: the ``DNS_HOST`` name's replicas (``replicas.ReplicaSet``,
refreshed by the front's watcher) give one, a different one each query.
"""

from __future__ import annotations

import socket

from services.web.backends import Backend
from services.web.backends.replicas import ReplicaSet, call_on_replica, probe_dns
from services.web.errors import BadBackendReply


class DnsProbe:
    def __init__(self, host: str, port: int, replicas: ReplicaSet | None = None) -> None:
        self.host = host
        self.port = port
        self.replicas = replicas or ReplicaSet("dns", host, port, socktype=socket.SOCK_DGRAM)

    async def query(self, timeout: float) -> None:
        """The stack's DNS question; a wrong answer is a bad reply, silence is tried once
        more on another replica."""
        await call_on_replica(self.replicas, lambda address: self._query(address, timeout))

    async def _query(self, address: str, timeout: float) -> None:
        try:
            await probe_dns(address, self.port, timeout)
        except ValueError as wrong:
            raise BadBackendReply(Backend.DNS, str(wrong)) from None
