"""Where the running stack is, read from the same variables the README documents.

Integration and browser tests reach every service on the host's published ports
(127.0.0.1 by default). When a service does not answer, the test fails with a message
saying how to start the stack; outside CI it is skipped instead, and says so. Under
``CI=true`` nothing is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.common.catalogue import SERVICES, service

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
HOW_TO_START = "start the stack first: `make up` (or run `make test`, which brings it up)"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _port(name: str) -> int:
    """Service ``name``'s host port: its variable, else the catalogue's default."""
    s = service(name)
    return int(_env(s.port_variable, str(s.port)))


@dataclass(frozen=True)
class Stack:
    """Host-side addresses of every service (the catalogue's defaults, or their variables)."""

    bind: str = _env("POLYLOOP_BIND", "127.0.0.1")
    web_port: int = _port("web")
    tcp_echo_port: int = _port("tcp-echo")
    udp_echo_port: int = _port("udp-echo")
    resolver_port: int = _port("resolver")
    dns_port: int = _port("dns")

    @property
    def host(self) -> str:
        # a wildcard bind is reached on loopback; tests never target another address
        return "127.0.0.1" if self.bind in {"0.0.0.0", "", "::"} else self.bind

    def address_env(self) -> dict[str, str]:
        """The address variables of every service, for a client the tests start (Locust)."""
        env = {}
        for s in SERVICES:
            env[s.host_variable] = self.host
            env[s.port_variable] = str(getattr(self, f"{s.package}_port"))
        return env

    @property
    def web_url(self) -> str:
        return f"http://{self.host}:{self.web_port}"

    @property
    def resolver_url(self) -> str:
        return f"http://{self.host}:{self.resolver_port}"


def call(stack: Stack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to the front's JSON API (``body`` sent as JSON): its status and JSON
    answer, an error status included."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{stack.web_url}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:  # its socket, closed here (an open one is a ResourceWarning at exit)
            return exc.code, json.load(exc)


def unavailable(what: str) -> None:
    """Fail (in CI) or skip (elsewhere, saying so) because `what` is not running."""
    message = f"{what} is not answering; {HOW_TO_START}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(f"{message} (skipped outside CI; CI=true fails instead)")


def tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def stack_mode() -> str:
    """'docker' when the stack runs in containers, 'local' for local processes, else ''."""
    state = ROOT / ".run" / "mode"
    return state.read_text().strip() if state.exists() else ""


def compose_env() -> dict[str, str]:
    """The environment for `docker compose`: the compose files `make up` started the stack
    with (.run/compose-file, e.g. compose.yaml:compose.pypy.yaml) unless COMPOSE_FILE is set,
    so a test restarting a service restarts the variant that runs. The admin token needs
    nothing: compose reads it from .env (written by `make up`), as any user's command does."""
    env = dict(os.environ)
    recorded = ROOT / ".run" / "compose-file"
    if not env.get("COMPOSE_FILE") and recorded.exists():
        env["COMPOSE_FILE"] = recorded.read_text().strip()
    return env


def compose(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run `docker compose ARGS` in the repo root (the project's compose files)."""
    if shutil.which("docker") is None:
        unavailable("docker")
    return subprocess.run(
        ["docker", "compose", *args],
        cwd=ROOT,
        env=compose_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )
