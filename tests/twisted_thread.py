"""A fresh Twisted reactor running in a thread, for unit tests over real sockets.

Each test gets its own reactor (not the installed global one, which cannot be restarted),
as Twisted's own ``ReactorBuilder`` tests do: listen on 127.0.0.1 port 0, then talk to it
with blocking sockets or dnspython from the test's thread. Everything that touches the
reactor after it started goes through ``call()``, which runs on the reactor's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import threads
from twisted.internet.epollreactor import EPollReactor

T = TypeVar("T")
DEADLINE = 10.0


class ReactorThread:
    """A reactor of its own: listen on ``.reactor`` first, then ``start()``; ``call()``
    while it runs; ``stop()`` closes every port and connection it holds."""

    def __init__(self) -> None:
        self.reactor = EPollReactor()
        self._thread = threading.Thread(
            target=self.reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the reactor's thread; its result (a Deferred's too)."""
        return threads.blockingCallFromThread(self.reactor, function, *args)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.reactor.callFromThread(self.reactor.stop)
            self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), "the test reactor did not stop"
