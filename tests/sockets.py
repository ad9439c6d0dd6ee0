"""Sockets the tests need that take some finding."""

from __future__ import annotations

import socket

import pytest


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
