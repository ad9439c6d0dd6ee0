"""The one contract of the five healthchecks (``python -m services.<name>.healthcheck``).

Each service's ``healthcheck.py`` exercises its real protocol (an echo round trip, a DNS
query, ``GET /healthz``) in one function::

    def check(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> str | None:
        '''None when healthy, else the reason it is not.'''

and ends with ``sys.exit(main("tcp-echo", check))``. ``main`` reads the service's port
variable (``TCP_ECHO_PORT``), calls ``check`` on 127.0.0.1 and exits 0 when it returns None;
otherwise it logs ONE JSON line (``"msg": "unhealthy"``, the ``reason``, the ``port``) and
exits 1, as compose and ``devstack`` expect. Runs on PyPy 3.9 too.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable

from services.common import settings
from services.common.catalogue import service
from services.common.logging import setup_logging
from services.common.settings import ConfigError

Check = Callable[[int], "str | None"]


def main(name: str, check: Check) -> int:
    """Run `check` against 127.0.0.1 on `name`'s port: exit code 0 if healthy, else 1 (logged)."""
    setup_logging(f"{name}-healthcheck", "WARNING")
    log = logging.getLogger(f"{service(name).module}.healthcheck")
    try:
        port = settings.port(service(name)).read()
    except ConfigError as exc:
        log.error("unhealthy", extra={"reason": f"invalid configuration: {exc}"})
        return 1
    reason = check(port)
    if reason is None:
        return 0
    log.error("unhealthy", extra={"reason": reason, "port": port})
    return 1


def check_healthz(host: str, port: int, timeout: float) -> str | None:
    """``GET http://host:port/healthz`` must answer 200 ``{"status": "ok"}`` within `timeout`
    (the resolver's and the web front's contract); None if it does, else why not."""
    url = f"http://{host}:{port}/healthz"
    try:
        # S310: the URL is built here from a host and a port, always http
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = json.load(response).get("status")
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:  # refused, timed out, not JSON
        return f"no answer from {url} within {timeout}s: {exc!r}"
    if status != "ok":
        return f"{url} says status={status!r}"
    return None
