"""The stack catalogue: the five services, written once.

Everything that lists the services derives from ``SERVICES``: the front's backends, what it
scrapes and where it sends faults, the dashboard (``GET /api/stack``), ``devstack``, Locust's
targets, the tests' addresses; a test checks compose.yaml, the Kubernetes manifests and the
docs against it. Ports are the README's defaults; each is overridable by its variable.

    >>> from services.common.catalogue import SERVICES, service
    >>> [s.name for s in SERVICES]
    ['tcp-echo', 'udp-echo', 'resolver', 'dns', 'web']
    >>> service("dns").port_variable, service("dns").port, service("dns").container_port
    ('DNS_PORT', 1053, 53)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    """One service of the stack, as every tool that lists the services sees it."""

    name: str  # the compose service name, the label of every metric and every API path
    loop: str  # the event loop it runs, as the dashboard names it
    framework: str
    port: int  # the host port (and the listen port of a local process): README default
    container_port: int  # its port inside the compose network
    transport: str  # "tcp", "udp" or "udp+tcp"
    metrics_port: int  # its control port (metrics, faults, stalls): never published
    depends_on: tuple[str, ...] = ()
    pypy: bool = False  # also runs on PyPy (compose.pypy.yaml)
    backend: bool = True  # called by the front (every service but the front itself)
    # what its block fault can block the loop with (services.common.faults' block_kind)
    block_kinds: tuple[str, ...] = ("sleep", "cpu")

    @property
    def package(self) -> str:
        """The package under ``services/``: ``tcp_echo``."""
        return self.name.replace("-", "_")

    @property
    def prefix(self) -> str:
        """The prefix of its variables: ``TCP_ECHO``."""
        return self.package.upper()

    @property
    def host_variable(self) -> str:
        return f"{self.prefix}_HOST"

    @property
    def port_variable(self) -> str:
        return f"{self.prefix}_PORT"

    @property
    def metrics_port_variable(self) -> str:
        return f"{self.prefix}_METRICS_PORT"

    @property
    def module(self) -> str:
        """What ``python -m`` runs: ``services.tcp_echo``."""
        return f"services.{self.package}"

    @property
    def healthcheck(self) -> str:
        """The module compose runs as the container's healthcheck (exit 0 = healthy)."""
        return f"{self.module}.healthcheck"


# in the map's order: the three backends the front calls, the DNS server behind the
# resolver, then the front itself
SERVICES: tuple[Service, ...] = (
    Service("tcp-echo", "Twisted reactor", "Twisted", 8000, 8000, "tcp", 9101, pypy=True),
    Service("udp-echo", "asyncio event loop", "asyncio", 9999, 9999, "udp", 9102),
    Service(
        "resolver",
        "gevent hub",
        "gevent",
        8053,
        8053,
        "tcp",
        9103,
        depends_on=("dns",),
        block_kinds=("sleep", "cpu", "sync_dns"),  # a lookup over the un-patched socket
    ),
    Service(
        "dns", "Twisted reactor (Names)", "Twisted Names", 1053, 53, "udp+tcp", 9104, pypy=True
    ),
    Service(
        "web",
        "aiohttp on asyncio",
        "aiohttp",
        8080,
        8080,
        "tcp",
        9105,
        depends_on=("tcp-echo", "udp-echo", "resolver", "dns"),
        backend=False,
    ),
)

BY_NAME: dict[str, Service] = {s.name: s for s in SERVICES}
NAMES: tuple[str, ...] = tuple(BY_NAME)
BACKENDS: tuple[Service, ...] = tuple(s for s in SERVICES if s.backend)


def service(name: str) -> Service:
    """The service called ``name`` (its compose name, or its package name)."""
    return BY_NAME[name.replace("_", "-")]


def start_order() -> tuple[Service, ...]:
    """Every service after the ones it depends on (compose's ``depends_on``)."""
    done: dict[str, Service] = {}
    while len(done) < len(SERVICES):
        for s in SERVICES:
            if s.name not in done and all(d in done for d in s.depends_on):
                done[s.name] = s
                break
        else:  # pragma: no cover - the table above has no cycle
            raise ValueError("the catalogue's depends_on has a cycle")
    return tuple(done.values())
