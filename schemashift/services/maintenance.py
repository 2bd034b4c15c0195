"""Keeping a project's history and its databases in order: `verify`, `repair`, `rebase`, `squash`, `backups`.

`verify` checks the version table against the migration files and, with
``accept``, records the checksums of edited files; `repair` continues or undoes a
partly applied migration under the lock (`schemashift.runtime.repair`), the
choice asked of a `Prompter` when not given; `rebase` and `squash` edit the
migrations folder (no database); `backups_list` and `backups_prune` manage the
data kept from dropped tables and columns (`schemashift.planning.backups`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemashift.dialects import dialect_of
from schemashift.errors import SchemashiftError
from schemashift.planning import backups
from schemashift.runtime.locks import migration_lock
from schemashift.runtime.versions import now
from schemashift.services.project import (
    Output,
    Project,
    all_problems,
    current_revision,
    integrity_problems,
    print_line,
)
from schemashift.services.prompting import NO_PROMPTS, Prompter, repair_action

if TYPE_CHECKING:
    import sqlalchemy as sa

    from schemashift.history.chain import History
    from schemashift.runtime.versions import AppliedRevision, Recorder
    from schemashift.support.progress import Reporter


def verify(project: Project, *, accept: bool = False, out: Output = print_line) -> bool:
    """Check the version table against the migration files; `accept` records edited checksums."""
    history = project.history()
    with project.connect() as connection:
        recorder = project.recorder(connection)
        applied = recorder.applied()
        problems = all_problems(applied, history)
        if accept:
            problems = _accept_edits(connection, recorder, applied, history, problems, out)
    for problem in problems:
        out(f"PROBLEM: {problem}")
    if not problems:
        out(f"OK: {len(applied)} applied revision(s) match their migration files; the chain of "
            f"{len(history.chain)} migration(s) is linear.")
    return not problems


def _accept_edits(connection: sa.Connection, recorder: Recorder, applied: dict[str, AppliedRevision],
                  history: History, problems: list[str], out: Output) -> list[str]:
    """Record the new checksum of every applied file that was edited; the problems that remain."""
    edited = [(row, migration) for row in applied.values()
              if row.complete and (migration := history.get(row.revision)) is not None
              and migration.checksum != row.checksum]
    with connection.begin():
        for row, migration in edited:
            recorder.update(row.revision, checksum=migration.checksum)
            recorder.log(row.revision, "accept", migration.checksum, migration.message, now(), 0, "accepted")
            out(f"accepted the edit of {migration.path.name} (new checksum recorded)")
    return list(integrity_problems(recorder.applied(), history)) + [p for p in problems if "PARTLY" in p]


def repair(project: Project, *, action: str | None = None, out: Output = print_line,
           reporter: Reporter | None = None, prompter: Prompter = NO_PROMPTS) -> None:
    """Continue or undo a partly applied migration (see `schemashift.runtime.repair`); `reporter` as for `upgrade`.

    Without `action` the choice is asked of `prompter` (which, when it cannot ask, stops with the two commands).
    """
    from schemashift.runtime.executor import Executor
    from schemashift.runtime.repair import ACTIONS, describe_partial, run_repair

    history = project.history()
    with project.connect() as connection:
        dialect = dialect_of(connection)
        recorder = project.recorder(connection)
        with migration_lock(dialect, connection, project.lock_name, project.env):
            partial = [row for row in recorder.applied().values() if not row.complete]
            if not partial:
                out("Nothing to repair: no migration is partly applied.")
                return
            row = partial[0]
            out(describe_partial(row))
            if action is None:
                action = repair_action(prompter)
            if action not in ACTIONS:
                raise SchemashiftError(f"repair takes 'continue' or 'undo', not {action!r}")
            if row.building:
                _repair_build(project, connection, recorder, history, action, out)
                return
            executor = Executor(connection, recorder, project.migration_context(connection), out, reporter)
            run_repair(project, connection, executor, row, action, out)
            current = current_revision(recorder.applied(), history)
            out(f"Repaired: the database is at {current or 'base'}.")


def _repair_build(project: Project, connection: sa.Connection, recorder: Recorder, history: History, action: str,
                  out: Output) -> None:
    """An interrupted side-by-side fresh build: ``continue`` creates what it had not, keeping the tables it made
    and their rows (`schemashift.runtime.fresh.finish`); ``undo`` takes it back (`take_back`: none may hold rows)."""
    from schemashift.runtime.fresh import finish, take_back
    from schemashift.services.compare import compare_schemas, live_schemas
    from schemashift.services.migrate import interrupted_build

    build = interrupted_build(connection, recorder, history, dialect_of(connection))
    if build is None:
        return
    if action == "undo":
        take_back(connection, recorder, build)
        out("Repaired: the fresh build was taken back; the database is at base.")
        return
    missing = compare_schemas(connection, build.after, schemas=live_schemas(project, build.after),
                              exclude=recorder.own_tables | {backups.REGISTRY}, keep=project.object_filter())
    finish(connection, recorder, build, missing)
    out(f"Repaired: the fresh build finished; the database is at {build.target}.")


def rebase(project: Project, *, out: Output = print_line) -> None:
    """Make a forked migrations folder linear again (see `schemashift.history.rebase.rebase`); no database access."""
    from schemashift.dialects import run_time_dialects
    from schemashift.history.chain import load_all
    from schemashift.history.rebase import rebase as rebase_folder

    folder = project.config.migrations_dir
    parents_before = {migration.revision: migration.parent for migration in load_all(folder)}
    rebase_folder(folder, out=out, dialects=run_time_dialects(project.config))
    history = project.reload_history()
    for migration in history:
        old_parent = parents_before.get(migration.revision, migration.parent)
        if old_parent == migration.parent:
            continue
        skipped = history.chain[history.index(old_parent) + 1 : history.index(migration.revision)]
        out(f"Note: {migration.path.name} was edited (new parent). A database that already applied "
            f"{migration.revision} needs `schemashift verify --accept`, and lacks "
            f"{', '.join(m.path.name for m in skipped)}, which `upgrade` will not apply there.")


def squash(project: Project, message: str, *, start: str | None = None, end: str | None = None,
           out: Output = print_line) -> Path:
    """Replace the migrations from `start` (default: the first) to `end` (default: head) by one; no database access."""
    from schemashift.dialects import run_time_dialects
    from schemashift.services.squash import squash as squash_folder

    migration = squash_folder(project.config.migrations_dir, project.history(), message, start=start, end=end, out=out,
                              dialects=run_time_dialects(project.config))
    project.forget_history()
    return migration.path


def backups_list(project: Project) -> list[dict[str, Any]]:
    """Every backup of dropped or narrowed data, oldest first (see `schemashift.planning.backups`)."""
    return backups.list_backups(project)


def backups_prune(project: Project, older_than: str, out: Output = print_line) -> int:
    """Drop backups older than `older_than` (``30d``, ``12h``, ``90m``, ``1w``); returns how many."""
    return backups.prune(project, older_than, out, lock=migration_lock)


__all__ = ["backups_list", "backups_prune", "rebase", "repair", "squash", "verify"]
