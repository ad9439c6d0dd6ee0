"""Readiness of the Twisted Names server: one real DNS query over UDP (dnspython).

dnspython wants an IP address, so the ``DNS_HOST`` name is resolved first (each time:
in compose the container's address may change across restarts).
"""

from __future__ import annotations

import asyncio
import socket

import dns.asyncquery
import dns.message
import dns.rcode

from services.web.backends import Backend
from services.web.errors import BadBackendReply

PROBE_NAME = "www.polyloop.test"


class DnsProbe:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    async def query(self, timeout: float) -> None:
        """Ask for ``www.polyloop.test`` A; any answer but NOERROR is a failure."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        address = str(infos[0][4][0])
        question = dns.message.make_query(PROBE_NAME, "A")
        answer = await dns.asyncquery.udp(question, address, timeout=timeout, port=self.port)
        if answer.rcode() != dns.rcode.NOERROR:
            raise BadBackendReply(Backend.DNS, f"answered {dns.rcode.to_text(answer.rcode())}")
