"""Readiness of the Twisted Names server: one real DNS query over UDP (dnspython).

dnspython wants an IP address: the ``DNS_HOST`` name's replicas (``replicas.ReplicaSet``,
refreshed by the front's watcher) give one, a different one each query.
"""

from __future__ import annotations

import socket

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

from services.web.backends import Backend
from services.web.backends.replicas import ReplicaSet, call_on_replica
from services.web.errors import BadBackendReply

# a replica that does not answer in time is worth one try on another
RETRY_ON = (OSError, dns.exception.Timeout)

PROBE_NAME = "www.polyloop.test"


class DnsProbe:
    def __init__(self, host: str, port: int, replicas: ReplicaSet | None = None) -> None:
        self.host = host
        self.port = port
        self.replicas = replicas or ReplicaSet("dns", host, port, socktype=socket.SOCK_DGRAM)

    async def query(self, timeout: float) -> None:
        """Ask for ``www.polyloop.test`` A; any answer but NOERROR is a failure."""
        await call_on_replica(
            self.replicas, lambda address: self._query(address, timeout), RETRY_ON
        )

    async def _query(self, address: str, timeout: float) -> None:
        question = dns.message.make_query(PROBE_NAME, "A")
        answer = await dns.asyncquery.udp(question, address, timeout=timeout, port=self.port)
        if answer.rcode() != dns.rcode.NOERROR:
            raise BadBackendReply(Backend.DNS, f"answered {dns.rcode.to_text(answer.rcode())}")
