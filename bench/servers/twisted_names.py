"""The least Twisted Names does to serve a BIND zone file: ``BindAuthority`` behind a
``DNSServerFactory``, UDP and TCP on one port, as Twisted's ``names/tap.py`` wires it.
The floor the dns service (the same zone file, plus its policy) is measured against.

run: python bench/servers/twisted_names.py 27202 [services/dns/polyloop.test.zone]
try: dig +norec @127.0.0.1 -p 27202 www.polyloop.test
"""

import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.names import authority, dns, server

ZONE_FILE = Path(__file__).resolve().parents[2] / "services" / "dns" / "polyloop.test.zone"


def main(port, zone_file):
    factory = server.DNSServerFactory(authorities=[authority.BindAuthority(zone_file)])
    reactor.listenUDP(port, dns.DNSDatagramProtocol(controller=factory), interface="127.0.0.1")
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else str(ZONE_FILE))
