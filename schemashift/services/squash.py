"""Squashing: one migration in place of a run of them, and how databases that ran the old ones are recognised.

`squash` writes a migration whose operations build, from the state before the
range, the state after it (a diff of the replayed states, no renames guessed),
with the range's data steps kept in their places unless marked ``elidable=True``
(`squashed_operations`), and which declares ``replaces = [...]``; the replaced files are deleted (version control
keeps them) and the migration after the range gets the squashed one as parent.

A database whose version table records every replaced revision stands at the
squashed one (`covered_squashes`); one that records only some of them cannot be
upgraded with the new files (`squash_problems`).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift.autodetect.differ import RenameDecisions, diff
from schemashift.errors import MigrationError, RevisionError
from schemashift.history import files, manifest
from schemashift.history.cache import state_at
from schemashift.history.chain import MIN_PREFIX, History, load_all
from schemashift.history.loader import Migration, load_migration
from schemashift.history.rebase import reparent_source
from schemashift.history.writer import new_revision_id, slugify
from schemashift.model.schema import Schema
from schemashift.operations import (
    DropColumn,
    DropSequence,
    DropTable,
    Operation,
    RunPython,
    is_extension,
    resolve_all,
)
from schemashift.operations.render import render_migration
from schemashift.runtime.versions import now

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect

Output = Callable[[str], None]
DROPS = (DropTable, DropColumn, DropSequence)
#: Where `squash` keeps the files it replaced, inside the migrations folder.
REPLACED_DIR = "replaced"


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


def _refuse_extensions(migrations: list[Migration]) -> None:
    foreign = [f"{m.path.name} ({type(op).__name__})" for m in migrations for op in m.operations
               if is_extension(op)]
    if foreign:
        raise MigrationError(f"cannot squash: {foreign[0]} is an extension's operation, whose effects beyond the "
                             "schema a squash could lose; squash a range without it")


def squashed_operations(before: Schema, migrations: list[Migration]) -> list[Operation]:
    """The operations of the squashed migration of `migrations`, which start from `before`.

    Each data step (ExecuteSQL/RunPython/Backfill) not marked ``elidable`` is kept where it
    ran: the schema changes around it are the diff of the states before and after
    them, so it meets the schema it was written for. After a data step, a stretch
    whose diff would drop something keeps its original operations instead (a
    rename there must keep the rows the data step wrote).
    """
    state, start, stretch, after_data = before, before, [], False
    operations: list[Operation] = []
    for migration in migrations:
        for operation in migration.operations:
            if not operation.data_only:
                state = resolve_all([operation], state)[1]
                stretch.append(operation)
            elif not getattr(operation, "elidable", False):
                operations += _stretch(start, state, stretch, after_data)
                operations.append(operation)
                start, stretch, after_data = state, [], True
    return operations + _stretch(start, state, stretch, after_data)


def _stretch(start: Schema, end: Schema, originals: list[Operation], after_data: bool) -> list[Operation]:
    operations = diff(start, end, RenameDecisions(no_rename=True))
    if after_data and any(isinstance(op, DROPS) for op in operations):
        return list(originals)
    return operations


def _functions(operations: list[Operation]) -> None:
    """MigrationError when two different Python steps share a function name (the squashed file holds one)."""
    seen: dict[str, str] = {}
    for operation in operations:
        if isinstance(operation, RunPython):
            for function in (operation.forward, operation.reverse):
                if function is None:
                    continue
                name = getattr(function, "__name__", "")
                try:
                    source = inspect.getsource(function)
                except (OSError, TypeError):
                    source = repr(function)
                if seen.setdefault(name, source) != source:
                    raise MigrationError(
                        f"cannot squash: two data steps use different functions named {name!r}; rename one "
                        "(the squashed migration holds both)")


def _imports(migrations: list[Migration], operations: list[Operation]) -> list[str]:
    """The module-level imports of the files whose Python steps the squashed migration keeps."""
    kept = {id(op) for op in operations if isinstance(op, RunPython)}
    lines: list[str] = []
    for migration in migrations:
        if not any(id(op) in kept for op in migration.operations):
            continue
        source = migration.path.read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if isinstance(node, ast.ImportFrom) and node.module in ("__future__", "schemashift.migration"):
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                line = ast.get_source_segment(source, node)
                if line and line not in lines:
                    lines.append(line)
    return lines


def _source(message: str, operations: list[Operation], parent: str | None, replaced: list[str],
            imports: list[str]) -> bytes:
    """The squashed migration's file (rendered while the replaced files, whose functions it copies, still exist)."""
    text = render_migration(new_revision_id(), parent, message, operations, datetime.now(), replaced)
    if imports:
        star = "from schemashift.migration import *  # noqa: F401,F403\n"
        text = text.replace(star, star + "".join(line + "\n" for line in imports), 1)
    return text.encode("utf-8")


