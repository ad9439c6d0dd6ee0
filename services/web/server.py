"""Serving the front: aiohttp's ``AppRunner`` behind a TCP site of our own.

``web.run_app`` has no connection limit and no say in the errors aiohttp's HTTP parser
answers, so ``start(app, config)`` does what it does (runner, site, graceful cleanup) plus:

- a connection limit (``WEB_MAX_CONNECTIONS``): at the limit the oldest idle connection
  (between requests, or still sending its headers) is closed to make room, and only when
  every connection is busy with a request does a new one get a 503 problem, at once; so a
  flood of idle connections cannot lock out a healthcheck. The limit is kept below the
  process's file-descriptor limit, so ``accept()`` never fails with EMFILE (which made
  asyncio log a traceback per retry);
- parser-level errors (a bad ``Content-Length``, a URL or a header over 8 KiB, too many
  headers, obs-fold) as problem+json with the right status (400, 414, 431), the security
  headers, and no echo of the offending bytes (``ProblemRequestHandler.handle_error``);
- every log line of those floods rate-limited (``LogThrottle``, ``WEB_LOG_INTERVAL``), the
  event loop's own error reports included.

Try it: ``curl -si "http://127.0.0.1:8080/$(head -c 9000 /dev/zero | tr '\\0' a)"`` → 414.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from services.common.problem import CONTENT_TYPE as PROBLEM_CONTENT_TYPE
from services.common.problem import encode, problem
from services.common.throttle import LogThrottle
from services.web.access_log import JsonAccessLogger
from services.web.config import WebConfig
from services.web.security import SECURITY_HEADERS

log = logging.getLogger("services.web.server")

# aiohttp's parser says which limit a line broke only by the limit's value, so the URL's
# and a header's differ by two bytes: LineTooLong(limit=URL_MAX) is a 414, else a 431
URL_MAX = 8192
HEADER_FIELD_MAX = 8190
MAX_HEADERS = 128
# how long an idle keep-alive connection (or one still sending its headers) is kept
KEEPALIVE_TIMEOUT = 75.0
# after an answer that left the body unread (a 408, a 413, a 404 to a POST), the rest is
# read and dropped this long before the close, so the client can still read the answer
# (closing with unread data sends a reset); aiohttp's default, 10 s, would let a slow body
# hold its connection 10 s past its deadline
LINGERING_TIME = 1.0
# file descriptors kept free for everything but client connections (backend pools, files)
FD_RESERVE = 64
# asyncio accepts up to `backlog` connections per wake-up before any of them can be closed,
# so a refusal briefly costs that many descriptors: they are reserved too
BACKLOG = 128
# the parser's errors name no request target; this URI says so
UNPARSED = "urn:polyloop:request:unparsed"

_DETAILS = {
    400: "the request is not valid HTTP/1.1 (request line, a header or Content-Length)",
    414: f"the request target is longer than {URL_MAX} bytes",
    431: f"a header is longer than {HEADER_FIELD_MAX} bytes, or there are more than "
    f"{MAX_HEADERS} headers",
}


def parser_error_status(exc: BaseException | None) -> int:
    """The status a parser error deserves: 414 for the URL, 431 for the headers, else 400."""
    if isinstance(exc, LineTooLong):
        return 414 if exc.args[1] == URL_MAX else 431
    if isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message:
        return 431
    return 400


class _ParserErrorResponse(web.Response):
    """An answer to a request the parser refused: logged by the throttle, not the access log."""


class ProblemRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering its own errors as problem+json.

    aiohttp has no hook for these (aio-libs/aiohttp#3287): they never reach the app's
    middlewares or its ``on_response_prepare``, so this subclass overrides ``handle_error``.
    """

    __slots__ = ("_limiter",)

    def count_in(self, limiter: ConnectionLimiter) -> None:
        """Count this connection in `limiter.open` until it is lost."""
        self._limiter: ConnectionLimiter | None = limiter

    @property
    def idle(self) -> bool:
        """Connected, and no request is being handled (aiohttp sets the flag around each
        handler call, so a connection still sending its headers is idle too)."""
        return self.transport is not None and not self._request_in_progress

    def log_access(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        # a flood of malformed requests would cost an access line each: the throttled
        # "malformed request refused" line counts them instead
        if not isinstance(response, _ParserErrorResponse):
            super().log_access(request, response, time)

    def connection_lost(self, exc: BaseException | None) -> None:
        limiter, self._limiter = getattr(self, "_limiter", None), None
        if limiter is not None:
            limiter.lost(self)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        limiter = getattr(self, "_limiter", None)
        throttle = limiter.throttle if limiter is not None else LogThrottle(log, 0)
        if status >= 500:
            detail = "the server hit an unexpected error"
            throttle.log("unhandled", logging.ERROR, "unhandled error", exc_info=exc)
        else:
            status = parser_error_status(exc)
            detail = _DETAILS.get(status, _DETAILS[400])
            throttle.log(
                f"malformed {status}",
                logging.WARNING,
                "malformed request refused",
                status=status,
                error=type(exc).__name__,
                remote=request.remote,
            )
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent: no room for the error")
        response = _ParserErrorResponse(
            status=status,
            body=encode(problem(status, detail, instance=UNPARSED)),
            content_type=PROBLEM_CONTENT_TYPE,
            headers=SECURITY_HEADERS,
        )
        response.force_close()
        return response


class _Refused(asyncio.Protocol):
    """A connection past the limit: one 503 problem, then closed."""

    def __init__(self, response: bytes) -> None:
        self.response = response

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.response)  # type: ignore[attr-defined]
        transport.close()


