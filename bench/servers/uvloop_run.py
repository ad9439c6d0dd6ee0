"""Run a shipped asyncio service unchanged on uvloop: ``uvloop_run.py services.udp_echo``.

The service's own ``__main__`` runs as usual; only the event loop policy differs.
"""

import runpy
import sys

import uvloop

if __name__ == "__main__":
    uvloop.install()
    runpy.run_module(sys.argv[1], run_name="__main__", alter_sys=True)
