"""What every service's configuration holds, declared once: ``ServiceConfig``.

A service's config names its service from the catalogue and declares only its own settings::

    @dataclass(frozen=True)
    class TcpEchoConfig(ServiceConfig, service=service("tcp-echo")):
        max_connections: int = setting("TCP_ECHO_MAX_CONNECTIONS", 1024, ...)

and gets, before its own fields: ``listen_host`` (``LISTEN_HOST``), ``port``
(``TCP_ECHO_PORT``), ``log_level`` (``LOG_LEVEL``), ``metrics_port``
(``TCP_ECHO_METRICS_PORT``) and ``metrics``, the control port's settings (the admin token
among them). Runs on PyPy 3.9 too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeVar

from services.common import settings
from services.common.catalogue import Service
from services.common.control import ControlSettings
from services.common.logging import setup_logging
from services.common.settings import (
    LISTEN_HOST,
    LOG_LEVEL,
    ConfigError,
    Settings,
    declare,
    group,
)

C = TypeVar("C", bound="ServiceConfig")


@dataclass(frozen=True)
class ServiceConfig(Settings):
    """The settings of every service; ``port`` and ``metrics_port`` are its own variables."""

    listen_host: str = declare(LISTEN_HOST)
    port: int = 0
    log_level: str = declare(LOG_LEVEL)
    metrics_port: int = 0
    metrics: ControlSettings = group(ControlSettings)
    service = None  # type: ignore[assignment]  # the catalogue's entry, set by a subclass

    def __init_subclass__(cls, service: Service | None = None, **kwargs: Any) -> None:
        # declare port and metrics_port again with the service's variables, before
        # @dataclass collects the subclass's fields (an override keeps the field's place)
        super().__init_subclass__(**kwargs)
        if service is None:
            return
        cls.service = service
        # the class's own annotations (inspect.get_annotations is 3.10+: PyPy 3.9 runs this)
        own = dict(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063
        cls.__annotations__ = {"port": "int", "metrics_port": "int", **own}
        cls.port = declare(settings.port(service))
        cls.metrics_port = declare(settings.metrics_port(service))

    @classmethod
    def load(cls: type[C]) -> C:
        """What every ``__main__`` starts with: the config read from the environment and JSON
        logging at its level; a bad value logs one line naming the variable and exits 2."""
        name = cls.service.name
        try:
            config = cls.from_env()
        except ConfigError as exc:
            setup_logging(name)
            log = logging.getLogger(f"{cls.service.module}.config")
            log.error("invalid configuration", extra={"error": str(exc)})
            raise SystemExit(2) from None
        setup_logging(name, config.log_level)
        return config
