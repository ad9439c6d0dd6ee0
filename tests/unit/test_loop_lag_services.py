"""Each service's loop blocked in-process, seen from its own metrics port.

The service's loop (a Twisted reactor, an asyncio loop) runs in a thread of the test; a
real blocking call (``time.sleep``) is put ON that loop, and the test scrapes the
service's metrics port from the outside meanwhile: ``polyloop_event_loop_blocked_seconds``
must show the block WHILE it lasts (the port's thread answers), and the lag histogram must
hold the late tick afterwards. Real clients also count: N echoes or queries, N more.
Needs nothing running. (The gevent resolver: tests/gevent/test_resolver_lag.py.)
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dns.message
import dns.query
import pytest
from aiohttp import web
from twisted.internet import selectreactor, threads

from services.dns.config import DnsConfig
from services.dns.server import ServerDatagramProtocol, build_factory
from services.tcp_echo.config import TcpEchoConfig
from services.tcp_echo.protocol import Echo, EchoFactory
from services.udp_echo.config import UdpEchoConfig
from services.udp_echo.protocol import ServerUdpEchoProtocol
from services.web.app import create_app
from services.web.config import WebConfig
from services.web.keys import WATCH
from tests.scrape import Samples, lag_over, scrape, value
from tests.unit.watched import start_metrics

BLOCK = 0.8  # seconds the loop is blocked
N = 25  # real requests counted


def watch_a_block(metrics_url: str, block: Callable[[], None]) -> tuple[float, Samples]:
    """Block the loop (``block()`` schedules the blocking call on it), scrape until the
    blocked gauge shows it, then until the late tick is in the histogram.

    Returns (the blocked seconds read during the block, the scrape after it)."""
    before = scrape(metrics_url)
    # idle: not blocked as far as the block's own reading goes (a few ms late as a rule; a
    # loaded CI runner stalls a process 100-250 ms at times): the block must show >= 0.2 s
    assert value(before, "polyloop_event_loop_blocked_seconds") < 0.2
    started = time.monotonic()
    block()
    seen = 0.0
    while seen < 0.2:
        seen = value(scrape(metrics_url), "polyloop_event_loop_blocked_seconds")
        assert time.monotonic() - started < BLOCK, "the block was never seen while it lasted"
    deadline = time.monotonic() + 10
    while True:
        after = scrape(metrics_url)
        if lag_over(after, "0.5") > lag_over(before, "0.5"):
            break
        assert time.monotonic() < deadline, "the late tick never reached the histogram"
    assert value(after, "polyloop_event_loop_blocked_seconds") < 0.2
    return seen, after


@contextmanager
def _running_in_a_thread(run: Callable[[], Any], stop: Callable[[], Any]) -> Iterator[None]:
    """``run`` by a thread of the test; ``stop`` (called from the test's thread) ends it."""
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop()
        thread.join(timeout=10)


@contextmanager
def reactor_in_a_thread() -> Iterator[Any]:
    """A reactor of its own (never the global one), run by a thread of the test."""
    reactor = selectreactor.SelectReactor()
    run = functools.partial(reactor.run, installSignalHandlers=False)
    with _running_in_a_thread(run, lambda: reactor.callFromThread(reactor.stop)):
        yield reactor


@contextmanager
def loop_in_a_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        with _running_in_a_thread(loop.run_forever, lambda: loop.call_soon_threadsafe(loop.stop)):
            yield loop
    finally:
        loop.close()


@contextmanager
def front_in_a_thread(
    config: WebConfig,
) -> Iterator[tuple[asyncio.AbstractEventLoop, web.Application, int, int]]:
    """The front in-process with its control port, served by a loop of its own in a thread
    of the test: that loop, the app, the front's port and its control port."""
    with loop_in_a_thread() as loop:
        app = create_app(config, control_port=True)

        async def setup() -> tuple[web.AppRunner, int, int]:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server = app[WATCH].server
            assert server is not None
            return runner, site._server.sockets[0].getsockname()[1], server.port

        runner, port, control_port = asyncio.run_coroutine_threadsafe(setup(), loop).result(10)
        try:
            yield loop, app, port, control_port
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)


def test_tcp_echo_shows_its_blocked_reactor_and_counts_each_echo() -> None:
    with reactor_in_a_thread() as reactor:
        config = TcpEchoConfig(metrics_port=0)

        def setup() -> tuple[int, int]:
            factory = EchoFactory.forProtocol(Echo, clock=reactor)
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")
            started = start_metrics("tcp-echo", reactor, factory, config)
            return port.getHost().port, started.server.port

        echo_port, metrics_port = threads.blockingCallFromThread(reactor, setup)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with socket.create_connection(("127.0.0.1", echo_port), timeout=5) as client:
            for i in range(N):
                message = b"chunk %d" % i
                client.sendall(message)
                assert client.recv(100) == message
            samples = scrape(url)
            assert value(samples, "polyloop_requests_total") == N
            assert value(samples, "polyloop_tcp_echo_connections_open") == 1
            assert value(samples, "polyloop_tcp_echo_connections_accepted_total") == 1
            assert value(samples, "polyloop_tcp_echo_bytes_echoed_total") == sum(
                len(b"chunk %d" % i) for i in range(N)
            )
        seen, _ = watch_a_block(url, lambda: reactor.callFromThread(time.sleep, BLOCK))
        assert 0.2 <= seen <= BLOCK


