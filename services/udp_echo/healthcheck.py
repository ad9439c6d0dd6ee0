"""Compose healthcheck: ``python -m services.udp_echo.healthcheck``.

One real echo round trip to 127.0.0.1:UDP_ECHO_PORT (a random payload must come back
unchanged), two tries of one second each. Exit 0 when healthy, 1 otherwise, with a
JSON log line saying why. A TCP connect would prove nothing for a UDP service.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time

from services.common.config import ConfigError, env_port
from services.common.logging import setup_logging

log = logging.getLogger("services.udp_echo.healthcheck")

TRIES = 2
TIMEOUT = 1.0


def try_echo(host: str, port: int, timeout: float = TIMEOUT) -> None:
    """Send a random payload to host:port; raise OSError unless it comes back within `timeout`."""
    payload = b"healthcheck " + os.urandom(8).hex().encode()
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


def echo_round_trip(host: str, port: int, timeout: float = TIMEOUT, tries: int = TRIES) -> bool:
    """True when one of `tries` payloads sent to host:port comes back unchanged."""
    for _ in range(tries):
        try:
            try_echo(host, port, timeout)
        except OSError:
            continue
        return True
    return False


def main() -> int:
    setup_logging("udp-echo-healthcheck", "WARNING")
    try:
        port = env_port("UDP_ECHO_PORT", 9999)
    except ConfigError as exc:
        log.error("invalid configuration", extra={"error": str(exc)})
        return 1
    error = ""
    for _ in range(TRIES):
        try:
            try_echo("127.0.0.1", port)
        except OSError as exc:  # timeout, refused: try again, then report
            error = f"{type(exc).__name__}: {exc}"
            continue
        return 0
    log.error("udp echo unhealthy", extra={"port": port, "tries": TRIES, "error": error})
    return 1


if __name__ == "__main__":
    sys.exit(main())
