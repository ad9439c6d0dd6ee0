"""The README and docs/configuration.md stay true: every variable a service declares is in
the generated tables and the tables are what the declarations say, every variable compose
passes is documented, every `make` target the README names exists."""

from __future__ import annotations

import re

from devstack import config_docs
from tests.stack import ROOT

README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()


def test_the_configuration_tables_are_generated_from_the_declarations() -> None:
    assert config_docs.generated() == CONFIGURATION, (
        "docs/configuration.md differs from the declarations: run"
        " `.venv/bin/python -m devstack.config_docs` and commit the result"
    )


def test_every_variable_a_service_declares_is_in_the_configuration_doc() -> None:
    names = set(config_docs.readers())
    assert len(names) > 60, "too few declared variables: is every config.py found?"
    assert sorted(name for name in names if f"| `{name}` |" not in CONFIGURATION) == []


def test_every_make_target_in_the_readme_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    named = set(re.findall(r"`make ([a-z][a-z-]*)", README))
    assert named, "no make command found in the README"
    assert sorted(named - targets) == []


def test_every_compose_variable_is_documented() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", compose))
    names |= set(re.findall(r"^\s+([A-Z][A-Z0-9_]+):\s*$", compose, re.MULTILINE))
    documented = README + CONFIGURATION
    assert sorted(name for name in names if f"`{name}`" not in documented) == []


def test_the_product_says_why_never_when() -> None:
    """No "issue N" in the product: comments and docs say why; history is git's."""
    history = re.compile(r"\bissues? ?#?[0-9]+|before issue", re.IGNORECASE)
    places = ["services", "loadtest", "devstack", "bench", "deploy", "scripts", "docs"]
    files = [ROOT / "README.md", ROOT / "compose.yaml", ROOT / "Makefile"]
    for place in places:
        files += [
            p for p in (ROOT / place).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        if path.suffix not in {".zone", ".pyc"}
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if history.search(line)
    ]
    assert found == []
