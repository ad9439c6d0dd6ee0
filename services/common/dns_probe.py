"""The stack's DNS question and its verdict, written once: is the ``dns`` service answering?

``probe.polyloop.test A`` must come back NOERROR with ``192.0.2.10`` (the zone file's own
record). The name is the stack's probe mark (``services.common.probes``): the dns service
counts these queries apart, never as served. The dns container's healthcheck asks it with
``ask`` (a blocking socket), the front's readiness check and its replica watcher with
``ask_async`` (on the asyncio loop), its steady client with ``question`` and ``verdict``;
all return ``verdict``'s answer: None when healthy, else what is wrong (an answer that
cannot be read included). A server that does not answer raises instead, ``OSError`` (a
silent one ``TimeoutError``), so a caller can tell silence from a wrong answer.

The question and the answer are read and written here, on the wire (RFC 1035 section 4),
with the standard library alone: the healthcheck is a process of its own every interval,
and importing dnspython cost it ~85 ms of CPU each time (more than the rest of the check).
Only what the verdict needs is read: the header, the question echoed, the answers' A
records (names compressed or not); anything else in the answer is skipped.

Try it (dns running on 1053)::

    python -c "from services.common.dns_probe import ask; print(ask('127.0.0.1', 1053, 2))"
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time

from services.common import probes

NAME = probes.NAME
ADDRESS = probes.ADDRESS

HEADER = struct.Struct("!HHHHHH")  # id, flags, question/answer/authority/additional counts
RR = struct.Struct("!HHIH")  # type, class, TTL, data length
A, IN = 1, 1
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def question(ident: int | None = None) -> bytes:
    """``NAME`` A IN, recursion desired (as dig asks), with ``ident`` (random by default)."""
    ident = int.from_bytes(os.urandom(2), "big") if ident is None else ident
    labels = b"".join(bytes([len(label)]) + label for label in NAME.encode().split(b"."))
    return HEADER.pack(ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", A, IN)


def verdict(sent: bytes, answer: bytes) -> str | None:
    """None when ``answer`` (to the question ``sent``) is NOERROR with ``ADDRESS``, else what
    is wrong with it."""
    try:
        ident, flags, questions, answers, _, _ = HEADER.unpack_from(answer)
        if ident != HEADER.unpack_from(sent)[0] or not flags & 0x8000:
            return "answered something that is not an answer to the question"
        rcode = flags & 0x000F
        if rcode:
            return f"answered {RCODES.get(rcode, rcode)}"
        offset = HEADER.size
        for _ in range(questions):
            offset = _skip_name(answer, offset) + 4
        addresses = set()
        for _ in range(answers):
            offset = _skip_name(answer, offset)
            rtype, rclass, _, length = RR.unpack_from(answer, offset)
            offset += RR.size
            if rtype == A and rclass == IN and length == 4:
                addresses.add(socket.inet_ntoa(answer[offset : offset + 4]))
            offset += length
    except (struct.error, IndexError, ValueError):
        return "answered something unreadable"
    if ADDRESS not in addresses:
        return f"answered {sorted(addresses)}, not {ADDRESS}"
    return None


def _skip_name(message: bytes, offset: int) -> int:
    """The offset just past the name at ``offset`` (labels, ending at the root or a pointer)."""
    while True:
        length = message[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:  # a compression pointer: the name ends with it
            return offset + 2
        if length > 63:
            raise ValueError("not a label")
        offset += 1 + length


def ask(host: str, port: int, timeout: float) -> str | None:
    """``verdict`` of the answer from ``host:port`` over UDP, blocking up to `timeout`."""
    sent = question()
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # connected, on a port of its own: the one datagram that comes back is that server's
    # answer to this question, or something the verdict calls wrong
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        sock.send(sent)
        sock.settimeout(max(0.0, deadline - time.monotonic()))
        answer = sock.recv(65535)  # silence: TimeoutError (socket.timeout on PyPy 3.9)
    return verdict(sent, answer)


class _OneAnswer(asyncio.DatagramProtocol):
    def __init__(self, sent: bytes) -> None:
        self.sent = sent
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def ask_async(host: str, port: int, timeout: float) -> str | None:
    """``ask`` on the running asyncio loop."""
    sent = question()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _OneAnswer(sent), remote_addr=(host, port)
    )
    try:
        transport.sendto(sent)
        try:
            async with asyncio.timeout(timeout):
                answer = await protocol.answer
        except TimeoutError:
            raise TimeoutError(f"no DNS answer within {timeout:g} s") from None
    finally:
        transport.close()
    return verdict(sent, answer)
