"""A service's control port from the tests' side: one served in-process with its fault
state, and the admin's ``PUT /faults`` on a port."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services.common.control import ControlServer, ControlSettings, new_registry, serve
from services.common.faults import Faults


@contextmanager
def faults_served(token: str) -> Iterator[tuple[Faults, ControlServer]]:
    """A control port on 127.0.0.1 (a port the OS picks) holding ``token``, serving a fresh
    fault state; closed at the end."""
    faults = Faults()
    server = serve(
        ControlSettings(admin_token=token), "127.0.0.1", 0, new_registry(), faults=faults
    )
    try:
        yield faults, server
    finally:
        server.close()


def put_faults(port: int, token: str, **spec: Any) -> dict:
    """``PUT /faults`` with ``spec`` on the control port at 127.0.0.1:``port``, as the admin
    holding ``token``: its JSON answer (an error status raises)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/faults",
        data=json.dumps(spec).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)
