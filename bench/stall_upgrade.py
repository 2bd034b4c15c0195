"""The whole-upgrade writer-stall task: the longest writer wait during one upgrade of several migrations.

Issue 14's second check: "with no competing long transaction, no writer waits
more than 1 s during a whole safe upgrade of a 2,000,000-row table". The upgrade
is the issue's own example, one migration each: add a unique constraint on
``t.a``, make ``t.b`` NOT NULL, add a CHECK on it, a foreign key from it to ``u``
and an index on it; then a backfill of ``t.c``. It runs plain (``safe = false``;
the backfill one ``UPDATE``) and safe (the backfill a batched `Backfill`), each
on a fresh copy of one template database, while the writers of `stall` write
(the same measurement, `stall.measure_one`). Then both again without the
backfill: the upgrade exactly as the issue states it.

MariaDB has no online form for adding a validated foreign key or CHECK: safe
mode refuses them on a table above ``safe_rewrite_rows`` (SS403), and with them
the whole upgrade (refused before anything runs, shown as a row). Its measured
upgrade leaves those two migrations out, plain and safe alike.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import stall

if TYPE_CHECKING:
    from tasks import Bench

#: Rows of the table (`--stall-rows` changes it).
ROWS = 2_000_000
#: The issue's bound on the longest writer wait over the whole safe upgrade (ms).
LIMIT_MS = 1000.0
#: The migrations of the upgrade, in order (the backfill comes last), with the model line each adds.
STEPS: dict[str, str] = {
    "add unique": 'sa.UniqueConstraint(t.c.a, name="uq_t_a")',
    "set NOT NULL": "",
    "add CHECK": 'sa.CheckConstraint("b > 0", name="ck_t_b", table=t)',
    "add FK": 'sa.ForeignKeyConstraint([t.c.b], [u.c.id], name="fk_t_b")',
    "add index": 'sa.Index("ix_t_b", t.c.b)',
}
#: The steps MariaDB cannot run without blocking writers (SS403): left out of its measured upgrade.
BLOCKING_ON_MARIADB = ("add CHECK", "add FK")
#: The last migration: (plain, safe) operation.
BACKFILL = ("ExecuteSQL(\"UPDATE t SET c = 'filled'\")", f'Backfill("t", values={{"c": "filled"}}, '
            f"batch_size={stall.BATCH})")
#: The backfill migration's file.
BACKFILL_FILE = "9999_backfill.py"
#: Every row measured in this process (`run.py` writes them out).
RESULTS: list[dict[str, Any]] = []


def models_after(steps: tuple[str, ...]) -> str:
    """The models once `steps` are applied."""
    text = stall.models(extra="\n".join(STEPS[name] for name in steps if STEPS[name]))
    if "set NOT NULL" in steps:
        text = text.replace('sa.Column("b", sa.Integer)', 'sa.Column("b", sa.Integer, nullable=False)')
    return textwrap.dedent(text)


def steps_on(backend: str) -> tuple[str, ...]:
    """The steps of the upgrade measured on `backend`."""
    left_out = BLOCKING_ON_MARIADB if backend == "mysql" else ()
    return tuple(name for name in STEPS if name not in left_out)


def base_project(bench: Bench) -> tuple[Path, str]:
    """A project holding the base migration only, which every upgrade project starts from: (folder, revision)."""
    folder = stall.new_project(bench.work / "upgrade_base")
    stall.cli(bench, folder, "generate", "-m", "base")
    return folder, stall.revisions(bench, folder)[0]


def write_projects(bench: Bench, base: tuple[Path, str], steps: tuple[str, ...],
                   label: str) -> dict[str, Path]:
    """A plain and a safe project: the migrations of `base`, one per step and the backfill (mode -> folder)."""
    folders = {mode: stall.new_project(bench.work / f"upgrade_{label}_{mode}") for mode in ("plain", "safe")}
    plain = folders["plain"]
    _copy_migrations(base[0], plain)
    head, seen = base[1], {base[1]}
    for number, name in enumerate(steps):
        (plain / "app" / "models.py").write_text(models_after(steps[: number + 1]))
        stall.cli(bench, plain, "generate", "-m", f"change: {name}", "--no-rename")
        (head,) = set(stall.revisions(bench, plain)) - seen
        seen.add(head)
    _copy_migrations(plain, folders["safe"])
    for folder, operation in zip(folders.values(), BACKFILL, strict=True):
        (folder / "app" / "models.py").write_text(models_after(steps))
        (folder / "migrations" / BACKFILL_FILE).write_text(stall.MIGRATION.format(
            message="change: backfill", revision="5a11c0ffee09", parent=head, operation=operation))
    return folders


def without_backfill(bench: Bench, folders: dict[str, Path], steps: tuple[str, ...]) -> dict[str, Path]:
    """Copies of `folders` (mode -> project) without the backfill: the issue's upgrade as it states it."""
    made = {}
    for mode, folder in folders.items():
        made[mode] = stall.new_project(folder.with_name(f"{folder.name}_nobackfill"))
        _copy_migrations(folder, made[mode], leave_out=BACKFILL_FILE)
        (made[mode] / "app" / "models.py").write_text(models_after(steps))
    return made


def _copy_migrations(source: Path, target: Path, leave_out: str = "") -> None:
    """The migration files of `source` (but `leave_out`) copied into `target`."""
    for path in (source / "migrations").iterdir():
        if path.is_file() and path.name != leave_out:
            (target / "migrations" / path.name).write_bytes(path.read_bytes())


def stall_upgrade(bench: Bench, backend: str, rows: int) -> None:
    """The writers alone, then the upgrade plain and safe on `backend` (on MariaDB first the whole issue's
    upgrade in safe mode, refused), then the same without the backfill."""
    steps = steps_on(backend)
    base = base_project(bench)
    projects = write_projects(bench, base, steps, backend)
    source = stall.template(bench, backend, rows, base, purpose="upgtmpl")
    runs: list[tuple[str, str, Path | None]] = [("(writers alone, 2 s)", "-", None)]
    if steps != tuple(STEPS):
        whole = write_projects(bench, base, tuple(STEPS), f"{backend}_whole")
        runs.append((" + ".join((*STEPS, "backfill")), "safe", whole["safe"]))
    runs += [(" + ".join((*steps, "backfill")), mode, projects[mode]) for mode in ("plain", "safe")]
    shorter = without_backfill(bench, projects, steps)
    runs += [(" + ".join(steps), mode, shorter[mode]) for mode in ("plain", "safe")]
    try:
        for label, mode, folder in runs:
            purpose = f"upg{len(RESULTS)}"
            try:
                RESULTS.append(stall.measure_one(bench, backend, rows, label, mode, folder, source, purpose))
            except Exception as exc:  # noqa: BLE001 - keep measuring the rest
                RESULTS.append({"backend": backend, "operation": label, "mode": mode, "rows": rows,
                                "refused": f"harness: {' '.join(str(exc).split())[:200]}"})
                bench.log(f"  {backend} {label} {mode}: ERROR {exc}")
    finally:
        stall.drop(bench, backend, source)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table (safe rows judged against `LIMIT_MS`)."""
    return stall.markdown(rows, LIMIT_MS)


__all__ = ["LIMIT_MS", "RESULTS", "ROWS", "STEPS", "base_project", "markdown", "models_after", "stall_upgrade",
           "steps_on", "without_backfill", "write_projects"]

if __name__ == "__main__":  # pragma: no cover - run through bench/run.py
    sys.exit("run: python bench/run.py --tasks stall-upgrade [--stall-rows N]")
