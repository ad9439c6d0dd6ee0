"""Is udp-echo answering? One real echo round trip to 127.0.0.1:UDP_ECHO_PORT (a random
payload, marked as the stack's own probe, must come back unchanged), two tries of half
``healthcheck.TIMEOUT`` each (each longer than any block a fault can put on the loop: a
datagram waits in the socket meanwhile; the second try is for one that was lost). A TCP
connect would prove nothing for UDP.

Run: ``python -m services.udp_echo.healthcheck`` — exit 0 if healthy, else 1 and one JSON
line saying why (compose uses it as the container's healthcheck; the contract is in
services/common/healthcheck.py).
"""

from __future__ import annotations

import os
import socket
import sys
import time

from services.common import healthcheck, probes

TRIES = 2
TIMEOUT = healthcheck.TIMEOUT / TRIES


def try_echo(host: str, port: int, timeout: float = TIMEOUT) -> None:
    """Send a random payload to host:port; raise OSError unless it comes back within `timeout`."""
    # marked: udp-echo counts it as the stack's own probe, never as served
    payload = probes.marked(b"healthcheck " + os.urandom(8).hex().encode())
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # connected: only the service's replies are delivered, and a closed port fails fast
        sock.connect((host, port))
        sock.send(payload)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(65535) == payload:
                return
    raise TimeoutError(f"no echo within {timeout}s")


def check(
    port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT, tries: int = TRIES
) -> str | None:
    """None when one of `tries` payloads comes back unchanged, else the last failure."""
    reason = "no try made"
    for _ in range(tries):
        try:
            try_echo(host, port, timeout)
        except OSError as exc:  # timeout, refused: try again, then report
            reason = f"no echo from {host}:{port} in {tries} tries: {type(exc).__name__}: {exc}"
            continue
        return None
    return reason


if __name__ == "__main__":
    sys.exit(healthcheck.main("udp-echo", check))
