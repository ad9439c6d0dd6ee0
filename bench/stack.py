"""The running stack for the HTTP, DNS and resolver cells: the five services started as
local processes on free 127.0.0.1 ports (each service's port and metrics port), wired to
each other by their env variables.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field

from bench.procs import Servers, cores, free_port
from devstack import SERVICES
from services.common import catalogue


@dataclass(frozen=True)
class Ports:
    """Each service's port, by package name, and its metrics port by service name."""

    tcp_echo: int
    udp_echo: int
    dns: int
    resolver: int
    web: int
    metrics: dict[str, int] = field(default_factory=dict)

    @classmethod
    def free(cls) -> Ports:
        return cls(
            **{s.package: free_port() for s in catalogue.SERVICES},
            metrics={s.name: free_port() for s in catalogue.SERVICES},
        )

    def env(self) -> dict[str, str]:
        """What every service is told: where the others are (LOG_LEVEL quiet under load)."""
        env = {"LISTEN_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", "UDP_ECHO_STATS_INTERVAL": "0"}
        for s in catalogue.SERVICES:
            env[s.host_variable] = "127.0.0.1"
            env[s.port_variable] = str(getattr(self, s.package))
            env[s.metrics_port_variable] = str(self.metrics[s.name])
        return env


def start(
    servers: Servers,
    only: tuple[str, ...],
    extra_env: dict[str, str] | None = None,
    *,
    pinned: bool = True,
) -> Ports:
    """Start the named services (and nothing else), each once its own healthcheck passes;
    on the server core, unless ``pinned`` is False (then on every core)."""
    ports = Ports.free()
    env = {**ports.env(), **(extra_env or {})}
    for name in SERVICES:  # devstack's start order: dependencies first
        if name in only:
            servers.start_service(name, env, cores()[0] if pinned else None)
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
