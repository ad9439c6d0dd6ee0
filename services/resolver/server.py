"""The HTTP server around the WSGI app: ``gevent.pywsgi`` with bounded connections.

At most ``max_connections`` connections are served at once (a ``Pool``; beyond it, new
connections wait in the listen backlog). A client silent for ``client_timeout`` seconds
while the server reads or writes is disconnected, and a client that disconnects
mid-answer ends its connection quietly instead of a traceback on stderr.
"""

from __future__ import annotations

import logging

from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from services.resolver.api import ResolverApp

log = logging.getLogger(__name__)


class Handler(WSGIHandler):
    def handle(self) -> None:
        self.socket.settimeout(self.server.client_timeout)
        try:
            super().handle()
        except OSError as exc:  # gone or silent: there is nobody left to answer
            log.debug("client connection ended", extra={"error": repr(exc)})


class ResolverServer(WSGIServer):
    handler_class = Handler

    def __init__(
        self,
        address: tuple[str, int],
        app: ResolverApp,
        *,
        max_connections: int = 100,
        client_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            address,
            app,
            spawn=Pool(max_connections),
            log=None,  # the app logs each resolve once, as JSON
            error_log=logging.getLogger("services.resolver.pywsgi"),
        )
        self.client_timeout = client_timeout
