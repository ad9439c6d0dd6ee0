"""The HTTP server around the WSGI app: ``gevent.pywsgi`` whose connection slots slow or
idle clients cannot hold.

* At most ``max_connections`` connections are served at once. A connection is *idle*
  while it waits for the first byte of a request (new, or kept alive after one),
  *arriving* from that byte until its whole request (line, headers, body) is in, then
  *busy* until answered. When every slot is taken, a new connection closes the longest
  idle one, else the one arriving the longest (a slow client); a busy one is never cut.
* When every slot is busy, up to ``SPARE_CONNECTIONS`` more are answered at once without
  the app: ``/healthz`` 200 (the healthcheck always gets through), anything else 503.
* A request must arrive whole within ``request_timeout`` seconds of its first byte,
  however slowly it trickles in (one timer per request, not per read): else 408 and the
  connection ends. Each read or write waits at most ``client_timeout``, so an idle
  keep-alive connection ends after that long.
* pywsgi's own refusals (a bad request line, header or Content-Length: 400; a request
  line over 8 KiB: 414; a header line over 64 KiB or more than 100 headers: 431) are
  problem+json like the app's errors, and never logged above DEBUG (a flood of them must
  not flood the log).
* ``stop()`` (at SIGTERM) ends idle keep-alive connections at once and lets requests in
  flight finish; a client that disconnects mid-answer ends its connection quietly.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from http import HTTPStatus

import gevent
from gevent.pool import Pool
from gevent.pywsgi import MAX_REQUEST_LINE, WSGIHandler, WSGIServer

from services.common.problem import CONTENT_TYPE, encode, problem
from services.resolver.api import END_OF_REQUEST, ResolverApp

log = logging.getLogger(__name__)

SPARE_CONNECTIONS = 16
SPARE_TIMEOUT = 1.0  # seconds a spare connection has to send its request line and headers
HEALTHZ = {b"GET /healthz", b"HEAD /healthz"}


class RequestTimeout(TimeoutError):
    """The whole request did not arrive within ``request_timeout`` of its first byte."""


class Handler(WSGIHandler):
    server: ResolverServer
    cut_off = False

    def handle(self) -> None:
        self.socket.settimeout(self.server.client_timeout)
        # pywsgi sends the headers and the body in two writes: with Nagle on, the body
        # waits for the client's delayed ACK (~40 ms a request on Linux)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # one timer for the connection, started at each request's first byte
        self.deadline = gevent.Timeout(self.server.request_timeout, RequestTimeout())
        try:
            super().handle()
        except OSError as exc:  # gone or silent: there is nobody left to answer
            log.debug("client connection ended", extra={"error": repr(exc)})
        finally:
            self.deadline.close()

    def read_requestline(self) -> str:
        # "" ends the connection quietly: at shutdown, at EOF, or when cut off while idle
        server = self.server
        if server.closed:
            return ""
        server.idle[self] = None
        try:
            if not self.rfile.peek(1) or self.cut_off:
                return ""
        finally:
            server.idle.pop(self, None)
        server.arriving[self] = None
        self.deadline.start()
        return super().read_requestline()

    def end_of_request(self) -> None:
        """The whole request is in: its deadline ends, and the connection is busy."""
        self.deadline.cancel()
        self.server.arriving.pop(self, None)

    def get_environ(self) -> dict:
        environ = super().get_environ()
        environ[END_OF_REQUEST] = self.end_of_request
        return environ

    def run_application(self) -> None:
        if self.cut_off:  # cut while its request was arriving: what came in is partial
            self.close_connection = True
            return
        if not self.content_length and not self.environ.get("HTTP_TRANSFER_ENCODING"):
            self.end_of_request()  # no body to wait for
        super().run_application()

    def handle_one_response(self) -> None:
        try:
            super().handle_one_response()
        finally:
            # a body the app did not read is discarded above, still within the deadline
            self.end_of_request()

    def handle_one_request(self) -> bool | tuple[str, bytes] | None:
        result = super().handle_one_request()
        if isinstance(result, tuple) and result[0] == "414":  # pywsgi's empty body
            return "414", raw_problem(414, f"the request line is over {MAX_REQUEST_LINE} bytes")
        return result

    def _handle_client_error(self, ex: BaseException) -> tuple[str, bytes]:
        # pywsgi's hook for a request it cannot parse (it would answer an empty 400)
        self.end_of_request()
        if isinstance(ex, RequestTimeout):
            self.server.shed("deadline")
            detail = f"the request did not arrive within {self.server.request_timeout:g} s"
            return "408", raw_problem(408, detail)
        log.debug("bad request", extra={"error": str(ex)[:200]})
        text = str(ex)
        if "Line too long" in text or "more than 100 headers" in text:
            # http.client's limits, which pywsgi parses headers with: 64 KiB a line, 100 lines
            return "431", raw_problem(431, "the request's headers are too large")
        return "400", raw_problem(400, _client_error(ex))

    def cut(self) -> None:
        """End this connection now (its slot is needed): its pending read sees EOF."""
        self.cut_off = True
        sock = getattr(self, "socket", None)  # None once the handler has ended
        if sock is not None:
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)


class ResolverServer(WSGIServer):
    handler_class = Handler

    def __init__(
        self,
        address: tuple[str, int],
        app: ResolverApp,
        *,
        max_connections: int = 100,
        client_timeout: float = 30.0,
        request_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            address,
            app,
            # past every slot and spare, new connections wait in the listen backlog
            spawn=Pool(max_connections + SPARE_CONNECTIONS),
            log=None,  # the app logs each resolve once, as JSON
            error_log=logging.getLogger("services.resolver.pywsgi"),
        )
        self.max_connections = max_connections
        self.client_timeout = client_timeout
        self.request_timeout = request_timeout
        self.shed_counts = app.metrics.shed
        self.open: set[Handler] = set()
        # insertion-ordered: the first is the one waiting the longest
        self.idle: dict[Handler, None] = {}
        self.arriving: dict[Handler, None] = {}

    def handle(self, sock: socket.socket, address: tuple[str, int]) -> None:
        if len(self.open) >= self.max_connections and not self._make_room():
            self._answer_while_full(sock)
            return
        handler = self.handler_class(sock, address, self)
        self.open.add(handler)
        try:
            handler.handle()
        finally:
            self.open.discard(handler)
            self.idle.pop(handler, None)
            self.arriving.pop(handler, None)

    def _make_room(self) -> bool:
        for waiting, reason in ((self.idle, "idle"), (self.arriving, "slow")):
            if waiting:
                handler = next(iter(waiting))
                del waiting[handler]
                self.open.discard(handler)
                handler.cut()
                self.shed(reason)
                return True
        return False

    def _answer_while_full(self, sock: socket.socket) -> None:
        """Every slot is busy: /healthz 200, anything else 503, then close."""
        request_line = b""
        sock.settimeout(SPARE_TIMEOUT)
        with sock, contextlib.suppress(OSError):
            with gevent.Timeout(SPARE_TIMEOUT, False):
                rfile = sock.makefile("rb")
                request_line = rfile.readline(MAX_REQUEST_LINE)
                # read the headers too: closing with unread bytes would reset the answer
                for _ in range(100):
                    if rfile.readline(MAX_REQUEST_LINE) in (b"\r\n", b"\n", b""):
                        break
            if b" ".join(request_line.split()[:2]) in HEALTHZ:
                sock.sendall(_raw(200, "application/json", b'{"status": "ok"}'))
            else:
                self.shed("full")
                detail = f"all {self.max_connections} connections are busy; retry shortly"
                sock.sendall(raw_problem(503, detail, "Retry-After: 1"))

    def shed(self, reason: str) -> None:
        self.shed_counts[reason] += 1

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, end idle connections, give requests in flight ``timeout`` s."""
        self.close()
        for handler in list(self.idle):
            handler.cut()
        super().stop(timeout=timeout)


def raw_problem(status: int, detail: str, *headers: str) -> bytes:
    """A whole ``application/problem+json`` response that closes the connection."""
    return _raw(status, CONTENT_TYPE, encode(problem(status, detail)), *headers)


def _raw(status: int, content_type: str, body: bytes, *headers: str) -> bytes:
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _client_error(ex: BaseException) -> str:
    # pywsgi's messages repeat the client's bytes: say what was wrong, not what was sent
    text = str(ex)
    for known in ("Invalid http version", "Invalid HTTP method", "Invalid headers status"):
        if text.startswith(known):
            return f"the request could not be parsed: {known[0].lower()}{known[1:]}"
    if isinstance(ex, ValueError) and "int()" in text:
        return "the request could not be parsed: Content-Length is not a number"
    return "the request could not be parsed"
