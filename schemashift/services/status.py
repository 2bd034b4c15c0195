"""The read-only commands: `status`, `diff`, `history` and `lint`.

`status` reads the version table against the migration files (problems, the
current revision, what is pending) and compares the live schema with the state
the migrations build at that revision (drift); `diff` compares it with the models
or that state; `history` lists the chain or the database's apply/revert log;
`lint` judges migrations for the environment's database
(`schemashift.planning.lint`). None of them changes the database, except that a
clean `status` at head stores the catalogue fingerprint the fast path reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from schemashift.dialects import get_dialect
from schemashift.errors import DifferencesFound, SchemashiftError
from schemashift.history.cache import state_at
from schemashift.operations.columns import AlterColumn
from schemashift.planning.plan import states_along
from schemashift.services.compare import live_operations, read_before_check, remember_fingerprint
from schemashift.services.migrate import unmanaged_problem
from schemashift.services.project import (
    Project,
    all_problems,
    backend_name,
    checked_current,
    current_revision,
    masked_url,
    not_created,
    partial_problem,
)

if TYPE_CHECKING:
    from schemashift.history.chain import History
    from schemashift.history.loader import Migration
    from schemashift.model.schema import Column
    from schemashift.operations import Operation
    from schemashift.planning.lint import Finding


@dataclass
class StatusReport:
    """What `status` shows."""

    env: str
    url: str
    current: str | None
    head: str | None
    pending: list[str]
    problems: list[str]
    schema_matches: bool | None
    differences: list[str]
    unknown: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (`differences`: what the database has; `changes`: what would make it match)."""
        return {
            "env": self.env, "url": self.url, "current": self.current, "head": self.head,
            "pending": self.pending, "problems": self.problems, "schema_matches": self.schema_matches,
            "differences": self.differences, "changes": self.changes, "unknown_revisions": self.unknown,
            "notes": self.notes, "exit_code": self.exit_code,
        }

    @property
    def exit_code(self) -> int:
        """For scripts: 0 up to date and clean, 1 pending migrations or drift, 2 a problem needing action."""
        if self.problems:
            return 2
        return 1 if self.pending or self.schema_matches is False else 0

    def lines(self) -> list[str]:
        """Human-readable lines."""
        current = self.current or "base"
        if self.unknown:
            current = f"{', '.join(self.unknown)} (recorded in the database; no such migration file here)"
        out = [f"Environment: {self.env} ({self.url})", f"Current revision: {current}",
               f"Head revision: {self.head or 'base'}"]
        out.append(f"Pending: {len(self.pending)}" + ("" if not self.pending else ": " + ", ".join(self.pending)))
        out.extend(f"Note: {note}" for note in self.notes)
        out.extend(f"PROBLEM: {p}" for p in self.problems)
        if self.schema_matches is not None:
            matches = "matches the migrations." if self.schema_matches else "DRIFTS from the migrations:"
            out.append(f"Live schema {matches}")
            out.extend(f"  - {d}" for d in self.differences)
        return out


def status(project: Project) -> StatusReport:
    """The database's revision, pending migrations, problems and drift (a database not created yet stays so)."""
    history = project.history()
    if not_created(project):
        pending = [m.revision for m in history.chain]
        return StatusReport(project.env.name, masked_url(project), None, history.head, pending, [], None, [],
                            notes=["the database does not exist yet: `schemashift upgrade` creates it"])
    with project.connect() as connection:
        recorder = project.recorder(connection)
        applied = recorder.applied()
        problems = all_problems(applied, history)
        partial = partial_problem(applied)
        current = current_revision(applied, history)
        pending = [m.revision for m in history.upgrade_path(current, history.head)]
        unknown = [row.revision for row in applied.values() if row.complete and row.revision not in history]
        expected = state_at(history, current)
        unmanaged = None if partial or current is not None else \
            unmanaged_problem(connection, recorder, set(state_at(history, history.head).tables))
        if unmanaged:
            problems.append(unmanaged)  # instead of its drift, which would list every table as a drop
        head = current if current is not None and current == history.head and not problems else None
        before = read_before_check(project, connection, head, expected) if head is not None else None
        drift = live_operations(project, connection, expected) if not (partial or unmanaged) else []
        if head is not None and before is not None and not drift:
            remember_fingerprint(project, connection, head, expected, check=False, taken=before)
    return StatusReport(project.env.name, masked_url(project), current, history.head, pending, problems,
                        None if partial or unmanaged or unknown else not drift,
                        [database_view(op, "migrations") for op in drift], unknown,
                        changes=[op.describe() for op in drift])


def database_view(op: Operation, side: str) -> str:
    """Drift `op` (the change that would make the database match `side`, "models" or "migrations") told as
    what the database has: ``drop column t.c`` is "the database has column t.c that the models do not"."""
    if isinstance(op, AlterColumn) and op.old is not None:
        fields = op.changes
        live = ", ".join(_field_text(op.old, name) for name in fields)
        wanted = ", ".join(_field_text(op.new, name) for name in fields)
        return f"column {op.table_key}.{op.column} differs: the database has {live}, the {side} {wanted}"
    text = op.describe()
    verb, _, rest = text.partition(" ")
    if verb == "drop":
        return f"the database has {rest} that the {side} do not"
    if verb in ("create", "add"):
        return f"the {side} have {rest} that the database does not"
    if verb == "rename" and " to " in rest:
        old, _, new = rest.rpartition(" to ")
        return f"the database has {old} where the {side} have {new}"
    if verb in ("alter", "replace"):
        name, _, detail = rest.partition(" (")
        return f"{name} differs from the {side}" + (f" (database -> {side}: {detail}" if detail else "")
    if text.startswith("set comment of "):
        table, _, comment = text.removeprefix("set comment of ").partition(" to ")
        return f"the comment of {table} differs from the {side} (which say {comment})"
    return f"the database differs from the {side}: {text}"


