"""`repair`: the two ways out of a partly applied migration.

A journaled run (MariaDB/MySQL, or PostgreSQL statements that cannot run in a
transaction) that failed or crashed leaves its version row in state ``failed``
or ``running`` with ``statements_done``. Repair rebuilds the same step from the
migration file and either

* **continues** from the first statement that did not complete, or
* **undoes** the statements that ran, with the inverses of their operations,
  back to the last complete revision.

Repair acts only on what the journal proves this run did. A statement that
*failed* changed nothing (PostgreSQL and SQLite run it in a transaction, MariaDB
10.6+ makes each DDL statement atomic), so a ``failed`` row says exactly how far
the step got and nothing is reflected to find out. After a *crash* (``running``)
the journal cannot know whether the statement that was running completed. A
statement of a safe-mode sequence declares the trace it leaves in the catalogue
(`Statement.trace`: the column added, its default, the helper CHECK there, validated
or gone, NOT NULL), which `statement_ran` reads: the position is then exact, and
undo sees the helper CHECK as this run's. Otherwise the live schema is reflected
and compared with the schema before and after the interrupted operation,
**restricted to the objects that operation changes**.
Whatever else the database holds (tables, columns, indexes no migration made) is
never looked at, so never dropped. When the operation was cut in half, the
differ computes what finishes or takes back just that operation; a fix that
would destroy an object this run did not create is refused with a message
naming it, and what an undo drops that may hold data is kept in a backup
(`schemashift.planning.backups`), as a downgrade would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from schemashift.autodetect.differ import RenameDecisions, diff
from schemashift.errors import DatabaseStateError, SchemashiftError
from schemashift.model.schema import Constraint, Schema, Table, qualify
from schemashift.operations import (
    AddColumn,
    AddConstraint,
    AlterSequence,
    CreateIndex,
    CreateSequence,
    CreateTable,
    DropColumn,
    DropConstraint,
    DropIndex,
    DropSequence,
    DropTable,
    Operation,
    RenameTable,
)
from schemashift.planning.plan import DOWN, UP, Statement, Step, down_step, states_along, up_step
from schemashift.runtime.versions import FAILED, AppliedRevision

if TYPE_CHECKING:
    import sqlalchemy as sa

    from schemashift.dialects.base import Dialect
    from schemashift.runtime.executor import Executor
    from schemashift.services.project import Project

Output = Callable[[str], None]
ACTIONS = ("continue", "undo")
#: Differences that only add: a live object that needs only these to reach a state is part of that state.
_ADDITIVE = (CreateTable, AddColumn, CreateIndex, AddConstraint, CreateSequence)
#: Differences that destroy a live object.
_DESTROYING = (DropTable, DropColumn, DropIndex, DropConstraint, DropSequence)


class RepairRefused(DatabaseStateError):
    """Repair would have to touch an object the journal does not prove this run made (exit code 2)."""


@dataclass
class Position:
    """Where a partly run step stands.

    `ops_done` whole operations ran; `continue` runs `finish` (which completes a
    half-run operation) and then the step from statement `resume_at`; `undo` runs
    `unwind` (which takes a half-run operation back) and then the inverses of the
    `ops_done` operations.
    """

    ops_done: int
    resume_at: int
    finish: list[Operation]
    unwind: list[Operation]
    live: Schema | None = None  #: the interrupted operation's objects as they are (for `finish`/`unwind`)


def _op_bounds(step: Step) -> list[tuple[int, int]]:
    """(first, end) statement indexes of each operation of `step`."""
    bounds: list[tuple[int, int]] = []
    index = 0
    for operation in step.operations:
        first = index
        while index < len(step.statements) and step.statements[index].operation is operation:
            index += 1
        bounds.append((first, index))
    return bounds


def _op_states(step: Step) -> list[Schema]:
    states = [step.before]
    for operation in step.operations:
        states.append(operation.apply(states[-1]))
    return states


# -- the objects of one operation --------------------------------------------------


def _scope(operation: Operation) -> tuple[set[str], set[str]]:
    """The keys of the tables and sequences `operation` works on."""
    tables = {operation.table_key} if operation.table_key else set()
    if isinstance(operation, RenameTable):
        tables.add(qualify(operation.new_name, operation.schema))
    sequences: set[str] = set()
    if isinstance(operation, CreateSequence):
        sequences.add(operation.sequence.key)
    elif isinstance(operation, (AlterSequence, DropSequence)):
        sequences.add(operation.key)
    return tables, sequences


def _restrict(schema: Schema, tables: set[str], sequences: set[str]) -> Schema:
    return Schema({k: t for k, t in schema.tables.items() if k in tables},
                  {k: s for k, s in schema.sequences.items() if k in sequences})


def _part_names(table: Table | None) -> dict[str, set[str]]:
    if table is None:
        return {"column": set(), "index": set(), "constraint": set()}
    return {"column": set(table.column_names), "index": {i.name for i in table.indexes},
            "constraint": {c.name for c in table.constraints() if c.name}}


def _without_foreign(live: Schema, before: Schema, after: Schema,
                     helpers: frozenset[str] = frozenset()) -> tuple[Schema, dict[str, list[str]]]:
    """`live` without the parts of its tables that neither `before` nor `after` has, and those parts by table.

    Such parts (a column, an index, a named constraint the operation never
    mentions) were not made by the operation: repair leaves them alone; the
    `helpers` (constraints its safe-mode statements add for a while) are its own.
    """
    foreign: dict[str, list[str]] = {}
    tables: list[Table] = []
    for key, table in live.tables.items():
        known = _part_names(before.tables.get(key))
        for kind, names in _part_names(after.tables.get(key)).items():
            known[kind] |= names
        known["constraint"] |= helpers
        columns = tuple(c for c in table.columns if c.name in known["column"])
        indexes = tuple(i for i in table.indexes if i.name in known["index"])
        constraints = known["constraint"]

        def keep(c: Constraint, constraints: set[str] = constraints) -> bool:
            return c.name is None or c.name in constraints  # unnamed: not ours to judge

        parts = {"uniques": tuple(c for c in table.uniques if keep(c)),
                 "foreign_keys": tuple(c for c in table.foreign_keys if keep(c)),
                 "checks": tuple(c for c in table.checks if keep(c))}
        lost = [f"column {c.name}" for c in table.columns if c not in columns]
        lost += [f"index {i.name}" for i in table.indexes if i not in indexes]
        lost += [f"constraint {c.name}" for c in table.constraints() if not keep(c)]
        if lost:
            foreign[key] = lost
        tables.append(table.evolve(columns=columns, indexes=indexes, **parts) if lost else table)
    return Schema({t.key: t for t in tables}, dict(live.sequences)), foreign


@dataclass
class _Scoped:
    """The interrupted operation's objects: before it, after it and live (foreign parts left out)."""

    before: Schema
    after: Schema
    live: Schema
    foreign: dict[str, list[str]]
    helpers: frozenset[str] = frozenset()  #: constraints the operation's safe-mode statements add for a while

    @classmethod
    def of(cls, operation: Operation, before: Schema, after: Schema, live: Schema, dialect: Dialect,
           helpers: frozenset[str] = frozenset()) -> _Scoped:
        tables, sequences = _scope(operation)
        normal = dialect.normalize
        b = normal(_restrict(before, tables, sequences))
        a = normal(_restrict(after, tables, sequences))
        seen, foreign = _without_foreign(normal(_restrict(live, tables, sequences)), b, a, helpers)
        return cls(b, a, seen, foreign, helpers)

    def foreign_creations(self) -> list[str]:
        """Tables the operation creates that exist live with parts it would not create."""
        return [key for key in self.after.tables if key not in self.before.tables and self.foreign.get(key)]

    def to(self, target: Schema) -> list[Operation]:
        return diff(self.live, target, RenameDecisions(no_rename=True))


