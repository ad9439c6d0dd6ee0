"""aiohttp's access log as JSON fields (method, path, status, duration) instead of a
pre-formatted Apache line, so every line on stdout has the same shape."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


class JsonAccessLogger(AbstractAccessLogger):
    @property
    def enabled(self) -> bool:
        """aiohttp skips ``log`` when False: no record built for a level that drops it
        (``AbstractAccessLogger`` says True, whatever the level)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
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
