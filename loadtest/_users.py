"""Abstract base Users: each builds its client and knows its target; tasks live elsewhere.

Where each base User sends its load is set once per Locust process, at its ``init`` event
(``hooks.py`` calls ``aim``): the service's target from ``_targets`` and ``LOAD_TIMEOUT``
(seconds, default 2), which bounds every protocol call and HTTP request, so a silent service
shows as failures, never as a hung run. ``-H/--host`` (or the web UI's host field) points
``WebUser`` at another front; every other user keeps its own variable.
"""

from __future__ import annotations

from collections.abc import Iterable

from locust import FastHttpUser, User, between

from loadtest._clients import DnsClient, TcpEchoClient, UdpEchoClient
from loadtest._targets import Target, Targets

# think time between tasks: enough for 30 users to load the stack, not to flood it
THINK = between(0.2, 1.0)


class FrontUser(FastHttpUser):
    abstract = True
    service = "web"
    wait_time = THINK


class ResolverApiUser(FastHttpUser):
    abstract = True
    service = "resolver"
    wait_time = THINK
    resolve_url = healthz_url = ""  # absolute, so that -H (meant for the front) cannot redirect it


class _SocketUser(User):
    abstract = True
    service = ""
    wait_time = THINK
    target: Target
    timeout: float


class TcpSocketUser(_SocketUser):
    abstract = True
    service = "tcp-echo"

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.client = TcpEchoClient(environment.events.request, self.target, self.timeout)

    def on_start(self) -> None:
        self.client.connect()  # one persistent connection per user, reused by every echo

    def on_stop(self) -> None:
        self.client.close()


class UdpSocketUser(_SocketUser):
    abstract = True
    service = "udp-echo"

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.client = UdpEchoClient(environment.events.request, self.target, self.timeout)

    def on_stop(self) -> None:
        self.client.close()


class DnsQueryUser(_SocketUser):
    abstract = True
    service = "dns"

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.client = DnsClient(environment.events.request, self.target, self.timeout)


def aim(targets: Targets, timeout: float) -> None:
    """Point every base User at its service's target, with ``timeout`` on every call."""
    for base in (FrontUser, ResolverApiUser):
        base.host = targets[base.service].url
        base.network_timeout = base.connection_timeout = timeout
    ResolverApiUser.resolve_url = f"{ResolverApiUser.host}/resolve"
    ResolverApiUser.healthz_url = f"{ResolverApiUser.host}/healthz"
    for base in (TcpSocketUser, UdpSocketUser, DnsQueryUser):
        base.target = targets[base.service]
        base.timeout = timeout


def with_a_task(
    users: Iterable[type[User]], tags: set[str] | None, excluded: set[str] | None
) -> list[type[User]]:
    """The Users that ``--tags``/``--exclude-tags`` leave at least one task: Locust alone would
    start a User left with none and fail, so ``--tags dns`` runs only ``DnsUser``."""
    return [user for user in users if _has_a_task(user, tags, excluded)]


def _has_a_task(user: type[User], tags: set[str] | None, excluded: set[str] | None) -> bool:
    # the same rule as Locust's filter_tasks_by_tags, for the Users' own @task functions
    for task in user.tasks:
        task_tags = getattr(task, "locust_tag_set", set())
        if tags is not None and not task_tags & tags:
            continue
        if excluded is not None and task_tags & excluded:
            continue
        return True
    return False
