"""Protocol clients that time each call and report it to Locust like an HTTP request.

Each call runs inside ``_Call``, which measures it and fires
``environment.events.request`` with a request type (TCP, UDP, DNS), a name, the
response time, the response length and the exception (None on success), as
Locust's ``examples/custom_xmlrpc_client`` and ``locust/contrib/dns.py`` do. So
raw-socket traffic shows in the same UI, CSV and HTML report as the HTTP users.

A network error, a timeout or a wrong answer is a *failure* (reported, then the
user carries on); any other exception is a bug in the load code and propagates,
so Locust counts it as an error and the gates fail the run.

Locust runs on gevent, so these are plain blocking sockets: gevent's monkey
patching makes each one cooperative.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from loadtest._targets import Target

RequestEvent = Any  # locust.event.EventHook; not imported so tests can import this module


class WrongAnswer(Exception):
    """The service answered, but not what the contract says it should."""


# what a call may legitimately fail with; anything else is a bug and must surface
FAILURES = (OSError, WrongAnswer, dns.exception.DNSException)


class _Call:
    """Time one call and fire Locust's request event for it, success or failure."""

    def __init__(self, request_event: RequestEvent, request_type: str, name: str) -> None:
        self.request_event = request_event
        self.request_type = request_type
        self.name = name
        self.response_length = 0

    def __enter__(self) -> _Call:
        self.start_time = time.time()
        self.start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is not None and not isinstance(exc, FAILURES):
            return False
        self.request_event.fire(
            request_type=self.request_type,
            name=self.name,
            start_time=self.start_time,
            response_time=(time.perf_counter() - self.start) * 1000,
            response_length=self.response_length,
            exception=exc,
            context={},
        )
        return True  # a failure is reported, not raised: the user goes on with its next task


class TcpEchoClient:
    """One persistent connection to the TCP echo; every echo is verified byte for byte.

    Try the service by hand with: ``nc 127.0.0.1 8000``.
    """

    def __init__(self, request_event: RequestEvent, target: Target, timeout: float) -> None:
        self.request_event = request_event
        self.target = target
        self.timeout = timeout
        self.sock: socket.socket | None = None

    def connect(self) -> None:
        with _Call(self.request_event, "TCP", "connect"):
            self.sock = socket.create_connection(
                (self.target.host, self.target.port), timeout=self.timeout
            )
            # small echoes must not wait for Nagle's timer
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def echo(self, payload: bytes, name: str) -> None:
        if self.sock is None:
            self.connect()  # reconnect after a failure: the next echo gets a fresh connection
        if self.sock is None:
            return
        sock = self.sock
        with _Call(self.request_event, "TCP", name) as call:
            ok = False
            try:
                sock.sendall(payload)
                echoed = _recv_exactly(sock, len(payload))
                call.response_length = len(echoed)
                if echoed != payload:
                    raise WrongAnswer(f"echo differs from the {len(payload)} bytes sent")
                ok = True
            finally:
                if not ok:
                    self.close()  # the stream is out of step: never reuse it

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    while received < size:
        chunk = sock.recv(min(65536, size - received))
        if not chunk:
            raise WrongAnswer(f"connection closed after {received} of {size} bytes")
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


class UdpEchoClient:
    """Datagrams to the UDP echo; an echo that does not come back in time is a failure.

    Try the service by hand with: ``nc -u 127.0.0.1 9999``.
    """

    def __init__(self, request_event: RequestEvent, target: Target, timeout: float) -> None:
        self.request_event = request_event
        self.timeout = timeout
        family, kind, proto, _, address = socket.getaddrinfo(
            target.host, target.port, type=socket.SOCK_DGRAM
        )[0]
        self.sock = socket.socket(family, kind, proto)
        # a connected UDP socket only hears from the echo server, and an ICMP
        # "port unreachable" surfaces as ConnectionRefusedError instead of a timeout
        self.sock.connect(address)

    def echo(self, payload: bytes, name: str) -> None:
        with _Call(self.request_event, "UDP", name) as call:
            self.sock.send(payload)
            deadline = time.monotonic() + self.timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no echo within {self.timeout:g} s")
                self.sock.settimeout(remaining)
                reply = self.sock.recv(65536)
                if reply == payload:
                    call.response_length = len(reply)
                    return
                # anything else is a late echo of an earlier, timed-out datagram: skip it

    def close(self) -> None:
        self.sock.close()


DnsCheck = Callable[[dns.message.Message], None]


class DnsClient:
    """dnspython queries to the stack's authoritative server, answers checked.

    Try the service by hand with: ``dig +norec @127.0.0.1 -p 1053 www.polyloop.test``.
    """

    def __init__(self, request_event: RequestEvent, target: Target, timeout: float) -> None:
        self.request_event = request_event
        self.timeout = timeout
        self.port = target.port
        # dnspython wants an IP address; in compose the target is the name "dns"
        self.where = socket.gethostbyname(target.host)

    def query(self, qname: str, rdtype: str, name: str, check: DnsCheck, tcp: bool = False) -> None:
        query = dns.message.make_query(qname, rdtype)
        send = dns.query.tcp if tcp else dns.query.udp
        with _Call(self.request_event, "DNS", name) as call:
            response = send(query, self.where, timeout=self.timeout, port=self.port)
            call.response_length = len(response.to_wire())
            check(response)


def expect_address(address: str) -> DnsCheck:
    """The answer is NOERROR and holds exactly ``address``."""

    def check(response: dns.message.Message) -> None:
        found = _addresses(response)
        if found != [address]:
            raise WrongAnswer(f"expected {address}, got {found or _rcode(response)}")

    return check


def expect_nxdomain(response: dns.message.Message) -> None:
    """The name does not exist in the zone: NXDOMAIN, from the authority itself."""
    if response.rcode() != dns.rcode.NXDOMAIN:
        raise WrongAnswer(f"expected NXDOMAIN, got {_rcode(response)}")


def _addresses(response: dns.message.Message) -> list[str]:
    if response.rcode() != dns.rcode.NOERROR:
        return []
    return sorted(
        rdata.to_text()
        for rrset in response.answer
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for rdata in rrset
    )


def _rcode(response: dns.message.Message) -> str:
    return dns.rcode.to_text(response.rcode())
