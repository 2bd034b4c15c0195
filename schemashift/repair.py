"""`repair`: the two ways out of a partly applied migration.

A journaled run (MariaDB/MySQL, or PostgreSQL statements that cannot run in a
transaction) that failed or crashed leaves its version row in state ``failed``
or ``running`` with ``statements_done``. Repair rebuilds the same step from the
migration file and either

* **continues** from the first statement that did not complete, or
* **undoes** the statements that ran, with the inverses of their operations,
  back to the last complete revision.

After a crash the journal cannot know whether the statement that was running
completed, so the live schema is reflected and compared with the schema after
each operation; where it matches none (an operation cut in half), the differ
computes the operations that finish or undo it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .differ import RenameDecisions, diff
from .errors import DatabaseStateError, SchemashiftError
from .ops import Operation
from .plan import DOWN, UP, Statement, Step, down_step, states_along, up_step
from .schema.model import Schema
from .versions import AppliedRevision

if TYPE_CHECKING:
    import sqlalchemy as sa

    from .api import Project
    from .dialects.base import Dialect
    from .executor import Executor

Output = Callable[[str], None]
ACTIONS = ("continue", "undo")


@dataclass
class Position:
    """Where a partly run step stands: `ops_done` whole operations, `resume_at` the next statement."""

    ops_done: int
    resume_at: int
    fix: list[Operation]


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


def locate(step: Step, done: int, live: Schema | None, dialect: "Dialect") -> Position:
    """Find how far `step` got, given the journal's `done` count and the reflected `live` schema."""
    bounds = _op_bounds(step)
    states = _op_states(step)
    current = next((k for k, (first, end) in enumerate(bounds) if first <= done < end or (first == end == done)), len(bounds))
    if current >= len(bounds) or live is None or step.operations[current].data_only:
        return Position(current, done, [])
    if states[current] == states[current + 1]:
        # no schema effect to observe (a backup, a guard): the journal is all we know
        return Position(current, done, [])
    normal = dialect.normalize
    seen = normal(live)
    first, end = bounds[current]
    if seen == normal(states[current + 1]):
        return Position(current + 1, end, [])
    if seen == normal(states[current]):
        return Position(current, first, [])
    fix = diff(seen, normal(states[current + 1]), RenameDecisions(no_rename=True))
    return Position(current + 1, end, fix)


def describe_partial(row: AppliedRevision) -> str:
    """What the version row says happened."""
    how = "crashed while running" if row.state == "running" else "failed at"
    statement = row.running_statement or row.failed_statement or "?"
    first = " ".join(statement.split())[:160]
    error = f" ({row.error})" if row.error else ""
    return (f"revision {row.revision} ({row.message!r}) was {'upgrading' if row.direction == UP else 'downgrading'}: "
            f"{row.statements_done} statement(s) completed, {how}: {first}{error}")


def rebuild_step(project: "Project", dialect: "Dialect", row: AppliedRevision) -> Step:
    """The step the journal row belongs to, rebuilt from the migration file."""
    history = project.history()
    if row.revision not in history:
        raise DatabaseStateError(f"cannot repair: the migration file of revision {row.revision} is missing")
    migration = history.get(row.revision)
    states = states_along(history)
    before = states[migration.parent]
    step = up_step(dialect, migration, before) if row.direction == UP else down_step(dialect, migration, before)
    return step


def protected_step(project: "Project", connection: "sa.Connection", dialect: "Dialect", row: AppliedRevision) -> Step:
    """The step as it ran: rebuilt, then with the same backup statements `upgrade` added."""
    from . import backups

    step = rebuild_step(project, dialect, row)
    kept = backups.recorded(connection, project.env.schema)
    return backups.protect_step(step, keep=project.env.keep_data, allow_data_loss=True, kept=kept,
                                registry_schema=project.env.schema)


def _reverse_step(step: Step, ops_done: int, dialect: "Dialect", start: Schema) -> Step:
    """A step running the inverses of the first `ops_done` operations, from schema `start`."""
    from .plan import _compile

    inverses = [op.inverse() for op in reversed(step.operations[:ops_done])]
    statements, after = _compile(dialect, inverses, start)
    direction = DOWN if step.direction == UP else UP
    return Step(step.migration, direction, inverses, statements, start, after, dialect)


def run_repair(project: "Project", connection: "sa.Connection", executor: "Executor", row: AppliedRevision,
               action: str, out: Output) -> None:
    """Continue or undo the partly run step recorded in `row`."""
    from .dialects import dialect_of
    from .schema.reflect import reflect

    if action not in ACTIONS:
        raise SchemashiftError(f"repair takes 'continue' or 'undo', not {action!r}")
    dialect = dialect_of(connection)
    step = protected_step(project, connection, dialect, row)
    recorder = executor.recorder
    live = reflect(connection, schemas=_schemas(step, project), exclude=recorder.own_tables)
    if connection.in_transaction():
        connection.commit()
    position = locate(step, row.statements_done, live, dialect)
    if position.fix:
        out(f"finishing an interrupted operation: {'; '.join(op.describe() for op in position.fix)}")
    if action == "continue":
        _continue(executor, step, position, dialect, live)
    else:
        _undo(executor, step, position, dialect, live, row)


def _schemas(step: Step, project: "Project") -> list[str | None]:
    names = {t.schema for t in step.before.tables.values()} | {t.schema for t in step.after.tables.values()}
    names.add(project.env.schema)
    return sorted(names, key=lambda s: s or "")


def _run_fix(executor: "Executor", step: Step, fix: list[Operation], dialect: "Dialect", live: Schema) -> None:
    from .plan import _compile

    if not fix:
        return
    statements, _ = _compile(dialect, fix, dialect.normalize(live))
    for statement in statements:
        executor.run_statement(statement, dialect)


def _continue(executor: "Executor", step: Step, position: Position, dialect: "Dialect", live: Schema) -> None:
    _run_fix(executor, step, position.fix, dialect, live)
    executor.resume(step, position.resume_at)


def _undo(executor: "Executor", step: Step, position: Position, dialect: "Dialect", live: Schema,
          row: AppliedRevision) -> None:
    states = _op_states(step)
    if position.fix:
        # the interrupted operation is finished first, then undone with the others
        _run_fix(executor, step, position.fix, dialect, live)
    back = _reverse_step(step, position.ops_done, dialect, states[position.ops_done])
    for statement in back.statements:
        executor.run_statement(statement, dialect)
    executor.abandon(step)


__all__ = ["ACTIONS", "Position", "locate", "describe_partial", "rebuild_step", "run_repair", "Statement"]
