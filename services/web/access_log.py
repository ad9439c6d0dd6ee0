"""aiohttp's access log as JSON fields (method, path, status, duration) instead of a
pre-formatted Apache line, so every line on stdout has the same shape. The steady client's
``GET /api/ping`` is left out (a few a second, all alike: ``polyloop_probes_total`` counts
them)."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from services.web.metrics import PING


class JsonAccessLogger(AbstractAccessLogger):
    @property
    def enabled(self) -> bool:
        """aiohttp skips ``log`` when False: no record built for a level that drops it
        (``AbstractAccessLogger`` says True, whatever the level)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path == PING:
            return  # the steady client's few pings a second: counted, not logged
        self.logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": round(time * 1000, 3),
                "remote": request.remote,
                "bytes": response.body_length,
            },
        )
