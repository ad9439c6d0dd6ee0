"""A minimal asyncio datagram echo: the seed's ``ServerUdpEchoProtocol`` without its
per-datagram print (a print per datagram would measure the terminal, not the loop).

run: python bench/servers/asyncio_udp_echo.py 19999 [--uvloop]
try: nc -u 127.0.0.1 19999
"""

import asyncio
import signal
import sys


class ServerUdpEchoProtocol:
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

    def error_received(self, exc):
        pass  # an ICMP error from a vanished client: nothing to echo to

    def connection_lost(self, exc):
        pass


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        ServerUdpEchoProtocol, local_addr=("127.0.0.1", port)
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        transport.close()


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    asyncio.run(main(int(sys.argv[1])))
