"""make bench's regression guard: each row of the CPU part beside the previous run's.

Every run of the CPU part keeps its figures in ``reports/bench/cpu-ratios.json``
(``cpu-ratios-quick.json`` for ``--quick``, so a smoke run never becomes the reference of a
full one); the next run reads them before writing its own. Per row: the CPU per request of
its main process divided by its reference's (the minimal program doing the same job, else
its base row) now and then, and the change. A row whose ratio grew by more than
``THRESHOLD`` is flagged at the top of the report: a report, never a failure (timings are
never asserted in tests). Ratios rather than µs: the shared machine's own speed moves
between two runs (the minimal programs' µs show by how much), a ratio measured side by side
in one run much less.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import CpuPart, Row, ratio

THRESHOLD = 0.15


@dataclass(frozen=True)
class Change:
    key: str
    label: str
    reference: str  # the row it is divided by ("" for a yardstick: µs compared)
    now: float | None
    before: float | None
    us_now: float | None
    us_before: float | None

    @property
    def change(self) -> float | None:
        """Relative change of the ratio (of the µs for a yardstick), +0.20 = 20 % dearer."""
        now, before = (self.now, self.before) if self.reference else (self.us_now, self.us_before)
        if now is None or not before:
            return None
        return now / before - 1

    @property
    def flagged(self) -> bool:
        return bool(self.reference) and self.change is not None and self.change > THRESHOLD


def reference(row: Row, by: dict[str, Row]) -> Row | None:
    return by.get(row.peer) or by.get(row.base)


def snapshot(part: CpuPart, meta: dict) -> dict:
    """What the next run compares with: per row its main µs and its ratio to its reference."""
    by = part.by_key()
    rows = {}
    for row in part.rows:
        ref = reference(row, by)
        rows[row.key] = {
            "label": row.label,
            "reference": ref.key if ref else "",
            "us": row.main_us,
            "ratio": ratio(row.main_us, ref.main_us) if ref else None,
        }
    return {"meta": meta, "rows": rows}


def path_for(out_dir: Path, quick: bool) -> Path:
    return out_dir / ("cpu-ratios-quick.json" if quick else "cpu-ratios.json")


def load(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("rows"), dict) else None


def save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def compare(current: dict, previous: dict | None) -> list[Change]:
    before_rows = (previous or {}).get("rows", {})
    changes = []
    for key, row in current["rows"].items():
        before = before_rows.get(key, {})
        same_reference = before.get("reference", row["reference"]) == row["reference"]
        changes.append(
            Change(
                key,
                row["label"],
                row["reference"],
                row["ratio"],
                before.get("ratio") if same_reference else None,
                row["us"],
                before.get("us"),
            )
        )
    return changes


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.0%}"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def flag_lines(changes: list[Change], previous: dict | None) -> list[str]:
    """The top of the report: the rows that got dearer than the threshold, or that none did."""
    if previous is None:
        return ["## Regression guard", "", "No previous run to compare with (first run).", ""]
    when = previous.get("meta", {}).get("date", "?")
    flagged = [c for c in changes if c.flagged]
    lines = ["## Regression guard", ""]
    if not flagged:
        lines.append(
            f"No row's CPU ratio grew by more than {THRESHOLD:.0%} since the previous run ({when})."
        )
    else:
        lines.append(
            f"**{len(flagged)} row(s) more than {THRESHOLD:.0%} dearer** in CPU per request "
            f"(ratio to their reference) than in the previous run ({when}):"
        )
        lines.append("")
        lines += [
            f"- **{c.label}**: {_x(c.before)} → {_x(c.now)} of {c.reference} "
            f"({_pct(c.change)}; µs {_us(c.us_before)} → {_us(c.us_now)})"
            for c in flagged
        ]
    return [*lines, ""]


def table(changes: list[Change], previous: dict | None) -> list[str]:
    if previous is None:
        return []
    when = previous.get("meta", {}).get("date", "?")
    load = previous.get("meta", {}).get("load average", "?")
    lines = [
        f"### Against the previous run ({when}, load average {load})",
        "",
        "Ratio: the row's main process CPU µs/request ÷ its reference's (same run). "
        f"Flagged: the ratio grew by more than {THRESHOLD:.0%}. The references themselves "
        "(no ratio) show how much the machine's speed moved.",
        "",
        "| row | reference | ratio before | ratio now | change | µs before | µs now | µs change |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in changes:
        us_change = c.us_now / c.us_before - 1 if c.us_now and c.us_before else None
        mark = " **flagged**" if c.flagged else ""
        lines.append(
            f"| {c.label} | {c.reference or '—'} | {_x(c.before)} | {_x(c.now)} | "
            f"{_pct(c.change) if c.reference else '—'}{mark} | {_us(c.us_before)} | "
            f"{_us(c.us_now)} | {_pct(us_change)} |"
        )
    return [*lines, ""]
