"""The running stack for the HTTP, DNS and resolver cells: the five services started as
local processes on free 127.0.0.1 ports, wired to each other by their env variables.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

from bench.procs import Servers, cores, free_port
from devstack import SERVICES


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


def start(
    servers: Servers, only: tuple[str, ...], extra_env: dict[str, str] | None = None
) -> Ports:
    """Start the named services (and nothing else), each once its own healthcheck passes."""
    ports = Ports(*(free_port() for _ in range(5)))
    env = {**ports.env(), **(extra_env or {})}
    for name in SERVICES:  # devstack's start order: dependencies first
        if name in only:
            servers.start_service(name, env, cores()[0])
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
