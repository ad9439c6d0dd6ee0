"""The benchmark report: markdown tables of medians and ratios, goal checks, a PNG chart."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from bench import burst, cpu
from bench.echo import Cell


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:.2f}{unit}"


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value and base else "—"


def _index(cells: list[Cell]) -> dict[tuple[str, int], Cell]:
    return {(c.target, c.conns): c for c in cells}


def echo_table(cells: list[Cell], reference: str, reference_name: str) -> list[str]:
    """One row per server; per connection count: median round trips/s, xreference, xC."""
    if not cells:
        return []
    by = _index(cells)
    conns = sorted({c.conns for c in cells})
    order = list(dict.fromkeys(c.target for c in cells))
    head = "| server | " + " | ".join(f"{n} conn rt/s | x{reference_name} | xC" for n in conns)
    lines = [head + " | notes |", "|---" * (1 + 3 * len(conns)) + "|---|"]
    for key in order:
        row = [by[key, conns[0]].label]
        notes = []
        for n in conns:
            cell = by[key, n]
            ref, limit = by.get((reference, n)), by.get(("c", n))
            row += [
                _fmt(cell.median),
                _ratio(cell.median, ref.median if ref else None),
                _ratio(cell.median, limit.median if limit else None),
            ]
            if cell.error:
                notes.append(f"{n}: {cell.error}")
        lines.append("| " + " | ".join(row) + " | " + "; ".join(notes)[:160] + " |")
    return lines


def simple_table(cells: list[Cell], unit: str, base: str, base_name: str) -> list[str]:
    by = {c.target: c for c in cells}
    lines = [f"| what | {unit} | x {base_name} | runs | notes |", "|---|---|---|---|---|"]
    for cell in cells:
        ref = by.get(base)
        runs = ", ".join(_fmt(r) for r in cell.runs)
        lines.append(
            f"| {cell.label} | {_fmt(cell.median)} | "
            f"{_ratio(cell.median, ref.median if ref else None)} | {runs} | {cell.error} |"
        )
    return lines


def goals(tcp: list[Cell], udp: list[Cell], resolver: list[Cell]) -> list[str]:
    out = []
    t, u = _index(tcp), _index(udp)
    for n in sorted({c.conns for c in tcp}):
        shipped, book = t.get(("shipped", n)), t.get(("book", n))
        if shipped and book and shipped.median and book.median:
            ratio = shipped.median / book.median
            mark = "reached" if ratio >= 0.95 else "NOT reached"
            out.append(f"- tcp-echo ≥ 0.95x book echo at {n} conn: {ratio:.2f}x — {mark}")
        else:
            out.append(f"- tcp-echo ≥ 0.95x book echo at {n} conn: not measured")
    for n in sorted({c.conns for c in udp}):
        shipped, ref = u.get(("shipped", n)), u.get(("asyncio", n))
        if shipped and ref and shipped.median and ref.median:
            ratio = shipped.median / ref.median
            mark = "reached" if ratio >= 0.95 else "NOT reached"
            out.append(f"- udp-echo ≥ 0.95x minimal asyncio at {n} conn: {ratio:.2f}x — {mark}")
    conc = {c.target: c for c in resolver}.get("dnspython-concurrent")
    if conc and conc.median is not None:
        mark = "reached" if conc.median < 0.5 and not conc.error else "NOT reached"
        out.append(
            f"- resolver {conc.conns} x delay-100 concurrent < 0.5 s: "
            f"{conc.median:.3f} s — {mark} {conc.error}".rstrip()
        )
    # the client is not the bottleneck when, paired with the C server, it outruns every
    # Python server: each Python figure is then the server's, not the client's
    for group, cells in (("tcp", tcp), ("udp", udp)):
        by = _index(cells)
        for n in sorted({c.conns for c in cells}):
            limit = by.get(("c", n))
            python = [c for c in cells if c.conns == n and c.target != "c" and c.median]
            if limit and limit.median and python:
                best = max(python, key=lambda c: c.median)
                verdict = (
                    "client not the bottleneck"
                    if limit.median > best.median
                    else "NOT shown: the C cell ran below a Python one (machine noise?)"
                )
                out.append(
                    f"- {group} {n} conn: C client + C server {_fmt(limit.median)}/s vs fastest "
                    f"Python server ({best.label}) {_fmt(best.median)}/s → {verdict}"
                )
    return out


def chart(tcp: list[Cell], udp: list[Cell], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(g, cells) for g, cells in (("TCP echo", tcp), ("UDP echo", udp)) if cells]
    if not groups:
        return None
    fig, axes = plt.subplots(len(groups), 1, figsize=(12, 5 * len(groups)), squeeze=False)
    for ax, (title, cells) in zip(axes[:, 0], groups, strict=True):
        by = _index(cells)
        conns = sorted({c.conns for c in cells})
        order = list(dict.fromkeys(c.target for c in cells))
        width = 0.8 / len(conns)
        for i, n in enumerate(conns):
            limit = by.get(("c", n))
            values = [
                (by[k, n].median or 0) / limit.median if limit and limit.median else 0
                for k in order
            ]
            positions = [x + i * width for x in range(len(order))]
            ax.bar(positions, values, width, label=f"{n} connection(s)")
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(order))])
        ax.set_xticklabels([by[k, conns[0]].label for k in order], rotation=30, ha="right")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_ylabel("round trips/s ÷ C epoll limit")
        ax.set_title(f"{title}, 1 KiB messages (median of runs)")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write(
    results: dict[str, list[Cell]],
    meta: dict,
    missing: list[str],
    out_dir: Path,
    pypy_lines: list[str] | None = None,
    pypy_raw: dict | None = None,
    *,
    cpu_part: cpu.CpuPart | None = None,
    burst_phases: list[burst.Phase] | None = None,
    guard_top: list[str] | None = None,
    guard_table: list[str] | None = None,
) -> str:
    """Write report.md, results.json and echo.png under out_dir; return the markdown.

    ``pypy_lines``/``pypy_raw``: the CPython-vs-PyPy section of bench/pypy.py, if run;
    ``guard_top``/``guard_table``: bench/guard.py's flags (at the top) and its table (after
    the CPU part)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tcp, udp = results.get("tcp", []), results.get("udp", [])
    lines = ["# polyloop bench", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += [f"- missing: {m}" for m in missing]
    lines += ["", "Ratios are what matter: the machine is shared, absolute figures are noisy.", ""]
    lines += guard_top or []
    if tcp:
        lines += ["## TCP echo (round trips/s, 1 KiB, one message in flight per connection)", ""]
        lines += [*echo_table(tcp, "book", "book"), ""]
    if udp:
        lines += ["## UDP echo (round trips/s, 1 KiB datagrams, one in flight per socket)", ""]
        lines += [*echo_table(udp, "asyncio", "asyncio"), ""]
    if results.get("http"):
        lines += [f"## HTTP front (wrk, {results['http'][0].conns} connections)", ""]
        lines += [*simple_table(results["http"], "requests/s", "healthz", "/healthz"), ""]
    if results.get("dns"):
        lines += ["## DNS (dnsperf, fixed mix of A/AAAA/NXDOMAIN of polyloop.test)", ""]
        lines += [*simple_table(results["dns"], "queries/s", "ceiling", "ceiling"), ""]
    if results.get("resolver"):
        lines += ["## Resolver (names of delay-100, seconds for the whole request)", ""]
        lines += [
            *simple_table(results["resolver"], "seconds", "dnspython-sequential", "sequential"),
            "",
        ]
    if cpu_part is not None:
        lines += cpu.section(cpu_part)
        lines += guard_table or []
    lines += burst.section(burst_phases or [])
    lines += pypy_lines or []
    goal_lines = goals(tcp, udp, results.get("resolver", []))
    if goal_lines:
        lines += ["## Goals", "", *goal_lines, ""]
    png = chart(tcp, udp, out_dir / "echo.png")
    if png:
        lines += [f"![echo servers against the C limit]({png.name})", ""]
    markdown = "\n".join(lines)
    (out_dir / "report.md").write_text(markdown)
    dump = {group: [asdict(c) for c in cells] for group, cells in results.items()}
    if pypy_raw:
        dump["pypy"] = pypy_raw
    if cpu_part is not None:
        dump["cpu"] = cpu.as_json(cpu_part)
    if burst_phases:
        dump["burst"] = burst.as_json(burst_phases)
    (out_dir / "results.json").write_text(json.dumps({"meta": meta, "results": dump}, indent=1))
    return markdown
