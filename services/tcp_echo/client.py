"""The book's Twisted echo client: connect, write a message, print the echo, exit.

    .venv/bin/python -m services.tcp_echo.client       # b"hello, world!" to 127.0.0.1:8000
    .venv/bin/python -m services.tcp_echo.client "bonjour" --port 24000
    TCP_ECHO_PORT=24000 .venv/bin/python -m services.tcp_echo.client

``EchoClient`` is the chapter's protocol: ``connectionMade`` writes the message and
``dataReceived`` collects the echo; here it also closes once the whole message is back and
hands it over through a Deferred, so a caller can wait for it. ``echo()`` runs it over an
endpoint (``HostnameEndpoint`` + ``connectProtocol``) and ``task.react`` runs ``main``.

This is a command-line client, not a service: it prints the echo to stdout as the book does
(the services log JSON lines instead). The tcp-echo healthcheck runs the same ``EchoClient``
without printing anything. Exit status 0 when the echo matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet import defer, endpoints, error, task
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from services.common import settings
from services.common.catalogue import service
from services.common.settings import ConfigError

MESSAGE = b"hello, world!"
TIMEOUT = 5.0
TCP_ECHO = service("tcp-echo")


class EchoClient(Protocol):
    """Write `message` on connect; fire `finished` with what came back once it all has."""

    def __init__(self, message: bytes = MESSAGE) -> None:
        self.message = message
        self.received = bytearray()
        self.finished: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.message)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= len(self.message):
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        # also when the server closes first: the caller compares what it got
        self.finished.callback(bytes(self.received))


async def echo(reactor: IReactorTCP, host: str, port: int, message: bytes = MESSAGE) -> bytes:
    """Connect to host:port, send `message`, return the bytes echoed before the close."""
    endpoint = endpoints.HostnameEndpoint(reactor, host, port)
    client = await endpoints.connectProtocol(endpoint, EchoClient(message))
    try:
        return await client.finished
    finally:
        if client.transport.connected:  # cancelled by a timeout: do not leave it open
            client.transport.abortConnection()


def echo_within(
    reactor: IReactorTime, timeout: float, host: str, port: int, message: bytes = MESSAGE
) -> defer.Deferred[bytes]:
    """``echo()`` with a deadline: fails with ``defer.TimeoutError`` after `timeout` s."""
    return defer.ensureDeferred(echo(reactor, host, port, message)).addTimeout(timeout, reactor)


# what echo_within fails with when nothing (or too little) comes back in time
FAILURES = (error.ConnectError, error.DNSLookupError, defer.TimeoutError, OSError)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m services.tcp_echo.client", description=__doc__.split("\n")[0]
    )
    parser.add_argument("message", nargs="?", default=MESSAGE.decode(), help="what to send")
    try:
        default_port = settings.port(TCP_ECHO).read()
    except ConfigError as exc:
        parser.error(str(exc))
    parser.add_argument("--host", default=settings.host(TCP_ECHO).read())
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds")
    return parser.parse_args(argv)


async def run(reactor: IReactorTCP, argv: list[str]) -> None:
    args = parse(argv)
    message = args.message.encode()
    try:
        echoed = await echo_within(reactor, args.timeout, args.host, args.port, message)
    except FAILURES as exc:
        print(f"no echo from {args.host}:{args.port}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(echoed.decode(errors="replace"))
    if echoed != message:
        print(f"sent {len(message)} bytes, {len(echoed)} came back", file=sys.stderr)
        raise SystemExit(1)


def main(reactor: IReactorTCP, *argv: str) -> defer.Deferred[None]:
    return defer.ensureDeferred(run(reactor, list(argv)))


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
