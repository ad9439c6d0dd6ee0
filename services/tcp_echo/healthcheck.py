"""Is tcp-echo answering? The book's ``EchoClient`` (services/tcp_echo/client.py) sends a
random payload to 127.0.0.1:TCP_ECHO_PORT, which must come back whole within two seconds
(marked as the stack's own probe, ``services.common.probes``: never counted as served).

Run: ``python -m services.tcp_echo.healthcheck`` — exit 0 if healthy, else 1 and one JSON
line saying why (compose uses it as the container's healthcheck every few seconds, so the
client is exercised all the time; the contract is in services/common/healthcheck.py).
"""

from __future__ import annotations

import os
import sys

from twisted.internet import defer

from services.common import healthcheck, probes
from services.tcp_echo.client import FAILURES, echo_within

TIMEOUT = 2.0


def check(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> str | None:
    """None when the payload comes back unchanged, else what went wrong.

    Runs Twisted's global reactor until the round trip ends, so once per process (a reactor
    does not restart): that is how ``python -m services.tcp_echo.healthcheck`` calls it.
    """
    from twisted.internet import reactor

    # marked: tcp-echo counts it as the stack's own probe, never as served
    payload = probes.marked(b"healthcheck " + os.urandom(8).hex().encode())
    outcome: list[str | None] = []

    async def round_trip() -> None:
        try:
            echoed = await echo_within(reactor, timeout, host, port, payload)
        except FAILURES as exc:
            outcome.append(f"no echo from {host}:{port} within {timeout}s: {exc}")
        else:
            if echoed == payload:
                outcome.append(None)
            else:
                outcome.append(f"sent {len(payload)} bytes to {host}:{port}, got {echoed!r}")
        finally:
            reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(round_trip()))
    reactor.run(installSignalHandlers=False)
    return outcome[0] if outcome else "the reactor stopped before the round trip ended"


if __name__ == "__main__":
    sys.exit(healthcheck.main("tcp-echo", check))
