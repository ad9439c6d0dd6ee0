"""The UDP socket's receive side: its buffer, sized for bursts, and what the kernel dropped.

Queries wait in the socket's receive buffer until the reactor reads them. The resolver asks
A and AAAA for up to 256 names at once: 512 datagrams in a few milliseconds, and Linux's
default buffer (``net.core.rmem_default``, 208 KiB) holds 256 small ones. While the dns
process waits for a core (a Locust run beside it), the rest of the burst was dropped before
Twisted saw it, and each lost question cost its name the request's whole budget. So the
buffer is asked for ``DNS_UDP_RECEIVE_BUFFER`` bytes: Linux doubles the request for its
bookkeeping and caps it at twice ``net.core.rmem_max`` (a host-wide setting, 208 KiB by
default: then 416 KiB, room for about 512 small queries; this is logged at start).

Drops are read from the kernel's own table, ``/proc/self/net/udp`` (the ``drops`` column of
the socket's row), at scrape time: ``polyloop_dns_udp_drops_total``.
"""

from __future__ import annotations

import socket
from pathlib import Path

PROC_NET = Path("/proc/self/net")


def size_buffer(sock: socket.socket, wanted: int) -> int:
    """Ask for a receive buffer of ``wanted`` bytes; the size the kernel gave (bytes)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def drops(port: int, proc_net: Path = PROC_NET) -> int | None:
    """Datagrams dropped at the UDP socket(s) bound to ``port`` in this network namespace,
    since they were opened; None where the kernel does not say (no /proc, no such socket)."""
    try:
        table = (proc_net / "udp").read_text() + (proc_net / "udp6").read_text()
    except OSError:
        return None
    suffix = f":{port:04X}"
    found = [
        int(fields[-1])
        for fields in map(str.split, table.splitlines())
        if len(fields) > 2 and fields[1].endswith(suffix) and fields[-1].isdigit()
    ]
    return sum(found) if found else None
