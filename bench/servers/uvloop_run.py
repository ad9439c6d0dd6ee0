"""Run a shipped asyncio service unchanged on uvloop: ``uvloop_run.py services.udp_echo``.

The service's own ``__main__`` runs as usual; only the event loop policy differs.
"""

import runpy
import sys
from pathlib import Path

import uvloop

if __name__ == "__main__":
    # run as a script, sys.path[0] is bench/servers: the services live at the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    uvloop.install()
    runpy.run_module(sys.argv[1], run_name="__main__", alter_sys=True)
