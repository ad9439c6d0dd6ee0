"""A minimal asyncio ``Protocol`` TCP echo; ``--uvloop`` runs the same code on uvloop.

run: python bench/servers/asyncio_echo.py 18000 [--uvloop]
try: nc 127.0.0.1 18000
"""

import asyncio
import signal
import sys


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    asyncio.run(main(int(sys.argv[1])))
