"""Where the load goes: the same variables the README documents for every service.

Defaults are the host-side ports of the stack on 127.0.0.1; inside compose the
locust containers set the service names and in-network ports (web:8080,
tcp-echo:8000, udp-echo:9999, resolver:8053, dns:53). Load is only ever sent to
loopback or to the stack's own containers: any other host is refused at start.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

# the compose service names: the only non-loopback hosts a load run may target
STACK_HOSTS = frozenset({"web", "tcp-echo", "udp-echo", "resolver", "dns", "localhost"})


class TargetError(ValueError):
    """A target variable names a host or port the load suite must not use."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class Targets:
    web: Target
    tcp_echo: Target
    udp_echo: Target
    resolver: Target
    dns: Target

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Targets:
        env = os.environ if env is None else env
        return cls(
            web=_target("WEB", 8080, env),
            tcp_echo=_target("TCP_ECHO", 8000, env),
            udp_echo=_target("UDP_ECHO", 9999, env),
            resolver=_target("RESOLVER", 8053, env),
            dns=_target("DNS", 1053, env),
        )


def _target(prefix: str, default_port: int, env: Mapping[str, str]) -> Target:
    host = env.get(f"{prefix}_HOST", "").strip() or "127.0.0.1"
    raw_port = env.get(f"{prefix}_PORT", "").strip() or str(default_port)
    try:
        port = int(raw_port)
    except ValueError:
        raise TargetError(f"{prefix}_PORT={raw_port!r}: expected a port number") from None
    if not 1 <= port <= 65535:
        raise TargetError(f"{prefix}_PORT={port}: must be 1..65535")
    if not is_stack_host(host):
        raise TargetError(
            f"{prefix}_HOST={host!r}: load goes only to loopback or the stack's containers "
            f"({', '.join(sorted(STACK_HOSTS))})"
        )
    return Target(host, port)


def is_stack_host(host: str) -> bool:
    """True for a loopback address or one of the stack's compose service names."""
    if host in STACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
