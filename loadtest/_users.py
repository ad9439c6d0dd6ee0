"""Abstract base Users: each builds its client and knows its target; tasks live elsewhere.

Targets come from the README's variables (``_targets``); ``LOAD_TIMEOUT`` (seconds,
default 2) bounds every protocol call and HTTP request, so a silent service shows
as failures, never as a hung run. ``-H/--host`` (or the web UI's host field) points
``WebUser`` at another front; every other user keeps its own variable.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, User, between

from loadtest._clients import DnsClient, TcpEchoClient, UdpEchoClient
from loadtest._targets import TargetError, Targets

try:
    TARGETS = Targets.from_env()
    TIMEOUT = float(os.environ.get("LOAD_TIMEOUT", "").strip() or 2.0)
except (TargetError, ValueError) as err:
    raise SystemExit(f"loadtest: {err}") from None

# think time between tasks: enough for 30 users to load the stack, not to flood it
THINK = between(0.2, 1.0)


class FrontUser(FastHttpUser):
    abstract = True
    host = TARGETS.web.url
    wait_time = THINK
    network_timeout = TIMEOUT
    connection_timeout = TIMEOUT


class ResolverApiUser(FastHttpUser):
    abstract = True
    # absolute URLs, so that -H (meant for the front) cannot redirect this user
    host = TARGETS.resolver.url
    resolve_url = f"{TARGETS.resolver.url}/resolve"
    healthz_url = f"{TARGETS.resolver.url}/healthz"
    wait_time = THINK
    network_timeout = TIMEOUT
    connection_timeout = TIMEOUT


class TcpSocketUser(User):
    abstract = True
    wait_time = THINK

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.client = TcpEchoClient(environment.events.request, TARGETS.tcp_echo, TIMEOUT)

    def on_start(self) -> None:
        self.client.connect()  # one persistent connection per user, reused by every echo

    def on_stop(self) -> None:
        self.client.close()


class UdpSocketUser(User):
    abstract = True
    wait_time = THINK

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.client = UdpEchoClient(environment.events.request, TARGETS.udp_echo, TIMEOUT)

    def on_stop(self) -> None:
        self.client.close()


class DnsQueryUser(User):
    abstract = True
    wait_time = THINK

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.client = DnsClient(environment.events.request, TARGETS.dns, TIMEOUT)
