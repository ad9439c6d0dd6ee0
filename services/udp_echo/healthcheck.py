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


def echo_round_trip(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """True when a random payload sent to host:port comes back unchanged within `timeout`."""
    payload = b"healthcheck " + os.urandom(8).hex().encode()
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # connected: only the service's replies are delivered, and a closed port fails fast
        sock.connect((host, port))
        sock.send(payload)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(65535) == payload:
                return True
    return False


def check(port: int, tries: int = 2, timeout: float = 1.0) -> bool:
    error = ""
    for _ in range(tries):
        try:
            if echo_round_trip(port, timeout=timeout):
                return True
        except OSError as exc:  # timeout, refused: try again, then report
            error = f"{type(exc).__name__}: {exc}"
    log.error("udp echo unhealthy", extra={"port": port, "tries": tries, "error": error})
    return False


def main() -> int:
    setup_logging("udp-echo-healthcheck", "WARNING")
    try:
        port = env_port("UDP_ECHO_PORT", 9999)
    except ConfigError as exc:
        log.error("invalid configuration", extra={"error": str(exc)})
        return 1
    return 0 if check(port) else 1


if __name__ == "__main__":
    sys.exit(main())
