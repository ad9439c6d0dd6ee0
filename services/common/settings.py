"""Settings declared once: variable, default, range, meaning — parsing and docs follow.

A service's configuration is a frozen dataclass whose fields are declared with ``setting``;
``Settings.from_env()`` reads each from the environment once, at start, and a bad value
raises ``ConfigError`` naming the variable, so the start fails with one clear line::

    @dataclass(frozen=True)
    class TcpEchoConfig(Settings):
        max_connections: int = setting(
            "TCP_ECHO_MAX_CONNECTIONS", 1024, "beyond it, a new connection is closed at once",
            minimum=1, maximum=1_000_000,
        )

    TcpEchoConfig.from_env({"TCP_ECHO_MAX_CONNECTIONS": "lots"})
    # ConfigError: TCP_ECHO_MAX_CONNECTIONS='lots': expected an integer

The type comes from the default (``bool`` is written 0 or 1 in the environment; any other
type, such as ``Path``, is built from the string); ``choices`` closes a string to a set,
whatever its case; ``secret`` keeps a value out of every repr and log. A rule between
fields goes in ``check()``, which raises ``self.invalid(field, why)``. A group of
settings shared by several services (``ControlSettings``) is a ``Settings`` class of its
own, nested with ``group``; what every service reads (its address, log level, control port)
is ``services.common.config.ServiceConfig``, which each service's config extends.
``declared(cls)`` lists every ``Setting`` of a config: the configuration tables of
docs/configuration.md are generated from it (``python -m devstack.config_docs``).
Runs on PyPy 3.9 too: no 3.10+ syntax outside annotations.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from services.common.catalogue import Service

__all__ = ["ConfigError", "Setting", "Settings", "declare", "declared", "group", "setting"]


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use (the message names it)."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: its default, its bounds, what it means (one line)."""

    variable: str
    default: Any
    meaning: str
    kind: type = str  # bool, int, float, str, or a type built from the string (Path)
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False  # never in a repr, a log or an error message
    doc_default: str | None = None  # the default as the docs say it, when not the value
    # a variable naming a file that holds the value (Docker's ``_FILE`` convention, where a
    # Swarm secret is mounted), read when the variable itself is unset or blank
    file_variable: str | None = None

    def read(self, env: Mapping[str, str] | None = None) -> Any:
        """The value in ``env`` (default: ``os.environ``), or the content of the file that
        ``file_variable`` names, or the default when unset or blank."""
        env = os.environ if env is None else env
        raw = env.get(self.variable, "").strip()
        if raw == "" and self.file_variable is not None:
            raw = self._from_file(env.get(self.file_variable, "").strip())
        return self.default if raw == "" else self.parse(raw)

    def _from_file(self, path: str) -> str:
        if not path:
            return ""
        try:
            with open(path, encoding="utf-8") as file:
                return file.read(4096).strip()
        except OSError as exc:  # its name, never its content
            raise ConfigError(f"{self.file_variable}={path!r}: {exc.strerror}") from None

    def parse(self, raw: str) -> Any:
        """``raw`` as this setting's type, within its bounds, or ``ConfigError`` naming it."""
        shown = "<secret>" if self.secret else repr(raw)
        if self.kind is bool:
            if raw not in ("0", "1"):
                raise ConfigError(f"{self.variable}={shown}: expected 0 or 1")
            return raw == "1"
        if self.kind is int or self.kind is float:
            try:
                value = self.kind(raw)
            except ValueError:
                expected = "an integer" if self.kind is int else "a number"
                raise ConfigError(f"{self.variable}={shown}: expected {expected}") from None
            if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
                raise ConfigError(f"{self.variable}={shown}: expected a finite number")
            if self.minimum is not None and value < self.minimum:
                raise ConfigError(f"{self.variable}={value}: must be >= {_number(self.minimum)}")
            if self.maximum is not None and value > self.maximum:
                raise ConfigError(f"{self.variable}={value}: must be <= {_number(self.maximum)}")
            return value
        if self.choices:
            for choice in self.choices:  # case does not matter: the declared spelling wins
                if raw.lower() == choice.lower():
                    return choice
            raise ConfigError(f"{self.variable}={shown}: expected one of {', '.join(self.choices)}")
        return raw if self.kind is str else self.kind(raw)

    @property
    def default_text(self) -> str:
        """The default as the docs show it: ``1024``, ``0.5``, ``asyncio``, ``unset``."""
        if self.doc_default is not None:
            return self.doc_default
        if self.default is None or self.default == "":
            return "unset"
        if self.kind is bool:
            return "1" if self.default else "0"
        if self.kind is float and float(self.default).is_integer():
            return str(int(self.default))
        return str(self.default)

    @property
    def range_text(self) -> str:
        """The accepted values as the docs show them: ``1..65535``, ``asyncio, uvloop``."""
        if self.kind is bool:
            return "0, 1"
        if self.choices:
            return ", ".join(self.choices)
        if self.minimum is None and self.maximum is None:
            return ""
        low = "" if self.minimum is None else _number(self.minimum)
        high = "" if self.maximum is None else _number(self.maximum)
        return f"{low}..{high}"


