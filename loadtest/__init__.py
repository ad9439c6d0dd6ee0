"""polyloop's Locust load suite: one User per way into the stack.

Run from the repo root against the running stack (``make up``)::

    locust -f loadtest                                  # web UI on http://127.0.0.1:8089
    locust -f loadtest --headless -u 30 -r 10 -t 20s    # what `make load` runs, plus gates

Locust loads every module here whose name does not start with ``_``: the Users
(``web_user``, ``tcp_echo_user``, ``udp_echo_user``, ``dns_user``, ``resolver_user``),
the load shapes (``shapes``), the pass/fail gates (``gates``) and the checks made before
any load is sent (``preflight``: the host and the tag selection). Helpers live in
``_``-modules. This package never imports Locust from ``__init__``, so the pure helpers
(``_budgets``, ``_targets``) are importable by tests.

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
