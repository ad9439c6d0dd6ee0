"""The least a gevent pywsgi program does to answer the resolver's ``POST /resolve`` for
names it already knows: parse the JSON, look each name up in a dict, answer JSON of the
resolver's shape. The floor the resolver's one-cached-name request is measured against.

run: python bench/servers/pywsgi_resolve.py 27201
try: curl -s 127.0.0.1:27201/resolve -d '{"names": ["www.polyloop.test"]}'
"""

import json
import socket
import sys
from pathlib import Path

from gevent.pywsgi import WSGIHandler, WSGIServer

ZONE_FILE = Path(__file__).resolve().parents[2] / "services" / "dns" / "polyloop.test.zone"


def load_zone(path=ZONE_FILE):
    """{"www.polyloop.test": ["192.0.2.10", ...]} from the zone file's A and AAAA lines."""
    addresses = {}
    for line in path.read_text().splitlines():
        fields = line.split(";")[0].split()
        if len(fields) == 4 and fields[1] == "IN" and fields[2] in ("A", "AAAA"):
            name = "polyloop.test" if fields[0] == "@" else fields[0] + ".polyloop.test"
            addresses.setdefault(name, []).append(fields[3])
    return addresses


ADDRESSES = load_zone()


def application(environ, start_response):
    request = json.loads(environ["wsgi.input"].read())
    results = []
    for name in request["names"]:
        found = ADDRESSES.get(name.rstrip(".").lower())
        error = None if found else "not_found"
        results.append({"name": name, "addresses": found or [], "error": error, "elapsed_ms": 0})
    body = json.dumps({"results": results, "elapsed_ms": 0, "mode": "concurrent"}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


class NoDelayHandler(WSGIHandler):
    def handle(self):
        # pywsgi writes the headers and the body separately: with Nagle on, the body
        # waits for the client's delayed ACK (40 ms), as in the resolver's own server.py
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()


if __name__ == "__main__":
    address = ("127.0.0.1", int(sys.argv[1]))
    WSGIServer(address, application, log=None, handler_class=NoDelayHandler).serve_forever()
