"""Is the web front serving? ``GET http://127.0.0.1:$WEB_PORT/healthz`` must answer 200
``{"status": "ok"}`` within two seconds.

Run: ``python -m services.web.healthcheck`` — exit 0 if healthy, 1 otherwise
(compose uses it as the container's healthcheck).
"""

from __future__ import annotations

import json
import logging
import sys
import urllib.request

from services.common.config import ConfigError, env_port
from services.common.logging import setup_logging

TIMEOUT = 2.0


def healthz_ok(port: int, timeout: float = TIMEOUT) -> bool:
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200 and json.load(response).get("status") == "ok"
    except (OSError, ValueError):  # refused, timed out, an HTTP error status, not JSON
        return False


def main() -> int:
    setup_logging("web-healthcheck")
    log = logging.getLogger("web.healthcheck")
    try:
        port = env_port("WEB_PORT", 8080)
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return 1
    if healthz_ok(port):
        return 0
    log.error("no healthy answer from http://127.0.0.1:%d/healthz within %ss", port, TIMEOUT)
    return 1


if __name__ == "__main__":
    sys.exit(main())
