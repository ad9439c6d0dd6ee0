"""One JSON object per line on stdout, for every service.

``setup_logging("tcp-echo")`` configures the stdlib root logger; Twisted services
forward their ``twisted.logger`` events into it (``forward_twisted_logs``) so all five
services log the same shape: ``{"ts", "level", "service", "logger", "msg", ...fields}``,
where the fields are stdlib's ``extra=`` or a Twisted event's own keys.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(service: str, level: str = "INFO") -> None:
    """Send every log record of this process to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# twisted.logger's level names -> stdlib levels
_TWISTED_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


# keys twisted.python.log's legacy events carry, which say nothing the record does not
_TWISTED_LEGACY = {"format", "message", "isError", "failure", "system", "time", "printed"}
_ENTRY = {"ts", "level", "service", "logger", "msg"}  # JsonFormatter's own keys


def _twisted_fields(event: dict) -> dict:
    """The event's own fields (``log.info("... {port}", port=8000)``: port), as JSON keys;
    a field named like a LogRecord attribute gets a ``field_`` prefix instead of clashing."""
    fields = {}
    for key, value in event.items():
        if key.startswith("log_") or key in _TWISTED_LEGACY:
            continue
        fields[f"field_{key}" if key in _RESERVED or key in _ENTRY else key] = value
    return fields


def forward_twisted_logs() -> None:
    """Send every ``twisted.logger`` event of this process into the stdlib root logger (so
    into ``setup_logging``'s JSON lines): the message as Twisted formats it, and each field
    of the event as a JSON key of its own. The Twisted services call it after
    ``setup_logging``; ``Logger(namespace=...)`` becomes the record's logger name."""
    from twisted.logger import formatEvent, globalLogBeginner  # only the Twisted services

    def observer(event: dict) -> None:
        level = _TWISTED_LEVELS.get(getattr(event.get("log_level"), "name", "info"), logging.INFO)
        namespace = event.get("log_namespace")
        # twisted.python.log's legacy events all share one namespace: call them "twisted"
        logger = logging.getLogger("twisted" if namespace in {None, "log_legacy"} else namespace)
        if not logger.isEnabledFor(level):
            return
        failure = event.get("log_failure")
        exc_info = (failure.type, failure.value, failure.getTracebackObject()) if failure else None
        logger.log(level, "%s", formatEvent(event), exc_info=exc_info, extra=_twisted_fields(event))

    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
