"""The HTTP server around the WSGI app: ``gevent.pywsgi`` with bounded connections.

At most ``max_connections`` connections are served at once (a ``Pool``; beyond it, new
connections wait in the listen backlog). A client silent for ``client_timeout`` seconds
while the server reads or writes is disconnected, and a client that disconnects
mid-answer ends its connection quietly instead of a traceback on stderr. ``stop()`` (at
SIGTERM) ends idle keep-alive connections at once and lets requests in flight finish.
"""

from __future__ import annotations

import contextlib
import logging
import socket

from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from services.resolver.api import ResolverApp

log = logging.getLogger(__name__)


class Handler(WSGIHandler):
    def handle(self) -> None:
        self.socket.settimeout(self.server.client_timeout)
        # pywsgi sends the headers and the body in two writes: with Nagle on, the body
        # waits for the client's delayed ACK (~40 ms a request on Linux)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            super().handle()
        except OSError as exc:  # gone or silent: there is nobody left to answer
            log.debug("client connection ended", extra={"error": repr(exc)})

    def read_requestline(self) -> str:
        # waiting for the next request, a keep-alive connection is idle: at shutdown it is
        # ended at once instead of holding the drain until its timeout ("" ends it quietly)
        if self.server.closed:
            return ""
        self.server.idle.add(self.socket)
        try:
            return super().read_requestline()
        finally:
            self.server.idle.discard(self.socket)


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
        self.idle: set[socket.socket] = set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, end idle connections, give requests in flight ``timeout`` s."""
        self.close()
        for connection in list(self.idle):
            with contextlib.suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)
        super().stop(timeout=timeout)
