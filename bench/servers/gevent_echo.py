"""A minimal gevent ``StreamServer`` echo (the greenlet-per-connection style).

run: python bench/servers/gevent_echo.py 18000
try: nc 127.0.0.1 18000
"""

import signal
import sys

import gevent
from gevent.server import StreamServer


def echo(sock, address):
    while True:
        data = sock.recv(65536)
        if not data:
            break
        sock.sendall(data)


if __name__ == "__main__":
    server = StreamServer(("127.0.0.1", int(sys.argv[1])), echo)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()
