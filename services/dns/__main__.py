"""Run the ``dns`` service: ``python -m services.dns`` (settings: see ``config.py``).

Serves ``polyloop.test`` on LISTEN_HOST:DNS_PORT, UDP and TCP. Try it:

    DNS_PORT=11053 .venv/bin/python -m services.dns
    dig @127.0.0.1 -p 11053 www.polyloop.test +tcp

SIGTERM (or Ctrl-C) stops the reactor: both ports stop listening, delayed answers still
waiting are dropped (their clients retry elsewhere), and the process exits 0 at once.
"""

from __future__ import annotations

import logging
import sys

from twisted.internet import defer, error, interfaces, task
from twisted.logger import STDLibLogObserver, globalLogBeginner

from services.common.config import ConfigError
from services.common.logging import setup_logging
from services.dns.config import DnsConfig
from services.dns.server import AuthoritativeServerFactory, ServerDatagramProtocol, build_factory

log = logging.getLogger("services.dns")


def main(
    reactor: interfaces.IReactorCore, config: DnsConfig, factory: AuthoritativeServerFactory
) -> defer.Deferred:
    """Listen on UDP and TCP; the Deferred fires once both ports are closed at shutdown."""
    try:
        udp = reactor.listenUDP(
            config.port, ServerDatagramProtocol(controller=factory), interface=config.host
        )
        tcp = reactor.listenTCP(config.port, factory, interface=config.host)
    except error.CannotListenError as exc:
        log.error(
            "cannot listen", extra={"host": config.host, "port": config.port, "error": str(exc)}
        )
        return defer.fail(SystemExit(1))
    log.info(
        "serving polyloop.test",
        extra={"host": config.host, "port": config.port, "zone_file": str(config.zone_file)},
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
    try:
        config = DnsConfig.from_env()
    except ConfigError as exc:
        setup_logging("dns")
        log.error("invalid configuration: %s", exc)
        sys.exit(2)
    setup_logging("dns", config.log_level)
    globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")], redirectStandardIO=False)
    from twisted.internet import reactor

    try:
        factory = build_factory(config, reactor)
    except (OSError, ValueError, IndexError, NotImplementedError) as exc:
        # a broken zone file stops the start with its reason, not a traceback
        log.error("cannot load the zone file %s: %s", config.zone_file, exc)
        sys.exit(2)
    task.react(main, [config, factory])


if __name__ == "__main__":
    run()