def _check_unwind(unwind: list[Operation], scoped: _Scoped, label: str) -> None:
    """Refuse an undo fix that would destroy an object the interrupted operation did not create."""
    for operation in unwind:
        if not isinstance(operation, _DESTROYING):
            continue
        key: str = operation.table_key or getattr(operation, "key", "") or ""
        made = key not in scoped.before.tables and key in scoped.after.tables
        if isinstance(operation, DropSequence):
            made = key not in scoped.before.sequences and key in scoped.after.sequences
        elif not isinstance(operation, DropTable):
            made = _made_part(operation, scoped)
        if not made:
            raise RepairRefused(f"cannot undo {label}: it would {operation.describe()}, which this run did not create; "
                                "nothing was changed (take it back by hand, then run `schemashift repair undo` again)")
        if isinstance(operation, DropTable) and scoped.foreign.get(key):
            parts = ", ".join(scoped.foreign[key][:5])
            raise RepairRefused(f"cannot undo {label}: it would drop table {key}, which holds {parts} that this run "
                                "did not create; nothing was changed")


def _made_part(operation: Operation, scoped: _Scoped) -> bool:
    """True when the column/index/constraint `operation` drops is one the interrupted operation adds."""
    key = operation.table_key or ""
    kind = {DropColumn: "column", DropIndex: "index", DropConstraint: "constraint"}[type(operation)]
    name = operation.column if isinstance(operation, DropColumn) else operation.name  # type: ignore[attr-defined]
    made = name in _part_names(scoped.after.tables.get(key))[kind] or (kind == "constraint" and name in scoped.helpers)
    return made and name not in _part_names(scoped.before.tables.get(key))[kind]


