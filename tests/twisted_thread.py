"""A fresh Twisted reactor running in a thread, for unit tests over real sockets.

Each test gets its own reactor (not the installed global one, which cannot be restarted),
as Twisted's own ``ReactorBuilder`` tests do: listen on 127.0.0.1 port 0, then talk to it
with blocking sockets or dnspython from the test's thread. Once it runs, the test only
reads plain counters of the objects on it (an int read is safe across threads).
"""

from __future__ import annotations

import threading

from twisted.internet.epollreactor import EPollReactor

DEADLINE = 10.0


class ReactorThread:
    """A reactor of its own: listen on ``.reactor`` first, then ``start()``; ``stop()``
    closes every port and connection it holds and joins the thread (with a deadline)."""

    def __init__(self) -> None:
        self.reactor = EPollReactor()
        self._thread = threading.Thread(
            target=self.reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.reactor.callFromThread(self.reactor.stop)
            self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), "the test reactor did not stop"
