"""Is tcp-echo answering? A random payload sent to 127.0.0.1:TCP_ECHO_PORT must come back
whole, unchanged, within ``healthcheck.TIMEOUT`` (longer than any block a fault can put on
the reactor), marked as the stack's own probe (``services.common.probes``: never counted as
served).

A plain socket, not the book's ``EchoClient`` (services/tcp_echo/client.py, which its own
tests exercise): importing Twisted cost each healthcheck ~0.35 s of CPU, every interval.

Run: ``python -m services.tcp_echo.healthcheck`` — exit 0 if healthy, else 1 and one JSON
line saying why (compose uses it as the container's healthcheck; the contract is in
services/common/healthcheck.py).
"""

from __future__ import annotations

import os
import socket
import sys

from services.common import healthcheck, probes

TIMEOUT = healthcheck.TIMEOUT


def check(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> str | None:
    """None when the payload comes back unchanged, else what went wrong."""
    # marked: tcp-echo counts it as the stack's own probe, never as served
    payload = probes.marked(b"healthcheck " + os.urandom(8).hex().encode())
    echoed = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(payload)
            while len(echoed) < len(payload):
                chunk = sock.recv(len(payload) - len(echoed))
                if not chunk:
                    break
                echoed += chunk
    except OSError as exc:  # refused, reset, timed out (socket.timeout on PyPy 3.9)
        return f"no echo from {host}:{port} within {timeout}s: {exc!r}"
    if echoed != payload:
        return f"sent {len(payload)} bytes to {host}:{port}, got {echoed!r}"
    return None


if __name__ == "__main__":
    sys.exit(healthcheck.main("tcp-echo", check))