def _number(value: float) -> str:
    """``65507``, ``16777216``, ``0.05``: as written, never ``1.67772e+07``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def setting(
    variable: str,
    default: Any,
    meaning: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] = (),
    secret: bool = False,
    kind: type | None = None,
    doc_default: str | None = None,
) -> Any:
    """A dataclass field read from ``variable`` (the type follows ``default`` unless given)."""
    declared = Setting(
        variable,
        default,
        meaning,
        kind=kind or type(default),
        minimum=minimum,
        maximum=maximum,
        choices=choices,
        secret=secret,
        doc_default=doc_default,
    )
    return declare(declared)


def declare(declared: Setting) -> Any:
    """A dataclass field for a ``Setting`` declared elsewhere (shared by several services)."""
    return dataclasses.field(
        default=declared.default, repr=not declared.secret, metadata={"setting": declared}
    )


def group(cls: type) -> Any:
    """A dataclass field holding a nested ``Settings`` group, read with its parent."""
    return dataclasses.field(default_factory=cls, metadata={"group": cls})


S = TypeVar("S", bound="Settings")


class Settings:
    """Base of the frozen config dataclasses: ``from_env`` reads every declared field."""

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str] | None = None) -> S:
        """Read the variables; raise ``ConfigError`` naming the first bad one."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "setting" in f.metadata:
                values[f.name] = f.metadata["setting"].read(env)
            elif "group" in f.metadata:
                values[f.name] = f.metadata["group"].from_env(env)
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        """Rules beyond one value's type and range; raise ``self.invalid(...)``. None here."""

    def invalid(self, field: str, why: str) -> ConfigError:
        """The error for ``field``'s value, naming its variable: ``DNS_ZONE_FILE='x': why``."""
        fields = {f.name: f for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        declared = fields[field].metadata["setting"]
        value = "<secret>" if declared.secret else repr(str(getattr(self, field)))
        return ConfigError(f"{declared.variable}={value}: {why}")


def declared(cls: type) -> Iterator[Setting]:
    """Every ``Setting`` of a config class, its groups' included, in declaration order."""
    for f in dataclasses.fields(cls):
        if "setting" in f.metadata:
            yield f.metadata["setting"]
        elif "group" in f.metadata:
            yield from declared(f.metadata["group"])


# ---- the settings several services share ----------------------------------------------------

LISTEN_HOST = Setting(
    "LISTEN_HOST", "127.0.0.1", "interface each service binds (compose sets `0.0.0.0`)"
)
LOG_LEVEL = Setting(
    "LOG_LEVEL",
    "INFO",
    "every service: JSON lines on stdout, from this level up",
    choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
)
ADMIN_TOKEN = Setting(
    "POLYLOOP_ADMIN_TOKEN",
    None,
    "the stack's shared secret that changes faults (`Authorization: Bearer`); unset, and no"
    " file named by `POLYLOOP_ADMIN_TOKEN_FILE` (a Swarm secret): faults cannot be changed",
    secret=True,
    doc_default="unset (`make up` writes one into `.env`)",
    file_variable="POLYLOOP_ADMIN_TOKEN_FILE",
)


def port(service: Service) -> Setting:
    """``<SERVICE>_PORT``: where ``service`` listens (a local process) or is reached."""
    inside = (
        "" if service.container_port == service.port else f" ({service.container_port} in compose)"
    )
    return Setting(
        service.port_variable,
        service.port,
        f"{service.name}'s port{inside}",
        kind=int,
        minimum=1,
        maximum=65535,
    )


def host(service: Service) -> Setting:
    """``<SERVICE>_HOST``: where ``service`` is reached (compose sets its service name)."""
    return Setting(
        service.host_variable,
        "127.0.0.1",
        f"where {service.name} is reached (compose: `{service.name}`)",
    )


def metrics_port(service: Service) -> Setting:
    """``<SERVICE>_METRICS_PORT``: its control port; 0 asks the kernel for a free one."""
    return Setting(
        service.metrics_port_variable,
        service.metrics_port,
        f"{service.name}'s control port (metrics, faults), on the network only, read by the"
        " front every second; 0: any free port",
        kind=int,
        minimum=0,
        maximum=65535,
    )
