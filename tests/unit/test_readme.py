"""The README and docs/ stay true.

- docs/configuration.md: every variable a service declares is in the generated tables, and
  the tables are what the declarations say; every variable compose passes is documented.
- The README is a place to start: at most 200 lines, its tour before any table, its
  screenshot a real 1440x900 PNG of reasonable size.
- Everything the README and the docs name exists: every link (file and anchor), every
  `make` target, every file path in backquotes, every `python -m` module, every entry of
  the README's layout.

The tour's commands themselves are run against the stack by
tests/integration/test_readme_tour.py.
"""

from __future__ import annotations

import importlib.util
import re
import struct
import subprocess
from functools import cache
from pathlib import Path

import pytest

from devstack import config_docs
from tests.stack import ROOT

README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
PAGES = [ROOT / "README.md", *DOCS]
TOUR = "## A five-minute tour"
SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _prose(text: str) -> str:
    """The text without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def test_the_configuration_tables_are_generated_from_the_declarations() -> None:
    assert config_docs.generated() == CONFIGURATION, (
        "docs/configuration.md differs from the declarations: run"
        " `.venv/bin/python -m devstack.config_docs` and commit the result"
    )


def test_every_variable_a_service_declares_is_in_the_configuration_doc() -> None:
    names = set(config_docs.readers())
    assert len(names) > 60, "too few declared variables: is every config.py found?"
    assert sorted(name for name in names if f"| `{name}` |" not in CONFIGURATION) == []


def test_every_compose_variable_is_documented() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", compose))
    names |= set(re.findall(r"^\s+([A-Z][A-Z0-9_]+):\s*$", compose, re.MULTILINE))
    documented = "".join(page.read_text() for page in PAGES)
    assert sorted(name for name in names if f"`{name}`" not in documented) == []


# ---- the README is a place to start ---------------------------------------------------


def test_the_readme_is_at_most_200_lines() -> None:
    assert len(README.splitlines()) <= 200, "the reference belongs in docs/"


def test_the_readme_tours_before_any_table() -> None:
    assert TOUR in README.splitlines(), f"the README has no {TOUR!r} section"
    before = _prose(README.split(TOUR, 1)[0])
    tables = [line for line in before.splitlines() if line.startswith("|")]
    assert tables == [], "a table before the tour: the tour comes first"


def test_the_tour_has_shell_commands() -> None:
    tour = README.split(TOUR, 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"^```sh$", tour, re.MULTILINE)) >= 1


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_the_screenshot_is_a_1440x900_png_of_reasonable_size() -> None:
    assert "](docs/img/dashboard.png)" in README
    assert _png_size(SCREENSHOT) == (1440, 900)
    assert SCREENSHOT.stat().st_size < 300_000, "make screenshot, or a smaller picture"


# ---- everything named exists ----------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose(page.read_text()).splitlines():
        match = re.match(r"^#{1,6} (.+?)#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_link_resolves_to_a_file_and_its_heading(page: Path) -> None:
    broken = []
    for link in links(page):
        if re.match(r"[a-z]+:", link):  # http:, https:, mailto: are not ours to check
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and (target.suffix != ".md" or anchor not in anchors(target)):
            broken.append(f"{link}: no heading #{anchor} in {target.name}")
    assert broken == []


def test_every_doc_is_linked_from_the_readme() -> None:
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in links(ROOT / "README.md")}
    assert sorted(_name(doc) for doc in DOCS if doc.resolve() not in linked) == []


def test_the_link_checker_sees_a_broken_anchor() -> None:
    assert "a-five-minute-tour" in anchors(ROOT / "README.md")
    assert slug("The live picture: `/api/live` and `/ws/live`") == (
        "the-live-picture-apilive-and-wslive"
    )


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_make_target_named_exists(page: Path) -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    # in backquotes or at the start of a line of a code block: "make a" in prose is English
    named = set(re.findall(r"(?:`|^)make ([a-z][a-z-]*)", page.read_text(), re.MULTILINE))
    assert sorted(named - targets) == []


def test_the_readme_names_make_up_and_make_test() -> None:
    assert "make up" in README and "make test" in README


@cache
def tracked_tops() -> frozenset[str]:
    """The repo's top-level names (git's), so that a path under one of them is checked."""
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return frozenset(line.split("/", 1)[0] for line in out.splitlines())


PATH = re.compile(r"^[\w.-]+(?:/[\w.*<>-]+)*/?$")


def named_paths(text: str) -> set[str]:
    """Repo paths named in backquotes (a `:line` suffix dropped), under a tracked top."""
    paths = set()
    for span in re.findall(r"`([^`\s]+)`", text):
        span = re.sub(r":\d+$", "", span)
        if not PATH.match(span) or ("/" not in span.rstrip("/") and span not in tracked_tops()):
            continue
        if span.split("/", 1)[0] in tracked_tops():
            paths.add(span)
    return paths


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_file_path_named_exists(page: Path) -> None:
    paths = named_paths(page.read_text())
    missing = [
        path
        for path in sorted(paths)
        if not list(ROOT.glob(re.sub(r"<[^>]+>", "*", path).rstrip("/")))
    ]
    assert missing == []


def test_the_path_checker_sees_a_missing_path() -> None:
    assert named_paths("`services/tcp_echo/protocol.py` and `services/nope.py:12`") == {
        "services/tcp_echo/protocol.py",
        "services/nope.py",
    }


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_python_module_named_exists(page: Path) -> None:
    modules = set(re.findall(r"python3? -m ([\w.<>]+)", page.read_text()))
    modules = {m for m in modules if "<" not in m}  # services.<service>.healthcheck: a pattern
    assert sorted(m for m in modules if importlib.util.find_spec(m) is None) == []


NAMED_IN_LAYOUT = r"(?<![\w/`.-])(\w[\w.-]*\.(?:py|zone|yaml|toml)|[\w-]+/)"


def layout() -> list[str]:
    """The paths the README's layout block names: each entry, nested by indentation, and
    the files and folders its description names (``catalogue.py``, ``loops/``) inside it."""
    block = README.split("## Where things are", 1)[1].split("```\n", 2)[1]
    parents: list[str] = []
    here = ""
    paths = []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)(.*)$", line)
        if not match:
            continue
        indent, name, description = match.groups()
        if len(indent) <= 2 * len(parents):  # an entry, not a description's next line
            parents = parents[: len(indent) // 2]
            here = "/".join([*parents, name.rstrip("/")])
            paths.append(here)
            if name.endswith("/"):
                parents.append(name.rstrip("/"))
        else:
            description = f"{name}{description}"
        if (ROOT / here).is_dir():
            for named in re.findall(NAMED_IN_LAYOUT, description):
                paths.append(f"{here}/{named.rstrip('/')}")
    return paths


def test_every_entry_of_the_readme_layout_exists() -> None:
    paths = layout()
    assert len(paths) >= 20
    assert sorted(path for path in paths if not (ROOT / path).exists()) == []


# ---- the product says why, never when ---------------------------------------------------


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
        if path.suffix not in {".zone", ".pyc", ".png"}
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if history.search(line)
    ]
    assert found == []