def _field_text(column: Column, name: str) -> str:
    """One field of `column` as the drift line shows it (``type integer``, ``NOT NULL``, ``default '0'``)."""
    if name == "type":
        return f"type {column.type.describe()}"
    if name == "nullable":
        return "NULL" if column.nullable else "NOT NULL"
    value = getattr(column, name)
    return f"no {name}" if value in (None, (), False) else f"{name} {value!r}"


@dataclass
class DiffReport:
    """What `diff` found between the live database and the models or the migrations."""

    against: str
    operations: list[Operation]

    @property
    def empty(self) -> bool:
        """True when nothing differs."""
        return not self.operations

    def lines(self) -> list[str]:
        """Human-readable lines."""
        if self.empty:
            return [f"No differences between the database and the {self.against}."]
        return [f"The database differs from the {self.against}:"] + [f"  - {line}" for line in self.differences]

    @property
    def differences(self) -> list[str]:
        """What the database has, one line per difference (`database_view`)."""
        return [database_view(op, self.against) for op in self.operations]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (`differences`: what the database has; `changes`: what would make it match)."""
        return {"against": self.against, "differences": self.differences,
                "changes": [op.describe() for op in self.operations],
                "operations": [type(op).__name__ for op in self.operations]}


def diff(project: Project, *, against: str = "models") -> DiffReport:
    """Differences between the live database and the models (or the migrations at its revision)."""
    if against not in ("models", "migrations"):
        raise SchemashiftError("--against takes 'models' or 'migrations'")
    history = project.history()
    with project.connect() as connection:
        if against == "models":
            expected = project.model_schema()
        else:
            expected = state_at(history, checked_current(project.recorder(connection), history, strict=False))
        return DiffReport(against, live_operations(project, connection, expected))


def require_clean(report: DiffReport) -> None:
    """Raise DifferencesFound when `report` is not empty."""
    if not report.empty:
        raise DifferencesFound(f"{len(report.operations)} difference(s) found")


def history(project: Project, *, applied: bool = False) -> list[dict[str, Any]]:
    """The migration chain (base to head), or with `applied` the database's apply/revert log."""
    chain = project.history()
    if applied:
        with project.connect() as connection:
            return project.recorder(connection).history_rows()
    rows: list[dict[str, Any]] = []
    for migration in chain.chain:
        rows.append({"revision": migration.revision, "parent": migration.parent, "message": migration.message,
                     "file": migration.path.name, "checksum": migration.checksum})
    return rows


def lint(project: Project, spec: str | None = None, *, every: bool = False) -> list[Finding]:
    """Lint findings for migrations: `spec` (``REV`` or ``REV..REV``), all with `every`, else those not yet
    applied to the environment's database; judged for the environment's database (no connection needed
    unless the pending ones are asked for)."""
    from schemashift.planning.lint import lint_migration
    from schemashift.planning.safe import settings_of

    history = project.history()
    dialect = get_dialect(backend_name(project))
    migrations = _lint_selection(project, history, spec, every)
    states = states_along(history)
    still_mapped = _still_mapped(project) if migrations else frozenset()
    findings = []
    for migration in migrations:
        findings.extend(lint_migration(migration, states[migration.parent], dialect,
                                       statement_timeout=project.env.statement_timeout,
                                       safe=settings_of(project.env, dialect) is not None, still_mapped=still_mapped,
                                       keep_data=project.env.keep_data))
    return findings


def _still_mapped(project: Project) -> frozenset[tuple[str, str]]:
    """The (table key, column) pairs the models have and the migrations' head has not (a migration dropping one
    breaks the application: SS304); none when the models cannot be read (the other rules need no models)."""
    from schemashift.operations.columns import AddColumn
    from schemashift.services.generate import pending_operations

    try:
        operations = pending_operations(project, no_rename=True)
    except Exception:  # noqa: BLE001 - the user's models failed to import or compare: SS304 is left out
        return frozenset()
    return frozenset((op.table_key, op.column.name) for op in operations
                     if isinstance(op, AddColumn) and op.table_key is not None)


def _lint_selection(project: Project, history: History, spec: str | None, every: bool) -> list[Migration]:
    if every:
        return list(history.chain)
    if spec is None:
        with project.connect() as connection:
            current = checked_current(project.recorder(connection), history, strict=False)
        return history.upgrade_path(current, history.head)
    first, sep, last = spec.partition("..")
    if not sep:
        revision = history.resolve(first)
        if revision is None:
            raise SchemashiftError("lint REV: name a revision, not base")
        return [history.chain[history.index(revision)]]
    start = history.resolve(first) if first else None
    end = history.resolve(last) if last else history.head
    chain = history.chain
    low = history.index(start) if start else 0
    return chain[low : history.index(end) + 1]


__all__ = ["DiffReport", "StatusReport", "diff", "history", "lint", "require_clean", "status"]
