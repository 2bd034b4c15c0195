"""Plans: what an upgrade or downgrade will do, as data, before anything runs.

The same `Plan` gives `--dry-run` (its lines), `--sql` (its statements), lint and
execution. Down steps are derived: each migration's operations are resolved
against the schema before it and inverted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from schemashift.dialects.compiling import compile_operations as compile_operations  # re-exported: plans use it
from schemashift.errors import IrreversibleError
from schemashift.history import cache
from schemashift.model.schema import Schema
from schemashift.operations import Operation, invert_all, resolve_all
from schemashift.operations.statement import Statement as Statement  # re-exported: plans are made of them

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect
    from schemashift.history.chain import History
    from schemashift.history.loader import Migration

UP, DOWN = "up", "down"



@dataclass
class Step:
    """One migration run in one direction."""

    migration: Migration
    direction: str
    operations: list[Operation]
    statements: list[Statement]
    before: Schema
    after: Schema
    plan_dialect: Dialect

    @property
    def atomic(self) -> bool:
        """True when the whole step can run in one transaction with its version row."""
        if not self.plan_dialect.transactional_ddl:
            return False
        return all((s.sql is None or self.plan_dialect.runs_in_transaction(s.sql)) and not s.own_transaction
                   and not s.batched for s in self.statements)

    @property
    def revision_after(self) -> str | None:
        """The database's revision once this step is done."""
        return self.migration.revision if self.direction == UP else self.migration.parent

    @property
    def label(self) -> str:
        """``0002_add_email (3f2a9c1b7d4e)``."""
        return f"{self.migration.path.stem} ({self.migration.revision})"


@dataclass
class Plan:
    """Ordered steps from `start` to `target` on one dialect."""

    dialect: Dialect
    direction: str
    start: str | None
    target: str | None
    steps: list[Step] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when there is nothing to run."""
        return not self.steps

    def lines(self) -> list[str]:
        """The plan for humans (``--dry-run``)."""
        if self.empty:
            return [f"Nothing to do: the database is at {self.start or 'base'}."]
        verb = "Upgrade" if self.direction == UP else "Downgrade"
        out = [f"{verb} plan on {self.dialect.name}: {self.start or 'base'} -> {self.target or 'base'}"]
        for step in self.steps:
            arrow = "apply" if step.direction == UP else "revert"
            out.append(f"  {arrow} {step.label}: {step.migration.message}")
            groups = statement_groups(step)
            for operation, statements in zip(step.operations, groups, strict=True):
                out.append(f"    - {operation.describe()}")
                out.extend(f"        safe mode: {s.describe()}" for s in statements if s.own_transaction)
        return out


def statement_groups(step: Step) -> list[list[Statement]]:
    """The statements of each operation of `step`, in order."""
    return group_by_operation(step.operations, step.statements)


def group_by_operation(operations: Sequence[Operation], statements: Sequence[Statement]) -> list[list[Statement]]:
    """The statements of each of `operations`, in order (`statements` lists them operation after operation)."""
    groups: list[list[Statement]] = []
    position = 0
    for operation in operations:
        group: list[Statement] = []
        while position < len(statements) and statements[position].operation is operation:
            group.append(statements[position])
            position += 1
        groups.append(group)
    return groups


def states_along(history: History) -> dict[str | None, Schema]:
    """The schema after each revision of the chain (None: the empty base)."""
    states: dict[str | None, Schema] = {None: Schema()}
    state = Schema()
    for migration in history.chain:
        _, state = resolve_all(migration.operations, state)
        states[migration.revision] = state
    return states


def up_step(dialect: Dialect, migration: Migration, before: Schema) -> Step:
    """The step that applies `migration` to a database at schema `before`."""
    resolved, _ = resolve_all(migration.operations, before)
    statements, after = compile_operations(dialect, resolved, before)
    return Step(migration, UP, resolved, statements, before, after, dialect)


def down_step(dialect: Dialect, migration: Migration, before_migration: Schema) -> Step:
    """The step that reverts `migration`; `before_migration` is the schema at its parent."""
    resolved, after_migration = resolve_all(migration.operations, before_migration)
    try:
        inverses = invert_all(resolved)
    except IrreversibleError as exc:
        raise IrreversibleError(
            f"cannot downgrade {migration.path.name} ({migration.revision}): {exc}; nothing was changed"
        ) from None
    statements, after = compile_operations(dialect, inverses, after_migration)
    return Step(migration, DOWN, inverses, statements, after_migration, after, dialect)


def build_plan(history: History, dialect: Dialect, current: str | None, target: str | None) -> Plan:
    """The plan that moves a database at `current` to `target` (either direction).

    Only the migrations between the two are imported and replayed: the state at
    the lower end comes from `schemashift.history.cache` (memory, disk, or a replay).
    """
    position = history.index(current) if current else -1
    goal = history.index(target) if target else -1
    if goal >= position:
        plan = Plan(dialect, UP, current, target)
        path = history.upgrade_path(current, target)
        if not path:
            return plan  # already there: no state needed
        state = cache.state_at(history, current)
        for migration in path:
            step = up_step(dialect, migration, state)
            plan.steps.append(step)
            state = step.after
            cache.advance(history, migration.revision, state)
        if plan.steps:
            cache.persist(history, target)
        return plan
    plan = Plan(dialect, DOWN, current, target)
    state = cache.state_at(history, target)
    befores: dict[str | None, Schema] = {target: state}
    for migration in history.chain[goal + 1 : position]:  # the parents of the reverted migrations
        _, state = resolve_all(migration.operations, state)
        befores[migration.revision] = state
    for migration in history.downgrade_path(current, target):
        plan.steps.append(down_step(dialect, migration, befores[migration.parent]))
    return plan
