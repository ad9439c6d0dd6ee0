"""The gates' rules (loadtest/_gates.py) and the budgets file they read; no stack needed.

``loadtest._gates`` imports Locust only inside its hooks, so its rules are tested in-process.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtest._gates import DEFAULT_PATH, BudgetError, Budgets, Measured, breaches

ROOT = Path(__file__).resolve().parents[2]
KEY = re.compile(r"^(GET|POST|TCP|UDP|DNS) \S.*$")


def row(key: str, requests: int = 100, failures: int = 0, p95: float = 10) -> Measured:
    kind, name = key.split(" ", 1)
    return Measured(kind, name, requests, failures, p95)


def test_the_shipped_budgets_file_is_valid_and_keyed_as_locust_reports() -> None:
    budgets = Budgets.load(DEFAULT_PATH)
    assert budgets.max_fail_ratio == 0.005
    assert budgets.default_p95_ms > 0
    assert budgets.p95_ms, "per-request budgets"
    assert all(KEY.match(key) for key in budgets.p95_ms), list(budgets.p95_ms)


def test_every_budgeted_request_name_is_one_the_users_send() -> None:
    # a renamed request would silently fall back to the default budget
    sources = "\n".join(path.read_text() for path in (ROOT / "loadtest").glob("*.py"))
    for key in Budgets.load(DEFAULT_PATH).p95_ms:
        name = key.split(" ", 1)[1]
        assert f'"{name}"' in sources or name.startswith("/api/"), key


def test_a_clean_run_within_budget_passes() -> None:
    budgets = Budgets(max_fail_ratio=0.005, default_p95_ms=100, p95_ms={"TCP echo": 50})
    assert breaches(budgets, [row("TCP echo", p95=50), row("POST /api/x", p95=99)]) == []


def test_a_p95_over_its_own_budget_or_the_default_is_a_breach() -> None:
    budgets = Budgets(max_fail_ratio=0.005, default_p95_ms=100, p95_ms={"TCP echo": 50})
    found = breaches(budgets, [row("TCP echo", p95=51), row("POST /api/x", p95=101)])
    assert found == [
        "POST /api/x: p95 101 ms is above its 100 ms budget",
        "TCP echo: p95 51 ms is above its 50 ms budget",
    ]


def test_the_failure_ratio_is_over_all_requests() -> None:
    budgets = Budgets(max_fail_ratio=0.005, default_p95_ms=100)
    assert breaches(budgets, [row("UDP echo", 200, 1), row("DNS A", 200, 0)]) == []  # 0.25 %
    found = breaches(budgets, [row("UDP echo", 200, 2), row("DNS A", 100, 0)])  # 0.67 %
    assert found == ["failure ratio 0.67% (2 of 300) is above 0.50%"]


def test_a_run_that_sent_nothing_or_crashed_does_not_pass() -> None:
    budgets = Budgets(max_fail_ratio=0.005, default_p95_ms=100)
    assert breaches(budgets, [row("TCP echo", requests=0)]) == [
        "no request was made: nothing was measured, so nothing passed"
    ]
    assert "the load code itself raised 3 time(s)" in breaches(budgets, [row("A b")], crashes=3)[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "max_fail_ratio: expected a number"),
        ("max_fail_ratio = 2\n[p95_ms]\ndefault = 1\n", "must be a ratio in 0..1"),
        ("max_fail_ratio = 0.1\n", "needs a [p95_ms] table"),
        ("max_fail_ratio = 0.1\n[p95_ms]\ndefault = 0\n", "must be > 0 ms"),
        ('max_fail_ratio = 0.1\n[p95_ms]\ndefault = "fast"\n', "expected a number"),
        ("max_fail_ratio = [", "not valid TOML"),
    ],
)
def test_a_bad_budgets_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    with pytest.raises(BudgetError, match=re.escape(message)):
        Budgets.load(path)


def test_a_missing_budgets_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(BudgetError, match="cannot read the budgets file"):
        Budgets.load(tmp_path / "nope.toml")