# -- locating ------------------------------------------------------------------------


def locate(step: Step, row: AppliedRevision, live: Schema | None, dialect: Dialect,
           ran: bool | None = None) -> Position:
    """Find how far `step` got, given the journal `row` and the reflected `live` schema.

    A ``failed`` row is exact (the failed statement changed nothing); a
    ``running`` row leaves the running statement in doubt: `ran` settles it when
    the statement declares a trace (`statement_ran`), else the objects of its
    operation do.
    """
    done = row.statements_done
    bounds = _op_bounds(step)
    states = _op_states(step)
    current = next((k for k, (first, end) in enumerate(bounds) if first <= done < end or (first == end == done)),
                   len(bounds))
    if current >= len(bounds):
        return Position(current, done, [], [])
    operation = step.operations[current]
    if live is None or operation.data_only or states[current] == states[current + 1]:
        # nothing to observe (a backup, a guard, data): the journal is all we know
        return Position(current, done, [], [])
    first, end = bounds[current]
    scoped = _Scoped.of(operation, states[current], states[current + 1], live, dialect,
                        _helpers(step.statements[first:end]))
    label = f"{operation.describe()} (statement {done + 1} of {step.label})"
    if row.state == FAILED or step.statements[done].batched:
        # a batched statement (safe mode's backfill inside an operation) commits each batch with its position: the
        # statements before it completed, and it resumes from its last finished batch
        return _after_failure(current, bounds[current], done, scoped, label)
    if ran is not None:  # the journal and the statement's trace are exact
        return _after_failure(current, bounds[current], done + 1 if ran else done, scoped, label)
    return _after_crash(current, bounds[current], done, scoped, label)


def _helpers(statements: list[Statement]) -> frozenset[str]:
    """The constraints `statements` (one operation's) add for a while, as their traces say."""
    return frozenset(s.trace.name for s in statements if s.trace is not None and s.trace.kind == "check")


