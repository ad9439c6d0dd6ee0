"""Run the ``dns`` service: ``python -m services.dns`` (settings: see ``config.py``).

Serves ``polyloop.test`` on LISTEN_HOST:DNS_PORT, UDP and TCP. Try it:

    DNS_PORT=11053 .venv/bin/python -m services.dns
    dig +norec @127.0.0.1 -p 11053 www.polyloop.test +tcp

SIGTERM (or Ctrl-C) stops the reactor: both ports stop listening, delayed answers still
waiting are dropped (their clients retry elsewhere), and the process exits 0 at once.
"""

from __future__ import annotations

import logging

from twisted.internet import defer, error, interfaces, task

from services.common.logging import forward_twisted_logs
from services.common.loops import twisted as loop_watch
from services.dns import receive
from services.dns.config import DnsConfig
from services.dns.metrics import DnsCollector
from services.dns.server import ServerDatagramProtocol, build_factory

log = logging.getLogger("services.dns")


def main(reactor: interfaces.IReactorCore, config: DnsConfig) -> defer.Deferred:
    """Build the server on the reactor it is handed and listen on UDP and TCP; the Deferred
    fires once both ports are closed at shutdown (or fails with SystemExit: the exit code)."""
    try:
        factory = build_factory(config, reactor)
    except (OSError, ValueError, IndexError, NotImplementedError) as exc:
        # a broken zone file stops the start with its reason, not a traceback
        log.error(
            "cannot load the zone file",
            extra={"zone_file": str(config.zone_file), "error": str(exc)},
        )
        return defer.fail(SystemExit(2))
    where = {"host": config.listen_host, "port": config.port}
    try:
        udp = reactor.listenUDP(
            config.port, ServerDatagramProtocol(controller=factory), interface=config.listen_host
        )
        tcp = reactor.listenTCP(config.port, factory, interface=config.listen_host)
    except error.CannotListenError as exc:
        log.error("cannot listen", extra={**where, "error": str(exc)})
        return defer.fail(SystemExit(1))
    buffer = receive.size_buffer(udp.getHandle(), config.udp_receive_buffer)
    if buffer < 2 * config.udp_receive_buffer:
        log.warning(
            "UDP receive buffer capped by the host's net.core.rmem_max",
            extra={"asked": config.udp_receive_buffer, "given": buffer},
        )
    try:
        loop_watch.start(
            reactor,
            config,
            DnsCollector(factory, udp_port=udp.getHost().port, receive_buffer=buffer),
            faults=factory.faults,
        )
    except OSError as exc:
        log.error("cannot serve metrics", extra={"port": config.metrics_port, "error": str(exc)})
        return defer.fail(SystemExit(1))
    log.info(
        "serving polyloop.test",
        extra={**where, "zone_file": str(config.zone_file), "udp_receive_buffer": buffer},
    )
    stopped: defer.Deferred = defer.Deferred()

    def stop_listening() -> defer.Deferred:
        log.info("shutting down: closing the UDP and TCP ports")
        closed = defer.gatherResults(
            [defer.maybeDeferred(udp.stopListening), defer.maybeDeferred(tcp.stopListening)]
        )
        return closed.addBoth(lambda _: stopped.callback(None))

    # react() runs the reactor with Twisted's own SIGTERM/SIGINT handlers (reactor.stop)
    reactor.addSystemEventTrigger("before", "shutdown", stop_listening)
    return stopped


def run() -> None:
    config = DnsConfig.load()
    forward_twisted_logs()
    task.react(main, [config])


if __name__ == "__main__":
    run()
