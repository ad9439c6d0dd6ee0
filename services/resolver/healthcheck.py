"""Compose's healthcheck: ``python -m services.resolver.healthcheck`` exits 0 when
``GET http://127.0.0.1:$RESOLVER_PORT/healthz`` answers 200 ``{"status": "ok"}``, else 1.
"""

from __future__ import annotations

import json
import sys
import urllib.request

from services.common.config import ConfigError, env_port

TIMEOUT = 2.0


def healthy(port: int, timeout: float = TIMEOUT) -> bool:
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200 and json.load(response).get("status") == "ok"
    except (OSError, ValueError):
        return False


def main() -> int:
    try:
        port = env_port("RESOLVER_PORT", 8053)
    except ConfigError as exc:
        sys.stderr.write(f"resolver healthcheck: {exc}\n")
        return 1
    return 0 if healthy(port) else 1


if __name__ == "__main__":
    sys.exit(main())