def statement_ran(connection: sa.Connection, dialect: Dialect, step: Step, row: AppliedRevision) -> bool | None:
    """After a crash: whether the statement the journal leaves in doubt ran, as the trace it declares shows in the
    catalogue (`Dialect.trace_left`); None when the row is exact or the statement declares none."""
    done = row.statements_done
    if row.state == FAILED or done >= len(step.statements) or step.statements[done].trace is None:
        return None
    import sqlalchemy as sa

    trace = step.statements[done].trace
    assert trace is not None
    try:
        return dialect.trace_left(connection, trace)
    except sa.exc.SQLAlchemyError:  # cannot look (the table is gone): the objects of the operation decide
        return None
    finally:
        if connection.in_transaction():
            connection.rollback()


def _after_failure(current: int, bounds: tuple[int, int], done: int, scoped: _Scoped, label: str) -> Position:
    """The operation's statements before `done` ran, none from it on (statement `done` failed, changing nothing,
    or its trace shows it did not run): only a half-run operation needs a look."""
    if done == bounds[1]:
        return Position(current + 1, done, [], [])
    if done == bounds[0]:
        return Position(current, done, [], [])
    unwind = scoped.to(scoped.before)  # the operation's statements before `done` ran
    _check_unwind(unwind, scoped, label)
    return Position(current, done, [], unwind, scoped.live)


def _after_crash(current: int, bounds: tuple[int, int], done: int, scoped: _Scoped, label: str) -> Position:
    """Statement `done` was running: the objects of its operation tell whether it (or all of it) ran."""
    first, end = bounds
    if scoped.live == scoped.after:
        return Position(current + 1, end, [], [])
    if scoped.live == scoped.before or (done == first and scoped.foreign_creations()):
        # a table the operation creates that holds what it would not create was there before: its statement failed
        return Position(current, first, [], [])
    finish = scoped.to(scoped.after)
    strange = [op for op in finish if not isinstance(op, _ADDITIVE)]
    if strange:
        raise RepairRefused(
            f"cannot tell how far {label} got: the live schema differs from it "
            f"({'; '.join(op.describe() for op in strange[:3])}); nothing was changed")
    unwind = scoped.to(scoped.before)
    _check_unwind(unwind, scoped, label)
    return Position(current, end, finish, unwind, scoped.live)


def describe_partial(row: AppliedRevision) -> str:
    """What the version row says happened."""
    if row.building:
        return (f"a fresh build to revision {row.revision} ({row.message!r}) did not finish: the tables it created "
                "are there, its revisions are not recorded")
    how = "crashed while running" if row.state == "running" else "failed at"
    statement = row.running_statement or row.failed_statement or "?"
    first = " ".join(statement.split())[:160]
    error = f" ({row.error})" if row.error else ""
    return (f"revision {row.revision} ({row.message!r}) was {'upgrading' if row.direction == UP else 'downgrading'}: "
            f"{row.statements_done} statement(s) completed, {how}: {first}{error}")


def rebuild_step(project: Project, dialect: Dialect, row: AppliedRevision) -> Step:
    """The step the journal row belongs to, rebuilt from the migration file."""
    history = project.history()
    if row.revision not in history:
        raise DatabaseStateError(f"cannot repair: the migration file of revision {row.revision} is missing")
    migration = history[row.revision]
    states = states_along(history)
    before = states[migration.parent]
    step = up_step(dialect, migration, before) if row.direction == UP else down_step(dialect, migration, before)
    return step


def protected_step(project: Project, connection: sa.Connection, dialect: Dialect, row: AppliedRevision,
                   step: Step | None = None) -> Step:
    """The step as it ran: rebuilt, in its safe-mode form if the environment has one, then with the same
    backup statements `upgrade` added."""
    from schemashift.planning import backups
    from schemashift.planning.safe import TableSizes, safe_step, settings_of

    step = step or rebuild_step(project, dialect, row)
    settings = settings_of(project.env, dialect)
    if settings is not None:
        step = safe_step(step, settings, TableSizes(connection, settings.rewrite_rows))
    kept = backups.recorded(connection, project.env.schema)
    return backups.protect_step(step, keep=project.env.keep_data, allow_data_loss=True, kept=kept,
                                registry_schema=project.env.schema)


