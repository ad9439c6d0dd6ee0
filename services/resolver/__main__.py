"""Run the resolver: ``python -m services.resolver`` (RESOLVER_PORT, default 8053).

Try it: curl -s localhost:8053/resolve -d '{"names": ["www.polyloop.test"]}'
"""

import os

# gevent reads GEVENT_RESOLVER when the hub is created: choose before anything else
# (see backends.py for why dnspython rather than gevent's default thread pool)
os.environ.setdefault("GEVENT_RESOLVER", "dnspython")

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402

from services.common.loops import gevent as loop_watch  # noqa: E402
from services.resolver.api import ResolverApp  # noqa: E402
from services.resolver.config import ResolverConfig  # noqa: E402
from services.resolver.metrics import ResolverCollector  # noqa: E402
from services.resolver.request import Limits  # noqa: E402
from services.resolver.resolve import Resolver, server_address  # noqa: E402
from services.resolver.server import ResolverServer  # noqa: E402

log = logging.getLogger("services.resolver")


def main() -> int:
    config = ResolverConfig.load()
    try:
        dns_ip = server_address(config.dns_host, config.dns_port)
    except OSError as exc:
        log.error("cannot resolve DNS_HOST", extra={"host": config.dns_host, "error": str(exc)})
        return 1
    resolver = Resolver(
        dns_ip,
        config.dns_port,
        backend=config.backend,
        pool_size=config.pool_size,
        cache_size=config.cache_size,
        max_lookups=config.max_lookups,
        external=config.external,
        retry_after=config.retry_after,
    )
    app = ResolverApp(
        resolver,
        Limits(config.max_names, config.max_timeout, config.default_timeout),
        max_body=config.max_body,
    )
    server = ResolverServer(
        (config.listen_host, config.port),
        app,
        max_connections=config.max_connections,
        client_timeout=config.client_timeout,
        request_timeout=config.request_timeout,
    )
    try:
        server.start()
    except OSError as exc:
        where = {"host": config.listen_host, "port": config.port}
        log.error("cannot listen", extra={**where, "error": str(exc)})
        return 1
    try:
        loop_watch.start(
            config,
            ResolverCollector(app, resolver),
            faults=resolver.faults,
            registry=app.metrics.registry,  # the API port's GET /metrics shows them too
        )
    except OSError as exc:
        log.error("cannot serve metrics on port %s: %s", config.metrics_port, exc)
        return 1

    if config.dns_host != dns_ip:
        gevent.spawn(follow_dns_host, resolver, config.dns_host, config.dns_port)

    def stop(signum: int) -> None:
        log.info("stopping", extra={"signal": signum, "drain_seconds": config.drain_seconds})
        server.stop(timeout=config.drain_seconds)

    gevent.signal_handler(signal.SIGTERM, stop, signal.SIGTERM)
    gevent.signal_handler(signal.SIGINT, stop, signal.SIGINT)
    log.info(
        "listening",
        extra={
            "address": f"{config.listen_host}:{config.port}",
            "dns": f"{dns_ip}:{config.dns_port}",
            "backend": config.backend,
            "gevent_resolver": os.environ["GEVENT_RESOLVER"],
            "pool_size": config.pool_size,
            "cache_size": config.cache_size,
            "max_lookups": config.max_lookups,
            "external": config.external,
            "retry_after": config.retry_after,
        },
    )
    server.serve_forever(stop_timeout=config.drain_seconds)
    log.info("stopped")
    return 0


def follow_dns_host(resolver: Resolver, host: str, port: int, every: float = 5.0) -> None:
    """Keep the dns service's address current: a recreated container gets a new one."""
    threadpool = gevent.get_hub().threadpool  # the lookup blocks: keep it off the hub
    while True:
        gevent.sleep(every)
        try:
            address = threadpool.apply(server_address, (host, port))
        except OSError as exc:  # the dns container is down: keep the last address
            log.debug("DNS_HOST lookup failed", extra={"host": host, "error": repr(exc)})
            continue
        if address != resolver.dns_ip:
            log.info("dns service moved", extra={"from": resolver.dns_ip, "to": address})
            resolver.use_server(address)


if __name__ == "__main__":
    sys.exit(main())
