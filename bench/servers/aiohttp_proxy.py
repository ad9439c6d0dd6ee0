"""The least an aiohttp front does to pass calls on: ``/healthz``, ``/api/resolve``
through one pooled ``ClientSession``, ``/api/echo/tcp`` over pooled asyncio streams,
``/api/echo/udp`` over pooled connected datagram endpoints, and ``/api/fanout`` doing
all three with ``asyncio.gather``. No validation, no timeouts, no metrics, no error
mapping: the floor the web front's routes are measured against (what aiohttp's own
server and client cost by themselves).

run: RESOLVER_PORT=8053 TCP_ECHO_PORT=8000 UDP_ECHO_PORT=9999 \
     python bench/servers/aiohttp_proxy.py 27203
try: curl -s 127.0.0.1:27203/api/resolve -d '{"names": ["www.polyloop.test"]}'
"""

import asyncio
import os
import sys

import aiohttp
from aiohttp import web

routes = web.RouteTableDef()
SESSION = web.AppKey("session", aiohttp.ClientSession)
PORTS = web.AppKey("ports", dict)
TCP_IDLE: list = []
UDP_IDLE: list = []


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport
        self.reply = None

    def datagram_received(self, data, addr):
        if self.reply is not None and not self.reply.done():
            self.reply.set_result(data)


async def echo_tcp(app, data):
    if TCP_IDLE:
        reader, writer = TCP_IDLE.pop()
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", app[PORTS]["tcp"])
    writer.write(data)
    reply = await reader.readexactly(len(data))
    TCP_IDLE.append((reader, writer))
    return reply


async def echo_udp(app, data):
    if UDP_IDLE:
        endpoint = UDP_IDLE.pop()
    else:
        loop = asyncio.get_running_loop()
        _, endpoint = await loop.create_datagram_endpoint(
            Echo, remote_addr=("127.0.0.1", app[PORTS]["udp"])
        )
    endpoint.reply = asyncio.get_running_loop().create_future()
    endpoint.transport.sendto(data)
    reply = await endpoint.reply
    UDP_IDLE.append(endpoint)
    return reply


async def resolve(app, request):
    async with app[SESSION].post("/resolve", json=request) as response:
        return await response.json()


@routes.get("/healthz")
async def healthz(request):
    return web.json_response({"status": "ok"})


@routes.post("/api/resolve")
async def api_resolve(request):
    return web.json_response(await resolve(request.app, await request.json()))


@routes.post("/api/echo/tcp")
async def api_echo_tcp(request):
    reply = await echo_tcp(request.app, (await request.json())["message"].encode())
    return web.json_response({"echo": reply.decode(), "bytes": len(reply)})


@routes.post("/api/echo/udp")
async def api_echo_udp(request):
    reply = await echo_udp(request.app, (await request.json())["message"].encode())
    return web.json_response({"echo": reply.decode(), "bytes": len(reply)})


@routes.post("/api/fanout")
async def api_fanout(request):
    body = await request.json()
    data = body["message"].encode()
    tcp, udp, names = await asyncio.gather(
        echo_tcp(request.app, data),
        echo_udp(request.app, data),
        resolve(request.app, {"names": body["names"]}),
    )
    return web.json_response({"tcp": tcp.decode(), "udp": udp.decode(), "resolve": names})


async def session(app):
    resolver = f"http://127.0.0.1:{os.environ.get('RESOLVER_PORT', '8053')}"
    app[SESSION] = aiohttp.ClientSession(base_url=resolver)
    yield
    await app[SESSION].close()


def main(port):
    app = web.Application()
    app[PORTS] = {
        "tcp": int(os.environ.get("TCP_ECHO_PORT", "8000")),
        "udp": int(os.environ.get("UDP_ECHO_PORT", "9999")),
    }
    app.cleanup_ctx.append(session)
    app.add_routes(routes)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
