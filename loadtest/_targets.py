"""Where the load goes: each service of the stack catalogue, at the variables the README documents.

``<PREFIX>_HOST`` / ``<PREFIX>_PORT`` for every service of ``services.common.catalogue``
(``WEB_HOST``/``WEB_PORT``, ``TCP_ECHO_HOST``/..., defaults 127.0.0.1 and the README's host
ports); inside compose the locust containers set the service names and in-network ports
(web:8080, tcp-echo:8000, udp-echo:9999, resolver:8053, dns:53). Load is only ever sent to
loopback or to the stack's own containers: any other host stops the run at Locust's init.
Pure Python (no Locust), so tests import it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.common.catalogue import SERVICES

# the compose service names: the only non-loopback hosts a load run may target
STACK_HOSTS = frozenset({s.name for s in SERVICES} | {"localhost"})
DEFAULT_TIMEOUT = 2.0  # seconds: LOAD_TIMEOUT unset


class TargetError(ValueError):
    """A target variable names a host or port the load suite must not use."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


Targets = Mapping[str, Target]  # keyed by the catalogue's service names: "web", "tcp-echo"...


def from_env(env: Mapping[str, str] | None = None) -> Targets:
    """Every service's target, from its variables or the README's defaults."""
    env = os.environ if env is None else env
    return {s.name: _target(s.prefix, s.port, env) for s in SERVICES}


def timeout_from_env(env: Mapping[str, str] | None = None) -> float:
    """``LOAD_TIMEOUT``: seconds that bound every call of every user (default 2)."""
    env = os.environ if env is None else env
    raw = env.get("LOAD_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        timeout = float(raw)
    except ValueError:
        raise TargetError(f"LOAD_TIMEOUT={raw!r}: expected seconds, e.g. 2") from None
    if not 0 < timeout <= 60:
        raise TargetError(f"LOAD_TIMEOUT={raw}: must be in (0, 60] seconds")
    return timeout


def front_url(host_option: str | None, targets: Targets) -> str:
    """The front the run talks to: ``-H/--host`` when given (as Locust points ``WebUser``),
    else ``WEB_HOST``/``WEB_PORT``. Raises ``TargetError`` for a host outside the stack."""
    if host_option:
        check_host_option(host_option)
        return host_option.rstrip("/")
    return targets["web"].url


def check_host_option(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if not is_stack_host(host):
        raise TargetError(f"--host {url}: load goes only to loopback or the stack's containers")


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