def _refuse_drops_after_base(migrations: list[Migration], operations: list[Operation]) -> None:
    """A range after the first migration must not drop: a database standing before it would run the drop.

    The diff guesses no renames, so a rename in the range becomes drop + add, which
    would lose that database's values where the original steps kept them.
    """
    if migrations[0].parent is None:
        return
    first = next((i for i, op in enumerate(operations) if op.data_only), len(operations))
    drops = [op.describe() for op in operations[:first] if isinstance(op, DROPS)]
    if drops:
        raise MigrationError(
            f"cannot squash from {migrations[0].path.name}: the squashed migration would {drops[0]}"
            f"{f' (and {len(drops) - 1} more drop(s))' if len(drops) > 1 else ''}, losing the data of a database "
            "standing before the range (renames become drop + add); squash from the first migration or a range "
            "without drops")


def squash(folder: Path | str, history: History, message: str, *, start: str | None = None,
           end: str | None = None, out: Output = print, dialects: Sequence[Dialect] = ()) -> Migration:
    """Replace the migrations from `start` to `end` of `folder` by one; return the new migration (the head snapshot
    rewritten with its statements on `dialects`)."""
    folder = Path(folder)
    migrations = _range(history, start, end)
    _refuse_extensions(migrations)
    before, after = state_at(history, migrations[0].parent), state_at(history, migrations[-1].revision)
    operations = squashed_operations(before, migrations)
    _refuse_drops_after_base(migrations, operations)
    _functions(operations)
    following = history.chain[history.index(migrations[-1].revision) + 1:]
    replaced = [m.revision for m in migrations]
    originals = {m.path: m.path.read_bytes() for m in migrations + following[:1]}
    new: Migration | None = None
    number = files.FILE_PATTERN.match(migrations[0].path.name).group(1)  # type: ignore[union-attr]
    source = _source(message, operations, migrations[0].parent, replaced, _imports(migrations, operations))
    path = folder / f"{number}_{slugify(message)}.py"
    kept = folder / REPLACED_DIR
    clashes = [m.path.name for m in migrations if (kept / m.path.name).exists()]
    if clashes:
        raise MigrationError(f"cannot squash: {kept / clashes[0]} already exists (a file of an older squash has "
                             "that name); rename the migration file first")
    moved: list[Path] = []
    try:
        kept.mkdir(exist_ok=True)
        for migration in migrations:
            (kept / migration.path.name).write_bytes(originals[migration.path])
            moved.append(kept / migration.path.name)
            migration.path.unlink()
        with open(path, "xb") as handle:
            handle.write(source)
        new = load_migration(path)
        if following:
            child = following[0]
            child.path.write_bytes(reparent_source(originals[child.path], new.revision, child.path.name))
        chain = History.load(folder)
        _check_same(after, chain, new)
        manifest.write_all(folder, chain, dialects)  # with the head snapshot of the squashed chain
    except BaseException:
        for path, data in originals.items():
            path.write_bytes(data)
        if path.exists() and path not in originals:
            path.unlink()
        for copy in moved:
            copy.unlink(missing_ok=True)
        manifest.rebuild(folder, dialects)
        raise
    out(f"Wrote {new.path.name}: replaces {len(replaced)} migration(s) "
        f"({migrations[0].path.name} .. {migrations[-1].path.name}), moved to {kept.name}/: a database in the "
        f"middle of the range runs the rest of them on `upgrade`; delete {kept.name}/ once every database is past it.")
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


