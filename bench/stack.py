"""The running stack for the HTTP, DNS and resolver cells: the five services started as
local processes on free 127.0.0.1 ports, wired to each other by their env variables.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from bench.procs import Servers, cores, free_port, tcp_ready, udp_echo_ready

PY = sys.executable


@dataclass(frozen=True)
class Ports:
    tcp_echo: int
    udp_echo: int
    dns: int
    resolver: int
    web: int

    def env(self) -> dict[str, str]:
        """What every service is told: where the others are (LOG_LEVEL quiet under load)."""
        env = {"LISTEN_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", "UDP_ECHO_STATS_INTERVAL": "0"}
        for name in ("tcp_echo", "udp_echo", "dns", "resolver", "web"):
            env[f"{name.upper()}_HOST"] = "127.0.0.1"
            env[f"{name.upper()}_PORT"] = str(getattr(self, name))
        return env


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def dns_answers(port: int) -> bool:
    """A real query for www.polyloop.test A, built by hand (no dnspython needed here)."""
    query = (
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        + b"\x03www\x08polyloop\x04test\x00"
        + b"\x00\x01\x00\x01"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendto(query, ("127.0.0.1", port))
            reply = sock.recv(2048)
        except OSError:
            return False
    return reply[:2] == b"\x12\x34" and reply[3] & 0x0F == 0


def start(
    servers: Servers, only: tuple[str, ...], extra_env: dict[str, str] | None = None
) -> Ports:
    """Start the named services (and nothing else) and wait until each answers."""
    ports = Ports(*(free_port() for _ in range(5)))
    env = {**ports.env(), **(extra_env or {})}
    checks = {
        "dns": lambda: dns_answers(ports.dns),
        "tcp_echo": lambda: tcp_ready(ports.tcp_echo),
        "udp_echo": lambda: udp_echo_ready(ports.udp_echo),
        "resolver": lambda: http_ok(f"http://127.0.0.1:{ports.resolver}/healthz"),
        "web": lambda: http_ok(f"http://127.0.0.1:{ports.web}/healthz"),
    }
    for name in ("dns", "tcp_echo", "udp_echo", "resolver", "web"):
        if name in only:
            servers.start(name, [PY, "-m", f"services.{name}"], env, cores()[0])
    for name in ("dns", "tcp_echo", "udp_echo", "resolver", "web"):
        if name in only:
            servers.wait_until(name, checks[name], timeout=30)
    return ports


def post_json(url: str, document: dict, timeout: float) -> dict:
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        url,
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())
