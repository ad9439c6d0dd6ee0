"""Run tcp-echo: ``python -m services.tcp_echo`` (see config.py for the variables).

connect with: nc 127.0.0.1 8000

This module only wires config, JSON logging, the listening endpoint and SIGTERM, in the shape
every ``__main__`` has: read config -> ``setup_logging`` -> build with the loop it is handed
(``task.react`` hands ``main`` the reactor) -> serve. Logged through ``twisted.logger``:
each field of an event is also a JSON key of the line (``forward_twisted_logs``).
On SIGTERM (or Ctrl-C) the reactor's "before shutdown" trigger stops listening, lets
every connection flush what it already echoed for up to TCP_ECHO_DRAIN_SECONDS,
aborts the rest, and the process exits 0.
"""

from __future__ import annotations

from twisted.internet import defer, endpoints, task
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorCore
from twisted.logger import Logger

from services.common.logging import forward_twisted_logs
from services.common.loops import twisted as loop_watch
from services.tcp_echo.config import TcpEchoConfig
from services.tcp_echo.metrics import TcpEchoCollector
from services.tcp_echo.protocol import Echo, EchoFactory

SERVICE = "tcp-echo"
# Twisted's default backlog (50) makes a burst of connects (the web's pool warming up,
# Locust spawning) wait a second for a SYN retry; the kernel caps it at somaxconn anyway
BACKLOG = 1024
log = Logger(namespace="tcp_echo")


def endpoint_description(config: TcpEchoConfig) -> str:
    """The listen address as a Twisted endpoint string (an IPv6 host needs its colons quoted)."""
    interface = endpoints.quoteStringArgument(config.listen_host)
    return f"tcp:port={config.port}:interface={interface}:backlog={BACKLOG}"


async def shutdown(port: IListeningPort, factory: EchoFactory, grace: float) -> None:
    log.info(
        "stopping: no new connections, draining {open} for up to {grace}s",
        open=factory.open_connections,
        grace=grace,
    )
    await port.stopListening()
    await factory.close_all(grace)
    log.info(
        "stopped: {total} connections served, {bytes} bytes echoed, {refused} refused",
        total=factory.connections_total,
        bytes=factory.bytes_echoed,
        refused=factory.connections_refused,
    )


async def serve(reactor: IReactorCore, config: TcpEchoConfig) -> None:
    factory = EchoFactory.forProtocol(
        Echo,
        clock=reactor,
        max_connections=config.max_connections,
        idle_timeout=config.idle_timeout,
        drain_seconds=config.drain_seconds,
    )
    endpoint = endpoints.serverFromString(reactor, endpoint_description(config))
    try:
        port = await endpoint.listen(factory)
    except CannotListenError as exc:
        log.error("cannot listen on {where}: {why}", where=endpoint_description(config), why=exc)
        raise SystemExit(1) from None
    try:
        loop_watch.start(
            reactor,
            config,
            TcpEchoCollector(factory),
            faults=factory.faults,
        )
    except OSError as exc:
        log.error("cannot serve metrics on port {port}: {why}", port=config.metrics_port, why=exc)
        raise SystemExit(1) from None
    reactor.addSystemEventTrigger(
        "before",
        "shutdown",
        lambda: defer.ensureDeferred(shutdown(port, factory, config.drain_seconds)),
    )
    log.info(
        "listening on {host}:{port} (max {limit} connections, idle timeout {idle}s)",
        host=config.listen_host,
        port=port.getHost().port,
        limit=config.max_connections,
        idle=config.idle_timeout,
    )
    # serve until the reactor stops (SIGTERM); task.react then exits 0
    await defer.Deferred()


def main(reactor: IReactorCore, config: TcpEchoConfig) -> defer.Deferred[None]:
    return defer.ensureDeferred(serve(reactor, config))


def run() -> None:
    config = TcpEchoConfig.load()
    forward_twisted_logs()
    task.react(main, [config])


if __name__ == "__main__":
    run()
