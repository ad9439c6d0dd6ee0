"""polyloop's Locust load suite: one User per way into the stack.

Run from the repo root against the running stack (``make up``)::

    locust -f loadtest                                  # web UI on http://127.0.0.1:8089
    locust -f loadtest --headless -u 30 -r 10 -t 20s    # what `make load` runs, plus gates

Locust loads every module here whose name does not start with ``_``: the Users
(``web_user``, ``tcp_echo_user``, ``udp_echo_user``, ``dns_user``, ``resolver_user``),
the load shapes (``shapes``), the pass/fail gates (``gates``) and the tag selection
(``selection``). Helpers live in ``_``-modules. This package never imports Locust from
``__init__``, so the pure helpers (``_budgets``, ``_targets``) are importable by tests.
"""
