"""Send one datagram to a UDP echo from a chosen source port; print whether it replied.

Stdlib only, so it also runs piped into any Python (e.g. inside another container):

    python -m services.udp_echo.probe 127.0.0.1 9999 --source-port 999
    python - udp-echo 9999 --source-port 999 < services/udp_echo/probe.py

Prints one JSON line: ``{"replied": true|false, "sent": ..., "source_port": ...,
"host", "port", "bytes", "elapsed_ms", "error"}``. It exists to test the echo's
privileged-port guard from inside the compose network, where the host's docker-proxy
cannot rewrite the source port. Exit status 0 when the probe was carried out (whatever
the answer), 2 when it could not be (bad host, port not bindable).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time


def probe(host: str, port: int, source_port: int, timeout: float = 1.0) -> dict:
    """Send one random payload from `source_port` (0 = any) and wait `timeout` s for it back."""
    result: dict = {
        "replied": False,
        "sent": False,
        "host": host,
        "port": port,
        "source_port": source_port,
        "bytes": 0,
        "elapsed_ms": None,
        "error": None,
    }
    payload = b"probe " + os.urandom(8).hex().encode()
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", source_port))
            result["source_port"] = sock.getsockname()[1]
            sock.connect(address)
            sock.settimeout(timeout)
            started = time.monotonic()
            sock.send(payload)
            result["sent"] = True
            deadline = started + timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data = sock.recv(65535)
                except (TimeoutError, ConnectionRefusedError):
                    break
                if data == payload:
                    result["replied"] = True
                    result["bytes"] = len(data)
                    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 3)
                    break
    except OSError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


def port_number(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0..65535)")
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=port_number)
    parser.add_argument("--source-port", type=port_number, required=True, help="0 = any port")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for a reply")
    args = parser.parse_args(argv)
    result = probe(args.host, args.port, args.source_port, args.timeout)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0 if result["sent"] else 2


if __name__ == "__main__":
    sys.exit(main())
