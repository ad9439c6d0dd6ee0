"""polyloop's Locust load suite: one User per way into the stack.

Run from the repo root against the running stack (``make up``)::

    locust -f loadtest                                  # web UI on http://127.0.0.1:8089
    locust -f loadtest --headless -u 30 -r 10 -t 20s    # what `make load` runs, plus gates

``-f`` with a directory is Locust's way to run a suite of several locustfiles: it loads
every module here whose name does not start with ``_``, each once. Those are the Users (one
module each: ``web_user``, ``tcp_echo_user``, ``udp_echo_user``, ``dns_user``,
``resolver_user``), the load shapes (``shapes``) and the event hooks (``hooks``: the checks
made at init, before any load is sent, the gates and the ``LOAD_FAULTS`` schedule). Each
thing the hooks run lives in ONE ``_``-module, which Locust never loads by itself and which
imports Locust only inside its hook functions, so tests import it: ``_targets`` (where the
load goes), ``_gates`` (pass/fail), ``_fault_schedule``; the Users' helpers are ``_users``,
``_clients``, ``_checks`` and ``_payloads``. Nothing stops Locust at import time but a
missing dependency (below): every setting is checked at init, with one line saying why.

Besides Locust, the suite needs dnspython (the DNS user's client): with a bare
``pip install locust`` it stops here with one line saying what to install, rather than a
``No module named 'dns'`` deep in Locust's traceback.
"""

import importlib.util

INSTALL = "pip install -r requirements/locust.txt (or `make venv`)"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


if not _importable("dns.message"):
    raise SystemExit(f"loadtest needs dnspython (import dns), which is not installed: {INSTALL}")
