"""The book's ten-line Twisted echo, verbatim apart from the port (argv[1], 127.0.0.1).

run: python bench/servers/book_echo.py 18000
try: nc 127.0.0.1 18000
"""

import sys

from twisted.internet import reactor
from twisted.internet.protocol import Protocol, ServerFactory

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8000


class Echo(Protocol):
    def dataReceived(self, data):
        "As soon as any data is received, echo it back."
        self.transport.write(data)


def main():
    """This runs the protocol on port 8000"""
    factory = ServerFactory()
    factory.protocol = Echo
    reactor.listenTCP(PORT, factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