def _refusal(limit: int) -> bytes:
    detail = f"the front serves at most {limit} connections at once"
    body = encode(problem(503, detail, instance=UNPARSED))
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in SECURITY_HEADERS.items())
        + "\r\n"
    )
    return head.encode() + body


class ConnectionLimiter:
    """The site's protocol factory: a ``ProblemRequestHandler`` per connection, up to
    `limit` open at once; past it, a refusal (counted, logged once per interval)."""

    def __init__(self, server: web.Server, limit: int, throttle: LogThrottle) -> None:
        self.server = server
        self.limit = limit
        self.throttle = throttle
        self.refused = 0
        self.evicted = 0
        # open connections, oldest first (a dict keeps insertion order)
        self._handlers: dict[ProblemRequestHandler, None] = {}
        self._refusal = _refusal(limit)
        self._handler_kwargs: dict[str, Any] = {
            "access_log_class": JsonAccessLogger,
            "keepalive_timeout": KEEPALIVE_TIMEOUT,
            "lingering_time": LINGERING_TIME,
            "max_line_size": URL_MAX,
            "max_field_size": HEADER_FIELD_MAX,
            "max_headers": MAX_HEADERS,
        }

    @property
    def open(self) -> int:
        return len(self._handlers)

    def lost(self, handler: ProblemRequestHandler) -> None:
        self._handlers.pop(handler, None)

    def _evict_idle(self) -> bool:
        for handler in self._handlers:
            if handler.idle:
                self._handlers.pop(handler)
                handler.force_close()
                self.evicted += 1
                self.throttle.log(
                    "connection evicted",
                    logging.WARNING,
                    "connection limit reached: oldest idle connection closed",
                    limit=self.limit,
                    evicted_total=self.evicted,
                )
                return True
        return False

    def __call__(self) -> asyncio.BaseProtocol:
        # counted here, not in connection_made: a burst of accepts runs before any of them
        if len(self._handlers) >= self.limit and not self._evict_idle():
            self.refused += 1
            self.throttle.log(
                "connection limit",
                logging.WARNING,
                "connection limit reached: new connections refused",
                limit=self.limit,
                refused_total=self.refused,
            )
            return _Refused(self._refusal)
        handler = ProblemRequestHandler(
            self.server, loop=asyncio.get_running_loop(), **self._handler_kwargs
        )
        handler.count_in(self)
        self._handlers[handler] = None
        return handler


class LimitedSite(web.BaseSite):
    """A TCP site whose connections are made by a ``ConnectionLimiter``."""

    __slots__ = ("_host", "_port", "limiter")

    def __init__(self, runner: web.AppRunner, host: str, port: int, limiter: ConnectionLimiter):
        super().__init__(runner)
        self._host = host
        self._port = port
        self.limiter = limiter

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when asked for 0)."""
        if self._server is not None and self._server.sockets:  # type: ignore[attr-defined]
            return self._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.limiter, self._host, self._port, reuse_address=True, backlog=BACKLOG
        )


@dataclass
class RunningFront:
    runner: web.AppRunner
    site: LimitedSite
    previous_exception_handler: Any = None

    @property
    def port(self) -> int:
        return self.site.port

    @property
    def limiter(self) -> ConnectionLimiter:
        return self.site.limiter

    async def close(self) -> None:
        """Stop accepting, let requests in flight finish (``WEB_SHUTDOWN_TIMEOUT``), run
        the app's cleanup."""
        await self.runner.cleanup()
        asyncio.get_running_loop().set_exception_handler(self.previous_exception_handler)


def connection_limit(wanted: int, config: WebConfig) -> int:
    """`wanted`, or less if the file-descriptor limit cannot hold it plus the backend pools
    (the soft limit is raised toward the hard one first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    pools = config.tcp_pool_size + config.udp_pool_size + config.resolver_pool_size
    reserve = FD_RESERVE + BACKLOG + pools
    needed = wanted + reserve
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    limit = max(1, soft - reserve)
    log.warning(
        "WEB_MAX_CONNECTIONS lowered to fit the file-descriptor limit",
        extra={"wanted": wanted, "limit": limit, "nofile": soft, "reserve": reserve},
    )
    return limit


def loop_exception_handler(throttle: LogThrottle) -> Any:
    """The event loop's error reports (an ``accept()`` failing, a callback raising) through
    `throttle`: one line per kind and interval instead of a traceback each."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "unhandled exception in the event loop")
        exc = context.get("exception")
        throttle.log(message[:120], logging.ERROR, message, exc_info=exc)

    return handle


async def start(app: web.Application, config: WebConfig, port: int | None = None) -> RunningFront:
    """Run `app` on ``config.listen_host``:`port` (default ``config.port``; 0 for any)."""
    throttle = LogThrottle(log, config.log_interval)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(loop_exception_handler(throttle))
    runner = web.AppRunner(
        app,
        access_log_class=JsonAccessLogger,
        shutdown_timeout=config.shutdown_timeout,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
    )
    await runner.setup()
    assert runner.server is not None
    limiter = ConnectionLimiter(
        runner.server, connection_limit(config.max_connections, config), throttle
    )
    site = LimitedSite(runner, config.listen_host, config.port if port is None else port, limiter)
    await site.start()
    return RunningFront(runner, site, previous)


async def serve(app: web.Application, config: WebConfig) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    front = await start(app, config)
    log.info("web front listening", extra={"url": front.site.name, "limit": front.limiter.limit})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await front.close()
