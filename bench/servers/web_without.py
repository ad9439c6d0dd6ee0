"""The web front with some of its behaviours taken away: for ``bench.front_parts`` only,
which starts it once per step to price each behaviour (never a way to run the stack).

run: python bench/servers/web_without.py background,watch,guard   (then as services.web)

What each name takes away (``PARTS``, in the order ``bench.front_parts`` removes them):

- ``background``: the work the front does whatever its clients do: the steady client
  (``WEB_STEADY=0``) and the once-a-second read of every control port (no scrape rounds);
- ``watch``: its own loop's watch (``POLYLOOP_METRICS=0``: no lag timer, no stall watchdog
  thread, no control port);
- ``guard``: the guard around each backend call (``BackendCall.run`` awaits the call bare:
  no deadline sweep, no live stats, no call metrics, no mapping of failures to problems);
- ``work``: the middleware's work (it passes the request on: no count, no timing, no
  Host/Origin check, no problem+json, no security headers);
- ``chain``: the middleware itself (none: aiohttp skips its middleware chain, which also
  drops the ``_fix_request_current_app`` layer it adds whenever an app has one);
- ``server``: the front's own serving layer (aiohttp's ``AppRunner`` and ``TCPSite`` as
  ``web.run_app`` uses them: no connection limit, parser errors as aiohttp answers them,
  no access logger).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aiohttp import web

PARTS = ("background", "watch", "guard", "work", "chain", "server")


def remove(parts: Iterable[str]) -> None:
    """Take ``parts`` away from the front this process is about to run (before ``main``)."""
    parts = set(parts)
    unknown = parts - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s) {sorted(unknown)}; known: {', '.join(PARTS)}")
    from services.web import __main__ as front_main
    from services.web import app as front_app
    from services.web import scrape
    from services.web.backends.call import BackendCall

    if "background" in parts:
        os.environ["WEB_STEADY"] = "0"

        async def no_rounds(scraper: Any) -> None:
            await asyncio.Event().wait()

        scrape._scrape_forever = no_rounds
    if "watch" in parts:
        os.environ["POLYLOOP_METRICS"] = "0"
    if "guard" in parts:

        async def bare_call(self: Any, call: Any, timeout: Any = None, *, probe: bool = False):
            return await call()

        BackendCall.run = bare_call
    if "work" in parts:

        @web.middleware
        async def pass_on(request: web.Request, handler: Any) -> web.StreamResponse:
            return await handler(request)

        front_app.front_middleware = lambda metrics, faults: pass_on
    if "chain" in parts:
        create_app = front_main.create_app

        def without_middleware(*args: Any, **kwargs: Any) -> web.Application:
            app = create_app(*args, **kwargs)
            app.middlewares.clear()
            return app

        front_main.create_app = without_middleware
    if "server" in parts:

        async def plain_serve(app: web.Application, config: Any) -> None:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, config.listen_host, config.port).start()
            try:
                await asyncio.Event().wait()
            finally:
                await runner.cleanup()

        front_main.serve = plain_serve


def main(argv: list[str]) -> int:
    remove(p for p in (argv[1] if len(argv) > 1 else "").split(",") if p)
    from services.web.__main__ import main as front

    return front()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
