"""``locust -f loadtest`` with Locust installed but not dnspython (a bare ``pip install
locust``) stops with one line naming what to install, not a traceback. Runs Locust's own
``main`` in a subprocess whose import system hides dnspython. Needs nothing running."""

from __future__ import annotations

import sys
import textwrap

from tests.commands import run

LOCUST_WITHOUT_DNSPYTHON = textwrap.dedent(
    """
    import sys

    class HideDnspython:
        def find_spec(self, name, path=None, target=None):
            if name == "dns" or name.startswith("dns."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, HideDnspython())
    sys.argv = ["locust", "-f", "loadtest", "--headless", "-u", "1", "-t", "1s"]
    from locust.main import main

    main()
    """
)


def test_locust_without_dnspython_says_what_to_install_in_one_line() -> None:
    done = run([sys.executable, "-c", LOCUST_WITHOUT_DNSPYTHON], timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "dnspython" in line
    assert "pip install -r requirements/locust.txt" in line
    assert "make venv" in line
