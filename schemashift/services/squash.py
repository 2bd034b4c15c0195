"""Squashing: one migration in place of a run of them, and how databases that ran the old ones are recognised.

`squash` writes a migration whose operations build, from the state before the
range, the state after it (a diff of the replayed states, no renames guessed) and
which declares ``replaces = [...]``; the replaced files are deleted (version control
keeps them) and the migration after the range gets the squashed one as parent.

A database whose version table records every replaced revision stands at the
squashed one (`covered_squashes`); one that records only some of them cannot be
upgraded with the new files (`squash_problems`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from schemashift.autodetect.differ import RenameDecisions, diff
from schemashift.errors import MigrationError, RevisionError
from schemashift.history import files, manifest
from schemashift.history.cache import state_at
from schemashift.history.chain import History
from schemashift.history.loader import Migration
from schemashift.history.rebase import reparent_source
from schemashift.history.writer import slugify, write_migration
from schemashift.operations import (
    Backfill,
    DropColumn,
    DropSequence,
    DropTable,
    ExecuteSQL,
    Operation,
    RunPython,
    is_extension,
)

Output = Callable[[str], None]


def _range(history: History, start: str | None, end: str | None) -> list[Migration]:
    """The migrations from `start` (default: the first) to `end` (default: head), in order."""
    if not history.chain:
        raise RevisionError("there are no migrations to squash")
    first = history.index(history.resolve(start)) if start else 0
    last = history.index(history.resolve(end)) if end else len(history.chain) - 1
    if last - first < 1:
        raise RevisionError("squash needs at least two migrations: the range names "
                            f"{last - first + 1 if last >= first else 0}")
    return history.chain[first:last + 1]


def _refuse_data_migrations(migrations: list[Migration]) -> None:
    kinds = (ExecuteSQL, RunPython, Backfill)
    data = [m.path.name for m in migrations if any(isinstance(op, kinds) for op in m.operations)]
    if data:
        raise MigrationError(f"cannot squash: {', '.join(data)} run(s) data steps (ExecuteSQL/RunPython/Backfill), "
                             "which a squash would lose; squash a range without them")
    foreign = [f"{m.path.name} ({type(op).__name__})" for m in migrations for op in m.operations
               if is_extension(op)]
    if foreign:
        raise MigrationError(f"cannot squash: {foreign[0]} is an extension's operation, whose effects beyond the "
                             "schema a squash could lose; squash a range without it")


def _refuse_nested(migrations: list[Migration]) -> None:
    nested = [m.path.name for m in migrations if m.replaces]
    if nested:
        raise MigrationError(f"cannot squash: {', '.join(nested)} is itself a squash; squash a range after it")


def _refuse_drops_after_base(migrations: list[Migration], operations: list[Operation]) -> None:
    """A range after the first migration must not drop: a database standing before it would run the drop.

    The diff guesses no renames, so a rename in the range becomes drop + add, which
    would lose that database's values where the original steps kept them.
    """
    if migrations[0].parent is None:
        return
    drops = [op.describe() for op in operations if isinstance(op, (DropTable, DropColumn, DropSequence))]
    if drops:
        raise MigrationError(
            f"cannot squash from {migrations[0].path.name}: the squashed migration would {drops[0]}"
            f"{f' (and {len(drops) - 1} more drop(s))' if len(drops) > 1 else ''}, losing the data of a database "
            "standing before the range (renames become drop + add); squash from the first migration or a range "
            "without drops")


def squash(folder: Path | str, history: History, message: str, *, start: str | None = None,
           end: str | None = None, out: Output = print) -> Migration:
    """Replace the migrations from `start` to `end` of `folder` by one; return the new migration."""
    folder = Path(folder)
    migrations = _range(history, start, end)
    _refuse_nested(migrations)
    _refuse_data_migrations(migrations)
    before, after = state_at(history, migrations[0].parent), state_at(history, migrations[-1].revision)
    operations = diff(before, after, RenameDecisions(no_rename=True))
    _refuse_drops_after_base(migrations, operations)
    following = history.chain[history.index(migrations[-1].revision) + 1:]
    replaced = [m.revision for m in migrations]
    originals = {m.path: m.path.read_bytes() for m in migrations + following[:1]}
    new: Migration | None = None
    number = files.FILE_PATTERN.match(migrations[0].path.name).group(1)  # type: ignore[union-attr]
    try:
        for migration in migrations:
            migration.path.unlink()
        new = write_migration(folder, message, operations, migrations[0].parent, replaces=replaced,
                              path=folder / f"{number}_{slugify(message)}.py")
        if following:
            child = following[0]
            child.path.write_bytes(reparent_source(originals[child.path], new.revision, child.path.name))
        chain = History.load(folder)
        _check_same(after, chain, new)
        manifest.write(folder, manifest.entries_of(chain.chain))
    except BaseException:
        for path, data in originals.items():
            path.write_bytes(data)
        if new is not None:
            new.path.unlink(missing_ok=True)
        manifest.rebuild(folder)
        raise
    out(f"Wrote {new.path.name}: replaces {len(replaced)} migration(s) "
        f"({migrations[0].path.name} .. {migrations[-1].path.name}), which were deleted.")
    if following:
        out(f"{following[0].path.name} now follows {new.path.name} (its parent changed).")
    return new


def _check_same(after: object, history: History, new: Migration) -> None:
    """MigrationError unless the squashed migration replays to the same state as the replaced range."""
    if state_at(history, new.revision, store=False) != after:
        raise MigrationError("the squashed migration does not rebuild the same schema; no file was changed")


def reparented_only(migration: Migration, history: History, stored_checksum: str) -> bool:
    """True when `migration` follows a squash and differs from `stored_checksum` only by the parent squash set.

    The file applied before the squash named the last replaced revision as its parent;
    putting that parent back must give exactly the checksum the database recorded.
    """
    parent = history.get(migration.parent) if migration.parent else None
    if parent is None or not parent.replaces:
        return False
    try:
        original = reparent_source(migration.path.read_bytes(), parent.replaces[-1], migration.path.name)
    except (OSError, MigrationError):
        return False
    return files.checksum_of(original) == stored_checksum


def replaced_by(history: History) -> dict[str, Migration]:
    """Every replaced revision mapped to the squashed migration of `history` that replaces it."""
    found: dict[str, Migration] = {}
    for migration in history.chain:
        for revision in migration.replaces:
            found[revision] = migration
    return found


def _complete(applied: Mapping[str, object]) -> set[str]:
    return {revision for revision, row in applied.items() if getattr(row, "complete", False)}


def covered_squashes(applied: Mapping[str, object], history: History) -> list[Migration]:
    """Squashed migrations not recorded in `applied` whose replaced revisions all are."""
    unknown = set(applied) - set(history.revisions)
    if not unknown:
        return []
    done = _complete(applied)
    return [m for m in history.chain
            if m.replaces and m.revision not in applied and set(m.replaces) <= done]


def squash_problems(applied: Mapping[str, object], history: History) -> list[str]:
    """One message per squashed migration of which the database ran only part of the replaced range."""
    unknown = set(applied) - set(history.revisions)
    if not unknown:
        return []
    done = _complete(applied)
    problems = []
    for migration in history.chain:
        ran = [r for r in migration.replaces if r in done]
        if ran and len(ran) < len(migration.replaces) and migration.revision not in applied:
            problems.append(
                f"the database ran only {len(ran)} of the {len(migration.replaces)} migrations that "
                f"{migration.path.name} replaces (squashed): upgrade it with the old migration files first "
                "(before the squash), then with these")
    return problems