def test_dns_shows_its_blocked_reactor_and_counts_each_query() -> None:
    with reactor_in_a_thread() as reactor:
        config = DnsConfig(metrics_port=0)

        def setup() -> tuple[int, int]:
            factory = build_factory(config, reactor)
            protocol = ServerDatagramProtocol(controller=factory, reactor=reactor)
            port = reactor.listenUDP(0, protocol, interface="127.0.0.1")
            started = start_metrics("dns", reactor, factory, config)
            return port.getHost().port, started.server.port

        dns_port, metrics_port = threads.blockingCallFromThread(reactor, setup)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        for i in range(N):
            name = "www.polyloop.test" if i % 5 else "nope.polyloop.test"
            dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=dns_port, timeout=2)
        samples = scrape(url)
        assert value(samples, "polyloop_requests_total") == N
        assert value(samples, "polyloop_dns_queries_total", rcode="NOERROR", qtype="A") == N - 5
        assert value(samples, "polyloop_dns_queries_total", rcode="NXDOMAIN", qtype="A") == 5
        assert value(samples, "polyloop_dns_delayed_pending") == 0
        seen, _ = watch_a_block(url, lambda: reactor.callFromThread(time.sleep, BLOCK))
        assert 0.2 <= seen <= BLOCK


def test_udp_echo_shows_its_blocked_loop_and_counts_each_datagram() -> None:
    with loop_in_a_thread() as loop:
        config = UdpEchoConfig(metrics_port=0)

        async def setup() -> tuple[int, int]:
            transport, protocol = await loop.create_datagram_endpoint(
                ServerUdpEchoProtocol, local_addr=("127.0.0.1", 0)
            )
            started = start_metrics("udp-echo", loop, protocol, config)
            return transport.get_extra_info("sockname")[1], started.server.port

        udp_port, metrics_port = asyncio.run_coroutine_threadsafe(setup(), loop).result(10)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(2)
            for i in range(N):
                client.sendto(b"datagram %d" % i, ("127.0.0.1", udp_port))
                assert client.recv(100) == b"datagram %d" % i
        samples = scrape(url)
        assert value(samples, "polyloop_requests_total") == N
        assert value(samples, "polyloop_udp_echo_datagrams_echoed_total") == N
        assert value(samples, "polyloop_udp_echo_datagrams_dropped_total", reason="oversize") == 0
        seen, _ = watch_a_block(url, lambda: loop.call_soon_threadsafe(time.sleep, BLOCK))
        assert 0.2 <= seen <= BLOCK


def test_web_shows_its_blocked_loop_and_counts_what_it_serves() -> None:
    with front_in_a_thread(WebConfig(metrics_port=0)) as (loop, _, web_port, metrics_port):
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        for _ in range(N):  # the demo's routes count, whatever the answer (here a 422)
            fetch(f"http://127.0.0.1:{web_port}/api/echo/tcp", b"{}")
        # not what the front serves: its health, the dashboard's reads, the steady ping
        fetch(f"http://127.0.0.1:{web_port}/healthz")
        fetch(f"http://127.0.0.1:{web_port}/api/openapi.json")
        fetch(f"http://127.0.0.1:{web_port}/api/ping")
        samples = scrape(url)
        assert value(samples, "polyloop_requests_total") == N
        assert value(samples, "polyloop_probes_total") == 1
        seen, _ = watch_a_block(url, lambda: loop.call_soon_threadsafe(time.sleep, BLOCK))
        assert 0.2 <= seen <= BLOCK


def fetch(url: str, body: bytes | None = None) -> bytes:
    """GET `url` (POST `body`); an error status is an answer too."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, body, timeout=5) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.read()


@pytest.mark.parametrize("metrics", ["0", "1"])
def test_the_switch_turns_the_lag_timer_and_the_port_off(metrics: str) -> None:
    config = TcpEchoConfig.from_env({"POLYLOOP_METRICS": metrics, "TCP_ECHO_METRICS_PORT": "0"})
    with reactor_in_a_thread() as reactor:
        factory = EchoFactory.forProtocol(Echo, clock=reactor)
        started = threads.blockingCallFromThread(
            reactor, lambda: start_metrics("tcp-echo", reactor, factory, config)
        )
        assert (started is None) == (metrics == "0")
