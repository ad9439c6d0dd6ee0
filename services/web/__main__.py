"""Run the web front: ``python -m services.web`` (then open http://127.0.0.1:8080/).

Reads ``WebConfig`` from the environment, logs JSON lines, and serves until SIGTERM or
SIGINT (``server.serve``): it stops accepting, lets in-flight requests finish for
``WEB_SHUTDOWN_TIMEOUT`` seconds, runs the cleanup (closing the backend pools) and exits 0.
``WEB_LOOP=uvloop`` runs the very same app on uvloop's event loop instead of asyncio's.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from services.common.loops import asyncio as loop_watch
from services.web.app import create_app
from services.web.config import WebConfig
from services.web.server import serve

log = logging.getLogger("services.web")


def main() -> int:
    config = WebConfig.load()
    log.info(
        "web front starting",
        extra={"host": config.listen_host, "port": config.port, "loop": config.loop},
    )
    app = create_app(config, control_port=True, steady=True)
    try:
        with asyncio.Runner(loop_factory=loop_watch.loop_factory(config.loop)) as runner:
            runner.run(serve(app, config))
    except OSError as exc:  # the listening port or the control port is taken
        log.error("cannot listen: %s", exc, extra={"metrics_port": config.metrics_port})
        return 1
    log.info("web front stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
