"""Reading a service's configuration from the environment, once, at start.

Each service keeps one frozen dataclass built by ``from_env()``; these helpers turn
a bad value into a ``ConfigError`` that names the variable, so a typo fails the
start with a clear message instead of a traceback deep in the reactor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def env_str(name: str, default: str, env: Mapping[str, str] | None = None) -> str:
    value = (os.environ if env is None else env).get(name, "").strip()
    return value or default


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    raw = env_str(name, str(default), env)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    _check_range(name, value, minimum, maximum)
    return value


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    env: Mapping[str, str] | None = None,
) -> float:
    raw = env_str(name, str(default), env)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None
    _check_range(name, value, minimum, maximum)
    return value


def env_port(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    return env_int(name, default, minimum=1, maximum=65535, env=env)


def listen_host(env: Mapping[str, str] | None = None) -> str:
    """The interface every service binds: loopback unless told (compose sets 0.0.0.0)."""
    return env_str("LISTEN_HOST", "127.0.0.1", env)


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value}: must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value}: must be <= {maximum}")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def env_log_level(env: Mapping[str, str] | None = None) -> str:
    """``LOG_LEVEL`` (default INFO), upper-cased; anything but a stdlib level name is refused."""
    level = env_str("LOG_LEVEL", "INFO", env).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={level!r}: expected one of {', '.join(LOG_LEVELS)}")
    return level