def _original_indexes(protected: Step, original: Step) -> list[int | None]:
    """For each operation of `protected`: the index in its migration file of the operation it stands for.

    None for the statements `protect` added (backups, restores), which have nothing to undo.
    """
    from schemashift.planning.backups import is_data_step

    position = {id(operation): index for index, operation in enumerate(original.operations)}
    count = len(original.operations)
    indexes: list[int | None] = []
    following = 0
    for operation in protected.operations:
        found = position.get(id(operation))
        if found is not None:
            following = found + 1
        elif is_data_step(operation):
            indexes.append(None)
            continue
        index = found if found is not None else following  # an operation `protect` rewrote
        indexes.append(index if original.direction == UP else count - 1 - index)
    return indexes


def run_repair(project: Project, connection: sa.Connection, executor: Executor, row: AppliedRevision,
               action: str, out: Output) -> None:
    """Continue or undo the partly run step recorded in `row`."""
    from schemashift.dialects import dialect_of

    if action not in ACTIONS:
        raise SchemashiftError(f"repair takes 'continue' or 'undo', not {action!r}")
    dialect = dialect_of(connection)
    original = rebuild_step(project, dialect, row)
    if original.migration.checksum != row.checksum and not (row.state == FAILED and row.statements_done == 0):
        raise RepairRefused(
            f"cannot repair: {original.migration.path.name} was edited after its run stopped (checksum differs), so "
            "the statements that ran are unknown; restore the file as it ran, run `schemashift repair undo`, "
            "then edit it and upgrade")
    step = protected_step(project, connection, dialect, row, original)
    executor.clear_leftovers(dialect, row.failed_statement or row.running_statement, row.error or "")
    if row.statements_done == 0 and row.state == FAILED:
        position = Position(0, 0, [], [])  # the first statement failed: nothing changed
    else:
        recorder = executor.recorder
        live = dialect.reflect(connection, schemas=_schemas(step, project), exclude=recorder.own_tables)
        if connection.in_transaction():
            connection.commit()
        position = locate(step, row, live, dialect, statement_ran(connection, dialect, step, row))
    if action == "continue":
        _continue(executor, step, position, dialect)
    else:
        _undo(project, executor, step, _original_indexes(step, original), position, dialect)


def _schemas(step: Step, project: Project) -> list[str | None]:
    names = {t.schema for t in step.before.tables.values()} | {t.schema for t in step.after.tables.values()}
    names.add(project.env.schema)
    return sorted(names, key=lambda s: s or "")


def _continue(executor: Executor, step: Step, position: Position, dialect: Dialect) -> None:
    from schemashift.planning.plan import compile_operations

    if position.finish:
        executor.out(f"finishing an interrupted operation: {'; '.join(op.describe() for op in position.finish)}")
        start = _with_live(_op_states(step)[position.ops_done], position.live)
        statements, _ = compile_operations(dialect, position.finish, start)
        for statement in statements:
            executor.run_statement(statement, dialect)
    executor.resume(step, position.resume_at)


def _with_live(state: Schema, live: Schema | None) -> Schema:
    """`state` with the interrupted operation's objects as they are live."""
    if live is None:
        return state
    tables = {**state.tables, **live.tables}
    return Schema(tables, {**state.sequences, **live.sequences})


