"""Benchmark output: `results.json` (every run of every task) and `RESULTS.md` (one Markdown table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path, meta: dict[str, Any], results: list[dict[str, Any]], growth: list[dict[str, Any]]) -> None:
    """Write the full results."""
    data = {"meta": meta, "results": results, "growth": growth}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _seconds(cell: dict[str, Any] | None, notes: list[str], label: str) -> str:
    if cell is None:
        return ""
    if cell["median"] is None:
        notes.append(f"{label}: {cell['status']}")
        return f"failed [{len(notes)}]"
    if cell["min"] == cell["max"]:
        return f"{cell['median']:.3f}"
    return f"{cell['median']:.3f} ({cell['min']:.3f}–{cell['max']:.3f})"


def _ratio(top: dict[str, Any] | None, bottom: dict[str, Any] | None) -> str:
    if not top or not bottom or top["median"] is None or not bottom["median"]:
        return "–"
    return f"{top['median'] / bottom['median']:.2f}×"


def _memory(row: dict[str, Any]) -> str:
    values = [row[tool]["peak_rss_mib"] for tool in ("alembic", "schemashift")]
    return " / ".join("–" if value is None else f"{value:.0f}" for value in values)


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "–"}[value]


def _load_line(meta: dict[str, Any]) -> str:
    before, after = meta.get("load_before"), meta.get("load_after")
    line = f"Load average (1 min) at start / end: {before} / {after}; run took {meta.get('seconds')} s."
    if max(before or 0, after or 0) > meta.get("cpus", 1):
        line += " **The machine was busy with other work: absolute times are inflated, ratios less so.**"
    return line


def _growth_table(growth: list[dict[str, Any]]) -> list[str]:
    if not growth:
        return []
    lines = ["", "Growth with the number of revisions (time at the largest K / time at the smallest K):", "",
             "| Task | Backend | K | Revisions × | Alembic × | schemashift × |", "|---|---|---|---|---|---|"]
    for row in growth:
        factors = ["–" if row[tool] is None else f"{row[tool]:.2f}" for tool in ("alembic", "schemashift")]
        lines.append(f"| {row['task']} | {row['backend']} | {row['k_small']} → {row['k_large']} | "
                     f"{row['k_large'] / row['k_small']:.1f} | {factors[0]} | {factors[1]} |")
    return lines


def markdown(meta: dict[str, Any], results: list[dict[str, Any]], growth: list[dict[str, Any]] | None = None) -> str:
    """The results as Markdown: a header on how they were made, one table, then failure notes."""
    lines = [
        "# schemashift vs Alembic: benchmark results",
        "",
        f"Reproduce: `{meta['command']}` (sizes: {meta['sizes_text']}).",
        f"Run {meta['date']} on {meta['machine']}; Python {meta['python']}, SQLAlchemy {meta['sqlalchemy']}, "
        f"Alembic {meta['alembic']}, schemashift {meta['schemashift']}.",
        f"Servers: {meta['servers']}.",
        _load_line(meta),
        "",
        "Times are seconds, median (min–max) over the runs; the ratio is Alembic / schemashift (above 1: "
        "schemashift is faster). Baseline is the raw catalog queries; \"S / base\" is schemashift / baseline. "
        "Peak memory is the whole process's maximum RSS in MiB (Alembic / schemashift). "
        "\"Met\" checks the P6 target only at the target size (N=2000, K=3000).",
        "",
        "| Task | Backend | Size | Alembic | schemashift | Alembic / schemashift | Baseline | S / base "
        "| Peak MiB (A / S) | Target | Met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for row in results:
        where = f"{row['task']} [{row['backend']}] {row['size']}"
        cells = [
            row["task"], row["backend"], row["size"],
            _seconds(row["alembic"], notes, f"Alembic, {where}"),
            _seconds(row["schemashift"], notes, f"schemashift, {where}"),
            _ratio(row["alembic"], row["schemashift"]),
            _seconds(row["baseline"], notes, f"baseline, {where}") if row["baseline"] else "",
            _ratio(row["schemashift"], row["baseline"]) if row["baseline"] else "",
            _memory(row), row["target"], _met(row["met"]),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += _growth_table(growth or [])
    task_notes = sorted({f"{row['task']}: {row['notes']}" for row in results if row["notes"]
                         and "expected" not in row["notes"]})
    diff_notes = [f"{row['task']} [{row['backend']}]: {row['notes']}" for row in results if "expected" in row["notes"]]
    if task_notes or diff_notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in task_notes + diff_notes]
    if notes:
        lines += ["", "Failures:", ""] + [f"{number}. {note}" for number, note in enumerate(notes, start=1)]
    if meta.get("errors"):
        lines += ["", "Harness errors:", ""] + [f"- {error}" for error in meta["errors"]]
    return "\n".join(lines) + "\n"