def kept_migrations(history: History) -> dict[str, Migration]:
    """The replaced migrations kept in the ``replaced/`` folder of `history`, by revision (loaded once per history)."""
    folder = history.folder / REPLACED_DIR
    try:
        stamp = folder.stat().st_mtime_ns
    except OSError:
        return {}
    cached = _KEPT.get((folder, stamp))
    if cached is None:
        cached = {m.revision: m for m in load_all(folder)}
        _KEPT[(folder, stamp)] = cached
    return cached


def parts_of(revision: str, kept: Mapping[str, Migration]) -> set[str]:
    """`revision` and, when it is a kept squashed migration, every revision it stands for (nested squashes too)."""
    found = {revision}
    migration = kept.get(revision)
    for replaced in migration.replaces if migration is not None else ():
        found |= parts_of(replaced, kept)
    return found


def replaced_by(history: History) -> dict[str, Migration]:
    """Every replaced revision (of nested squashes too, where kept) mapped to the squashed migration replacing it."""
    kept = kept_migrations(history)
    found: dict[str, Migration] = {}
    for migration in history.chain:
        for revision in migration.replaces:
            for part in parts_of(revision, kept):
                found[part] = migration
    return found


def expanded(history: History, squashed: Migration) -> History | None:
    """`history` up to `squashed`, then the migrations it replaced (from ``replaced/``); None when one is missing."""
    kept = kept_migrations(history)
    if not all(revision in kept for revision in squashed.replaces):
        return None
    before = history.chain[:history.index(squashed.revision)]
    try:
        return History.of(before + [kept[revision] for revision in squashed.replaces], history.folder)
    except MigrationError:
        return None


def history_with(history: History, revision: str) -> History | None:
    """A history holding `revision`: `history` itself, or one with the squashes that replace it expanded."""
    if revision in history:
        return history
    kept = kept_migrations(history)
    for migration in history.chain:
        if any(revision in parts_of(replaced, kept) for replaced in migration.replaces):
            inner = expanded(history, migration)
            return history_with(inner, revision) if inner is not None else None
    return None


def resolve_replaced(history: History, target: str) -> str | None:
    """The full id of the replaced revision (kept in ``replaced/``) that `target` names or starts; None if none."""
    kept = kept_migrations(history)
    if target in kept:
        return target
    found = [revision for revision in kept if len(target) >= MIN_PREFIX and revision.startswith(target)]
    return found[0] if len(found) == 1 else None


def route_from(history: History, revision: str) -> list[tuple[History, Migration]] | None:
    """For a database at the replaced `revision`: (expanded history, squashed migration) per level, innermost first.

    Running each level's history from where the database stands to the end of its
    squashed migration's range, then recording that squash, brings the database
    onto the next level and finally onto `history`. None when a file is missing.
    """
    levels: list[tuple[History, Migration]] = []
    current = history
    while revision not in current:
        kept = kept_migrations(history)
        squashed = next((m for m in current.chain if any(revision in parts_of(r, kept) for r in m.replaces)), None)
        inner = expanded(current, squashed) if squashed is not None else None
        if squashed is None or inner is None:
            return None
        levels.append((inner, squashed))
        current = inner
    return levels[::-1]


def record_sql(version: sa.Table, squashed: Migration, replaced: list[str], dialect: sa.engine.Dialect) -> list[str]:
    """The statements that record `squashed` as applied in place of the rows of the `replaced` revisions."""
    def compiled(statement: sa.sql.ClauseElement) -> str:
        return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).strip() + ";"

    insert = version.insert().values(revision=squashed.revision, parent=squashed.parent, checksum=squashed.checksum,
                                     message=squashed.message[:255], applied_at=now(),
                                     state="applied", direction="up", statements_done=0)
    return [f"-- record {squashed.path.name} (squashed) in place of the {len(squashed.replaces)} it replaces",
            compiled(insert), compiled(version.delete().where(version.c.revision.in_(replaced)))]


