"""Is tcp-echo answering? An echo round trip to 127.0.0.1:TCP_ECHO_PORT.

Run: ``python -m services.tcp_echo.healthcheck`` — exit 0 if healthy, 1 otherwise
(compose uses it as the container's healthcheck).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time

from services.common.config import ConfigError, env_port
from services.common.logging import setup_logging

TIMEOUT = 2.0


def echo_round_trip(host: str, port: int, timeout: float = TIMEOUT) -> bool:
    """Send a random payload and expect exactly it back within `timeout` seconds."""
    payload = b"healthcheck " + os.urandom(8).hex().encode()
    deadline = time.monotonic() + timeout
    received = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(payload)
            while len(received) < len(payload):
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(len(payload) - len(received))
                if not chunk:
                    break
                received += chunk
    except OSError:
        return False
    return received == payload


def main() -> int:
    setup_logging("tcp-echo-healthcheck")
    log = logging.getLogger("tcp_echo.healthcheck")
    try:
        port = env_port("TCP_ECHO_PORT", 8000)
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return 1
    if echo_round_trip("127.0.0.1", port):
        return 0
    log.error("no echo from 127.0.0.1:%d within %ss", port, TIMEOUT)
    return 1


if __name__ == "__main__":
    sys.exit(main())
