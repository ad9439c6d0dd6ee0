"""Sockets the tests need that take some finding."""

from __future__ import annotations

import functools
import socket

import pytest


@functools.cache
def _reservation(kind: socket.SocketKind) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_DGRAM:
        # connected elsewhere, it takes no datagram from anyone else: they get the ICMP
        # "port unreachable" of a closed port
        sock.connect(("127.0.0.1", 9))
    return sock


def closed_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A loopback port that refuses: TCP connects get ECONNREFUSED, UDP senders an ICMP
    port unreachable. The port stays bound, never listening, for the whole session: a port
    bound and released could be the next ephemeral port of any socket on the machine (a
    running stack's, or the front's own probe talking to itself), and then it answers."""
    return _reservation(kind).getsockname()[1]


def privileged_udp_socket() -> socket.socket:
    """A UDP socket bound to 127.0.0.1:<a free port below 1024> (needs root or
    CAP_NET_BIND_SERVICE: the test skips without)."""
    for port in range(1023, 899, -1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", port))
        except PermissionError:
            sock.close()
            pytest.skip("binding a port below 1024 needs root or CAP_NET_BIND_SERVICE")
        except OSError:  # in use: try the next one
            sock.close()
            continue
        return sock
    pytest.skip("no free UDP port below 1024 on 127.0.0.1")