def _complete(applied: Mapping[str, object]) -> set[str]:
    return {revision for revision, row in applied.items() if getattr(row, "complete", False)}


def covered_squashes(applied: Mapping[str, object], history: History) -> list[Migration]:
    """Squashed migrations not recorded in `applied` whose replaced revisions all are (or are covered in turn)."""
    unknown = set(applied) - set(history.revisions)
    if not unknown:
        return []
    done = _done(applied, kept_migrations(history))
    return [m for m in history.chain
            if m.replaces and m.revision not in applied and set(m.replaces) <= done]


def all_replaced(history: History, squashed: Migration) -> list[str]:
    """Every revision `squashed` stands for, nested squashes and what they replaced included."""
    kept = kept_migrations(history)
    return sorted(set().union(*(parts_of(revision, kept) for revision in squashed.replaces)))


def _done(applied: Mapping[str, object], kept: Mapping[str, Migration]) -> set[str]:
    """The revisions that ran completely, with each kept squash whose replaced revisions all did."""
    done = _complete(applied)
    grown = True
    while grown:
        covered = {m.revision for m in kept.values() if m.replaces and m.revision not in done
                   and set(m.replaces) <= done}
        done |= covered
        grown = bool(covered)
    return done


def _started(migration: Migration, applied: Mapping[str, object], kept: Mapping[str, Migration]) -> bool:
    """True when the database ran part of what `migration` replaces but `migration` is not recorded."""
    if not migration.replaces or migration.revision in applied:
        return False
    done = _done(applied, kept)
    if set(migration.replaces) <= done:
        return False
    return any(parts_of(revision, kept) & done for revision in migration.replaces)


def squash_problems(applied: Mapping[str, object], history: History) -> list[str]:
    """One message per squashed migration of which the database ran only part of the replaced range."""
    unknown = set(applied) - set(history.revisions)
    if not unknown:
        return []
    kept = kept_migrations(history)
    problems = []
    for migration in history.chain:
        if not _started(migration, applied, kept):
            continue
        if expanded(history, migration) is not None:
            problems.append(
                f"the database stopped in the middle of the migrations that {migration.path.name} replaces "
                f"(squashed): run `schemashift upgrade`, which first runs the rest of them from {REPLACED_DIR}/")
        else:
            problems.append(
                f"the database ran only part of the migrations that {migration.path.name} replaces (squashed) and "
                f"{REPLACED_DIR}/ does not hold them all: upgrade it with the old migration files first (before "
                "the squash), then with these")
    return problems


#: Runs the plan from a revision to another in a history: ``run(history, current, goal)``.
RunTo = Callable[[History, "str | None", str], None]
#: Records the squashed migrations of a history whose replaced revisions all ran.
Record = Callable[[History], None]
#: The database's current revision in a history.
Current = Callable[[History], "str | None"]


def catch_up(applied: Mapping[str, object], history: History, *, run: RunTo, record: Record,
             current: Current) -> None:
    """Bring a database that stopped in the middle of a squashed range to its end with the kept replaced files.

    For each squashed migration the database started (nested squashes first), the
    replaced migrations it has not run are run from ``replaced/``; `record` then
    records the squash (see `covered_squashes`). Nothing is done where a replaced file
    is missing (`squash_problems` reports it).
    """
    if not set(applied) - set(history.revisions):
        return
    kept = kept_migrations(history)
    for migration in history.chain:
        if not _started(migration, applied, kept):
            continue
        inner = expanded(history, migration)
        if inner is None:
            return
        catch_up(applied, inner, run=run, record=record, current=current)
        record(inner)
        run(inner, current(inner), migration.replaces[-1])
        record(history)
        return


_KEPT: dict[tuple[Path, int], dict[str, Migration]] = {}
