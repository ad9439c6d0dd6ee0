"""A counting UDP relay between a resolver and the real dns service, for tests that must see
how many queries actually leave the resolver (and of which type), and how many at once."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterable

import dns.message
import dns.rdatatype
import gevent


class CountingRelay:
    """Forwards each datagram to ``upstream_port`` and its answer back; counts questions.

    ``queries`` counts every datagram, ``by_type`` the questions by record type ("A",
    "AAAA"), ``asked`` by (name, type), ``most_in_flight`` the most questions waiting for
    their answer at once. The first question of each (name, type) in ``lose_first`` is
    dropped, as a full receive buffer would drop it.
    """

    def __init__(self, upstream_port: int, lose_first: Iterable[tuple[str, str]] = ()) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.by_type: Counter[str] = Counter()
        self.asked: Counter[tuple[str, str]] = Counter()
        self.lose_first = set(lose_first)
        self.in_flight = 0
        self.most_in_flight = 0
        self._loop = gevent.spawn(self._serve)

    def _serve(self) -> None:
        while True:
            query, client = self.sock.recvfrom(65535)
            self.queries += 1
            question = dns.message.from_wire(query).question[0]
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.by_type[rdtype] += 1
            key = (question.name.to_text(omit_final_dot=True), rdtype)
            self.asked[key] += 1
            if key in self.lose_first and self.asked[key] == 1:
                continue
            gevent.spawn(self._forward, query, client)

    def _forward(self, query: bytes, client: tuple[str, int]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
                upstream.settimeout(15)  # the longest delay-N the dns service honours, and more
                upstream.sendto(query, self.upstream)
                answer = upstream.recv(65535)
        except OSError:
            return  # the dns service dropped it: the resolver sees a timeout, as it would
        finally:
            self.in_flight -= 1
        self.sock.sendto(answer, client)

    def close(self) -> None:
        self._loop.kill()
        self.sock.close()
