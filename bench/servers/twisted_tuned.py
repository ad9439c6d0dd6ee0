"""The book's Twisted echo with what Twisted itself offers to go faster, one switch each,
so the harness can measure every switch alone instead of assuming it helps.

run: python bench/servers/twisted_tuned.py 18000 [--reactor epoll|poll|select|asyncio|uvloop]
     [--nodelay] [--write-through] [--processes N]
try: nc 127.0.0.1 18000

--reactor        which reactor runs the loop (asyncio/uvloop: Twisted on an asyncio loop).
--nodelay        TCP_NODELAY on every accepted connection (transport.setTcpNoDelay).
--write-through  send at once from dataReceived when nothing is queued, instead of
                 queueing and waiting for the next writable event (saves two epoll_ctl
                 calls and a loop turn per message; falls back to transport.write).
--processes N    N reactor processes sharing the port with SO_REUSEPORT, each adopting
                 its own listening socket (reactor.adoptStreamPort); the kernel spreads
                 connections over them.
"""

import argparse
import signal
import socket
import subprocess
import sys


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument(
        "--reactor", default="epoll", choices=["epoll", "poll", "select", "asyncio", "uvloop"]
    )
    parser.add_argument("--nodelay", action="store_true")
    parser.add_argument("--write-through", action="store_true")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--reuseport", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def install_reactor(name: str) -> None:
    if name == "epoll":
        from twisted.internet import epollreactor

        epollreactor.install()
    elif name == "poll":
        from twisted.internet import pollreactor

        pollreactor.install()
    elif name == "select":
        from twisted.internet import selectreactor

        selectreactor.install()
    else:
        import asyncio

        if name == "uvloop":
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        from twisted.internet import asyncioreactor

        asyncioreactor.install(asyncio.new_event_loop())


def supervise(args: argparse.Namespace) -> None:
    """Run N single-process copies with SO_REUSEPORT; SIGTERM stops them all."""
    child = [sys.executable, __file__, str(args.port), "--reactor", args.reactor, "--reuseport"]
    child += ["--nodelay"] * args.nodelay + ["--write-through"] * args.write_through
    procs = [subprocess.Popen(child) for _ in range(args.processes)]  # noqa: S603

    def stop(signum, frame):
        for proc in procs:
            proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    for proc in procs:
        proc.wait()


def serve(args: argparse.Namespace) -> None:
    install_reactor(args.reactor)
    from twisted.internet import reactor
    from twisted.internet.protocol import Protocol, ServerFactory

    class Echo(Protocol):
        def connectionMade(self):
            if args.nodelay:
                self.transport.setTcpNoDelay(True)

        def dataReceived(self, data):
            "As soon as any data is received, echo it back."
            self.transport.write(data)

    class WriteThroughEcho(Echo):
        def dataReceived(self, data):
            transport = self.transport
            # nothing queued: the kernel buffer is the only queue, so order is kept
            if transport._tempDataLen == 0 and transport.offset >= len(transport.dataBuffer):
                sent = transport.writeSomeData(data)
                if isinstance(sent, int):
                    data = data[sent:]
            if data:
                transport.write(data)

    factory = ServerFactory()
    factory.protocol = WriteThroughEcho if args.write_through else Echo
    if args.reuseport:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", args.port))
        sock.listen(1024)
        sock.setblocking(False)
        reactor.adoptStreamPort(sock.fileno(), socket.AF_INET, factory)
        sock.close()  # the reactor holds its own duplicate of the descriptor
    else:
        reactor.listenTCP(args.port, factory, backlog=1024, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    arguments = parse()
    if arguments.processes > 1:
        supervise(arguments)
    else:
        serve(arguments)