def _loses_values(connection: sa.Connection, operation: Operation, state: Schema) -> bool:
    """True when `operation` would lose stored values now (an empty table or an all-NULL column loses none)."""
    import sqlalchemy as sa

    from schemashift.planning.backups import data_loss

    if data_loss(operation) is None:
        return False
    key = operation.table_key or ""
    if key not in state.tables:
        return True
    table = state.table(key)
    source = sa.table(table.name, *[sa.column(name) for name in table.column_names], schema=table.schema)
    query = sa.select(sa.func.count()).select_from(source)
    column = getattr(operation, "column", None)
    if not isinstance(operation, DropTable) and isinstance(column, str) and table.has_column(column):
        query = query.where(source.c[column].is_not(None))
    try:
        found = connection.execute(query).scalar()
    except sa.exc.DBAPIError:
        found = 1  # cannot tell: keep it
    if connection.in_transaction():
        connection.commit()
    return bool(found)


@dataclass
class _Undo:
    """One operation taken back: its statements plain and with backups, and the journal count once it is done."""

    plain: Step
    kept: Step
    journal: int

    def statements(self, connection: sa.Connection) -> list[Statement]:
        """With backups and restores, unless nothing would be kept or restored (asked just before it runs)."""
        from schemashift.planning.backups import RestoreData

        if any(isinstance(op, RestoreData) for op in self.kept.operations):
            return self.kept.statements
        loses = any(_loses_values(connection, op, self.plain.before) for op in self.plain.operations)
        return self.kept.statements if loses else self.plain.statements


def _undo_parts(step: Step, indexes: list[int | None],
                position: Position) -> list[tuple[list[Operation], int, int, Schema]]:
    """What undo takes back, in order: (operations, migration index, journal count after, schema before)."""
    bounds, states = _op_bounds(step), _op_states(step)
    parts: list[tuple[list[Operation], int, int, Schema]] = []
    k = position.ops_done
    if position.unwind and indexes[k] is not None:
        parts.append((position.unwind, indexes[k], bounds[k][0], _with_live(states[k], position.live)))  # type: ignore[arg-type]
    for k in reversed(range(position.ops_done)):
        if indexes[k] is not None:  # the statements `protect` added have nothing to take back
            parts.append(([step.operations[k].inverse()], indexes[k], bounds[k][0], states[k + 1]))  # type: ignore[arg-type]
    return parts


def _undo_plan(project: Project, executor: Executor, step: Step, indexes: list[int | None], position: Position,
               dialect: Dialect) -> list[_Undo]:
    """Every part of the undo compiled and protected, before anything runs (a refusal changes nothing)."""
    from schemashift.planning import backups
    from schemashift.planning.plan import compile_operations

    direction = DOWN if step.direction == UP else UP
    kept = backups.recorded(executor.connection, project.env.schema)
    plan: list[_Undo] = []
    for operations, index, journal, start in _undo_parts(step, indexes, position):
        statements, after = compile_operations(dialect, operations, start)
        plain = Step(step.migration, direction, operations, statements, start, after, dialect)
        protected = backups.protect_step(plain, keep=project.env.keep_data, allow_data_loss=project.env.allow_data_loss,
                                         kept=kept, registry_schema=project.env.schema,
                                         indexes=[index] * len(operations), refuse=True)
        plan.append(_Undo(plain, protected, journal))
    return plan


def _undo(project: Project, executor: Executor, step: Step, indexes: list[int | None], position: Position,
          dialect: Dialect) -> None:
    """Take back the half-run operation, then each whole one, newest first, journaling as it goes.

    After each operation is taken back the row's ``statements_done`` drops to
    that operation's first statement, so an undo that fails or crashes half-way
    can be repaired again.
    """
    plan = _undo_plan(project, executor, step, indexes, position, dialect)
    if position.unwind:
        executor.out(f"taking back an interrupted operation: {'; '.join(op.describe() for op in position.unwind)}")
    for part in plan:
        for statement in part.statements(executor.connection):
            executor.run_statement(statement, dialect)
        executor.journal_undone(step, part.journal)
    executor.abandon(step)


__all__ = [
    "ACTIONS",
    "Position",
    "RepairRefused",
    "Statement",
    "describe_partial",
    "locate",
    "rebuild_step",
    "run_repair",
    "statement_ran",
]
