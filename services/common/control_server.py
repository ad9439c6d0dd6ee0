"""The control port's HTTP server: a thread per request whose slots a slow or silent client
cannot hold, and where the front's own calls always find room.

prometheus-client's ``ThreadingWSGIServer`` (one request per connection, a thread each),
with these rules, in the spirit of the resolver's server (``services.resolver.server``):

- **A whole-request deadline**: a connection has ``request_timeout`` seconds from its
  accept to deliver its whole request (line, headers, body), however slowly it trickles
  (one clock per connection, not per read); past it a 408 and the connection ends. The
  answer then gets as long again to be taken (a client that never reads cannot hold it).
- **Eviction**: at most ``max_connections + RESERVED`` connections are open. When a new
  one needs room, the oldest connection whose request is not in yet is closed (silent or
  trickling: it had the longest to send it); a connection whose request is in is never cut.
  So slow sockets cannot lock the port: each newcomer pushes the oldest of them out, and a
  newcomer is the last in line (its request may already wait in the kernel, unread).
- **Room for the front**: requests without the stack's token (``Authorization: Bearer``,
  the ``POLYLOOP_ADMIN_TOKEN`` the front sends on every call) are served at most
  ``max_connections`` at once, beyond it a 503 at once; the ``RESERVED`` other slots only
  ever serve a request that carries the token. An address proves nothing (in local mode
  every client is 127.0.0.1, like the front); the token is what only the front holds. A
  flood of complete anonymous requests therefore leaves the front its slots, and a flood of
  incomplete ones is evicted by the front's own connection.
- **The front's scrape is never queued behind a flood's CPU**: requests without the token
  get at most ``ANONYMOUS_COLLECTIONS`` fresh ``/metrics`` collections a second, beyond it
  the last one again (``shared_for_anonymous``): a flood of complete requests costs a copy
  each, not the collection of every metric; a request with the token always gets its own.
- Parser refusals (a request line over 8 KiB: 414, a bad request line or header: 400,
  too many or too long headers: 431) and an app's unexpected error (500) are problem+json;
  nothing is written to stderr, and the log lines of a flood are throttled
  (``services.common.throttle``).

Under gevent (the resolver) the control port runs in a real OS thread of its own, and the
"threads" here are greenlets of that thread's hub: the rules are the same.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler

from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer

from services.common.problem import CONTENT_TYPE, encode, problem
from services.common.throttle import LogThrottle

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]

# slots for requests that carry the token (the front's scrapes and fault calls): per
# replica the front has two reads a second and a change now and then in flight
RESERVED = 4
MAX_LINE = 8192  # bytes of the request line
LOG_INTERVAL = 10.0  # seconds between two log lines of one kind (WEB_LOG_INTERVAL's default)
ANONYMOUS_COLLECTIONS = 10.0  # /metrics collections a second for requests without the token
TRUSTED = "polyloop.trusted"  # the WSGI environ's key: the request carries the token
# why a connection ended before its answer: the label of the shed counter (a closed set)
SHED_REASONS = ("idle", "slow", "deadline", "busy", "full")
# a read past its time: socket.timeout is TimeoutError from 3.10, an OSError apart on PyPy 3.9
TIMEOUTS = (TimeoutError, socket.timeout)


class Slot:
    """One admitted connection: its socket, its deadline and where it stands."""

    __slots__ = ("deadline", "since", "sock", "state", "trusted")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.since = time.monotonic()
        self.state = "idle"  # idle -> arriving -> busy; or cut
        self.trusted = False

    def cut(self) -> None:
        """End the connection now: its pending read sees EOF (called under the lock)."""
        self.state = "cut"
        with contextlib.suppress(OSError):  # already gone
            self.sock.shutdown(socket.SHUT_RDWR)


class _DeadlineReader(io.RawIOBase):
    """The socket's reads, each bounded by what is left of the connection's deadline."""

    def __init__(self, sock: socket.socket, slot: Slot, server: BoundedControlServer) -> None:
        self._sock = sock
        self._slot = slot
        self._server = server

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._slot.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(left)
        count = self._sock.recv_into(buffer)
        if count and self._slot.state == "idle":
            self._server.first_byte(self._slot)
        return count


class ControlHandler(WSGIRequestHandler):
    """One request: read it whole within the deadline, then run the app on it."""

    server: BoundedControlServer

    def __init__(self, request: Any, client_address: Any, server: Any, slot: Slot) -> None:
        self.slot = slot
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        self.connection = self.request
        # wsgiref writes the headers and the body apart: no Nagle wait between them
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self.slot, self.server))
        self.wfile = socketserver._SocketWriter(self.connection)  # type: ignore[attr-defined]

    def handle(self) -> None:
        try:
            body = self._read_request()
        except TIMEOUTS:
            self.server.shed("deadline")
            seconds = self.server.request_timeout
            self._answer(408, f"the request did not arrive within {seconds:g} s")
            return
        except OSError:
            return  # reset, or cut to make room: nobody to answer
        if body is None:
            return
        if not self.server.begin(self.slot, self.headers.get("Authorization")):
            if self.slot.state != "cut":
                self.server.shed("busy")
                detail = f"{self.server.max_connections} requests are being served; retry shortly"
                self._answer(503, detail, ("Retry-After", "1"))
            return
        # the answer's own deadline: a client that does not read cannot hold the slot
        self.connection.settimeout(self.server.request_timeout)
        environ = self.get_environ()
        environ[TRUSTED] = self.slot.trusted
        handler = ServerHandler(
            io.BytesIO(body), self.wfile, _NoStderr(), environ, multithread=True
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())

    def _read_request(self) -> bytes | None:
        """The body (whole, or empty when it is over ``max_body``: the app says 413), or
        None when the connection ended or its request was refused already."""
        self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
        if not self.raw_requestline:
            return None
        if len(self.raw_requestline) > MAX_LINE:
            self.requestline = self.request_version = self.command = ""
            self._answer(414, f"the request line is over {MAX_LINE} bytes")
            return None
        if not self.parse_request():  # it answered (send_error, below)
            return None
        length_header = self.headers.get("Content-Length")
        if length_header is None or self.headers.get("Transfer-Encoding"):
            return b""  # no body read: a PUT without a length is refused by the app (411)
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            self._answer(400, "Content-Length is not a number")
            return None
        if length > self.server.max_body:
            return b""
        body = self.rfile.read(length)
        if len(body) < length:
            return None  # the client went away
        return body

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's refusals of a request line or a header, as problem+json
        if code == 431 or (message and ("too long" in message or "Too many" in message)):
            self._answer(431, "the request's headers are too large")
        else:
            self._answer(code, "the request could not be parsed")

    def _answer(self, status: int, detail: str, *headers: tuple[str, str]) -> None:
        self.close_connection = True
        body = encode(problem(status, detail))
        head = [
            f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
            f"Content-Type: {CONTENT_TYPE}",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in headers),
        ]
        try:
            self.connection.settimeout(1.0)
            self.connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        # one line per scrape every second would drown the service's own log
        pass


class _NoStderr(io.StringIO):
    """wsgiref's error stream: its own tracebacks never reach the process's stderr (the
    app wraps every route: an error is logged there, throttled)."""

    def write(self, text: str) -> int:
        return len(text)


class BoundedControlServer(ThreadingWSGIServer):
    """The thread-per-request server with the rules of the module docstring."""

    request_queue_size = 128  # the listen backlog (socketserver's default is 5)

    def __init__(
        self,
        address: tuple[str, int],
        handler: type,
        *,
        max_connections: int,
        request_timeout: float,
        max_body: int,
        trusted: Callable[[str | None], bool],
    ) -> None:
        self.max_connections = max_connections
        self.capacity = max_connections + RESERVED
        self.request_timeout = request_timeout
        self.max_body = max_body
        self.trusted = trusted
        self.lock = threading.Lock()
        self.open = 0
        self.anonymous = 0  # requests without the token being served
        # the connections whose request is not in yet, in accept order: the first is the
        # one that has had the longest to send it (never the newcomer, such as the front's
        # connection whose request is in the kernel but not read yet)
        self.waiting: dict[Slot, None] = {}
        self.shed_total = dict.fromkeys(SHED_REASONS, 0)
        self.throttle = LogThrottle(log, LOG_INTERVAL)
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer's own asks socket.getfqdn(host): a reverse DNS lookup at start, which
        # under gevent's dnspython resolver cannot even run on a thread of its own
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
        self.setup_environ()

    # -- admission, on the accepting thread

    def process_request(self, request: Any, client_address: Any) -> None:
        slot = self._admit(request)
        if slot is None:
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve, args=(request, client_address, slot), daemon=True
        )
        try:
            thread.start()
        except Exception:
            self._release(slot)
            self.shutdown_request(request)
            raise

    def _admit(self, request: Any) -> Slot | None:
        with self.lock:
            if self.open >= self.capacity:
                if not self.waiting:  # every slot serves a request: the front's fill the last
                    self._count("full")
                    return None
                victim = next(iter(self.waiting))
                del self.waiting[victim]
                reason = "idle" if victim.state == "idle" else "slow"
                victim.cut()
                self.open -= 1
                self._count(reason)
            self.open += 1
            slot = Slot(request, time.monotonic() + self.request_timeout)
            self.waiting[slot] = None
            return slot

    def _serve(self, request: Any, client_address: Any, slot: Slot) -> None:
        try:
            ControlHandler(request, client_address, self, slot)
        except Exception as exc:  # noqa: BLE001 - one throttled line, never a traceback flood
            if not isinstance(exc, OSError):
                self.throttle.log("handler", logging.ERROR, "control port error", exc_info=exc)
        finally:
            self._release(slot)
            self.shutdown_request(request)

    # -- a connection's progress, from its own thread

    def first_byte(self, slot: Slot) -> None:
        with self.lock:
            if slot.state == "idle":
                slot.state = "arriving"

    def begin(self, slot: Slot, authorization: str | None) -> bool:
        """The request is in: serve it (True), or refuse it (False: cut, or too many
        anonymous requests at once). From here the connection is never cut."""
        trusted = self.trusted(authorization)
        with self.lock:
            if slot.state == "cut":
                return False
            self.waiting.pop(slot, None)
            if not trusted and self.anonymous >= self.max_connections:
                return False
            slot.state, slot.trusted = "busy", trusted
            self.anonymous += not trusted
            return True

    def _release(self, slot: Slot) -> None:
        with self.lock:
            if slot.state == "cut":
                return  # counted out when it was cut
            self.waiting.pop(slot, None)
            if slot.state == "busy" and not slot.trusted:
                self.anonymous -= 1
            slot.state = "cut"
            self.open -= 1

    def shed(self, reason: str) -> None:
        with self.lock:
            self._count(reason)

    def _count(self, reason: str) -> None:
        self.shed_total[reason] += 1
        self.throttle.log(
            f"shed {reason}",
            logging.WARNING,
            "control port connection shed",
            reason=reason,
            shed_total=self.shed_total[reason],
        )

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver's default prints a traceback to stderr for each
        self.throttle.log("accept", logging.ERROR, "control port error", exc_info=True)


def shared_for_anonymous(
    app: WsgiApp,
    per_second: float = ANONYMOUS_COLLECTIONS,
    clock: Callable[[], float] = time.monotonic,
) -> WsgiApp:
    """``app`` (prometheus-client's ``/metrics``), collected for requests without the token
    at most ``per_second`` times a second (a burst of as many): beyond, such a request gets
    the last collection of its kind (gzip or not, OpenMetrics or not) again. A scraper (a
    Prometheus every 15 s, a test) always gets a fresh one; a flood costs a copy per
    request, not a collection of every metric. A request with the token, or asking a subset
    (``?name[]=``), is always collected for itself."""
    lock = threading.Lock()
    last: dict[tuple[bool, bool], tuple[str, list[tuple[str, str]], bytes]] = {}
    bucket = {"tokens": per_second, "at": clock()}

    def shared(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get(TRUSTED) or environ.get("QUERY_STRING"):
            return app(environ, start_response)
        kind = (
            "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""),
            "openmetrics" in environ.get("HTTP_ACCEPT", ""),
        )
        with lock:
            now = clock()
            tokens = min(per_second, bucket["tokens"] + (now - bucket["at"]) * per_second)
            bucket["at"] = now
            known = last.get(kind)
            collect = tokens >= 1 or known is None
            bucket["tokens"] = tokens - 1 if collect else tokens
        if collect:
            head: list[Any] = []
            body = b"".join(
                app(environ, lambda status, headers, *_: head.extend((status, headers)))
            )
            known = (head[0], list(head[1]), body)
            with lock:
                last[kind] = known
        assert known is not None
        start_response(known[0], known[1])
        return [known[2]]

    return shared


class ShedCollector:
    """``polyloop_control_connections_shed_total{reason}``, read from the running server."""

    def __init__(self, server: Callable[[], BoundedControlServer | None]) -> None:
        self._server = server

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "polyloop_control_connections_shed",
            "Control port connections ended before an answer: idle or slow ones evicted to"
            " make room, past the request deadline, refused while busy or full.",
            labels=["reason"],
        )
        server = self._server()
        totals = server.shed_total if server is not None else dict.fromkeys(SHED_REASONS, 0)
        for reason in SHED_REASONS:
            family.add_metric([reason], totals[reason])
        yield family
