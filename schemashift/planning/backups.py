"""Keeping the data destructive operations would lose, and putting it back on the way back.

`protect` rewrites a `Plan` before anything runs (so ``--dry-run`` and ``--sql``
show the result). Every operation that may lose stored values, in either
direction (a downgrade drops what its upgrade added) — dropping a column or a
table, narrowing a type (see `data_loss`) — gets, just before it, statements
that copy what it would lose into a backup table ``_schemashift_bk_<revision>_<u|d>_<n>`` (``n``: the
operation's index in its migration file) and record it in the registry table
``_schemashift_backups``. When the opposite step later re-creates that column or
table (the inverse operation), statements right after it put every value back and
drop the backup; the registry rows go with the step's last statement.

Rules and choices:

* Rows are matched by the primary key, else by a unique key of NOT NULL columns.
  A column change on a table with neither, or a change of a key column itself,
  cannot be kept: it is refused unless data loss is allowed (so is the downgrade
  of a column added to such a table). A dropped table is kept whole, key or not
  (it is restored with ``INSERT … SELECT``, sequences moved past the ids).
* Only non-NULL values are kept. A re-created NOT NULL column without default is
  added nullable, filled, then made NOT NULL.
* Removing enum values loses nothing, so needs no backup: a check just before it
  refuses to go on while rows still use them (move those rows to another value
  first, e.g. with an ``ExecuteSQL`` that has a ``reverse``, before the
  ``AlterColumn``); the other rows keep their values both ways. (A PostgreSQL
  value added back with ``ALTER TYPE … ADD VALUE`` could not even be written
  again in the same transaction.)
* A NOT NULL column with nothing to fill it (no default, no ``fill``: see
  `ops.needs_fill`) added to a table that holds rows is refused on every database
  (MariaDB would fill it with ``''`` or 0 silently): a check just before the
  ``AddColumn`` stops the step, and before anything runs `prepare` makes the same
  check on each such table the plan has not created, renamed or filled with data
  steps first, so the refusal changes nothing.
* With ``keep_data`` off, such operations are refused unless ``--allow-data-loss``
  (or ``allow_data_loss = true``) accepts them; `rows_at_risk` counts what would go.
* Restores are planned from the registry as it is when the plan is built: a
  pruned (or never made) backup is not restored. The backup and registry names
  start with ``_schemashift_``, so reflection and diff never see them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable, CreateTableAs
from sqlalchemy.schema import DropTable as SADropTable

from schemashift.errors import SchemashiftError
from schemashift.history.records import now
from schemashift.model.schema import Column, Schema, Table, qualify
from schemashift.model.types import Type
from schemashift.operations import (
    AddColumn,
    AlterColumn,
    DropColumn,
    DropTable,
    InternalOperation,
    Operation,
    RenameTable,
    needs_fill,
)
from schemashift.operations import (
    CreateTable as CreateTableOp,
)
from schemashift.planning.plan import DOWN, UP, Plan, Statement, Step, statement_groups
from schemashift.planning.safe import make_safe, settings_of
from schemashift.sqla.types import to_sa_type

if TYPE_CHECKING:
    from schemashift.config import EnvConfig
    from schemashift.dialects.base import Dialect
    from schemashift.services.project import Project

Output = Callable[[str], None]
#: Takes the migration lock: (dialect, connection, lock name, environment) -> context manager.
MigrationLock = Callable[..., AbstractContextManager[None]]

#: The registry of backups (one per database schema of the version table).
REGISTRY = "_schemashift_backups"
#: Prefix of every backup table.
PREFIX = "_schemashift_bk_"
#: Integer kinds from narrowest to widest.
_INTEGER_RANK = {"smallint": 0, "integer": 1, "bigint": 2}
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DataLossRefused(SchemashiftError):
    """An operation would lose stored values and nothing allows it (exit code 2)."""


# -- what loses data -------------------------------------------------------------


def data_loss(operation: Operation) -> str | None:
    """What a resolved `operation` may lose, in words; None when it loses no stored value."""
    if isinstance(operation, DropTable):
        return f"the rows of {operation.table_key}"
    if isinstance(operation, DropColumn):
        definition = operation.definition
        return None if definition is not None and definition.computed is not None else _values(operation)
    if isinstance(operation, AlterColumn) and operation.old is not None:
        old, new = operation.old, operation.new
        if old.computed is not None:
            return None  # generated values come from other columns
        if old.type.kind == new.type.kind == "enum":
            return None  # removed values: guarded instead (`CheckValuesUnused`), the others are unchanged
        if new.computed is not None or narrows(old.type, new.type):
            return _values(operation)
    if operation.destructive and not isinstance(operation, (DropTable, DropColumn, AlterColumn)):
        return f"what {type(operation).__name__} removes from {operation.table_key or 'the database'}"
    return None


def _values(operation: Operation) -> str:
    return f"the values of {operation.table_key}.{_lost_column(operation)}"


def _lost_column(operation: Operation) -> str:
    """The column whose values `operation` (a `DropColumn` or `AlterColumn`, see `data_loss`) may lose."""
    assert isinstance(operation, (DropColumn, AlterColumn)), operation
    return operation.column


def narrows(old: Type, new: Type) -> bool:
    """True unless every value of type `old` is known to survive as `new` unchanged.

    Known widenings: a longer (or unbounded) string, string or enum to text, a wider
    integer, a numeric keeping at least its scale and integer digits, a longer
    binary, a more precise float, enum values added or reordered; collations aside. Types with
    per-database forms narrow when any database's form does.
    """
    if old.dialects or new.dialects:
        names = {name for name, _ in old.dialects} | {name for name, _ in new.dialects} | {None}
        return any(narrows(old.on(name), new.on(name)) for name in names)
    old, new = old.evolve(collation=None), new.evolve(collation=None)
    if old == new:
        return False
    if old.kind == "array" or new.kind == "array":
        same_shape = old.kind == new.kind and old.dimensions == new.dimensions
        return not (same_shape and old.item is not None and new.item is not None and not narrows(old.item, new.item))
    if old.kind == "enum":
        if new.kind == "enum":
            return bool(set(old.values) - set(new.values))
        longest = max((len(value) for value in old.values), default=0)
        return new.kind not in ("string", "text") or _shorter(new.length, longest)
    if old.kind in ("string", "text") and new.kind in ("string", "text"):
        if new.kind == "text":
            smaller = _SIZES.get(new.variant, 1) < _SIZES.get(old.variant, 1) if old.kind == "text" else False
            return old.kind == "text" and (smaller or _shorter(new.length, old.length))
        return _shorter(new.length, old.length if old.kind == "string" else None)
    if old.is_integer and new.is_integer:
        return _integer_narrows(old, new)
    if old.kind == new.kind == "numeric":
        return _numeric_narrows(old, new)
    if old.kind == new.kind == "binary" and _SIZES.get(new.variant, 1) < _SIZES.get(old.variant, 1):
        return True
    if old.kind == new.kind and old.kind in ("binary", "float"):
        size_old, size_new = (old.length, new.length) if old.kind == "binary" else (old.precision, new.precision)
        differs_besides_size = old.evolve(length=None, precision=None) != new.evolve(length=None, precision=None)
        return differs_besides_size or _shorter(size_new, size_old)
    return True


def _shorter(new: int | None, old: int | None) -> bool:
    """True when a size limit `new` may not hold what limit `old` holds (None: unbounded)."""
    return new is not None and (old is None or new < old)


#: MySQL's text and blob sizes, smallest first (plain TEXT/BLOB: no variant).
_SIZES = {"tinytext": 0, "tinyblob": 0, None: 1, "mediumtext": 2, "mediumblob": 2, "longtext": 3, "longblob": 3}


def _integer_narrows(old: Type, new: Type) -> bool:
    rank_old, rank_new = _INTEGER_RANK[old.kind], _INTEGER_RANK[new.kind]
    if old.unsigned == new.unsigned:
        return rank_new < rank_old
    return new.unsigned or rank_new <= rank_old  # signed -> unsigned loses negatives


def _numeric_narrows(old: Type, new: Type) -> bool:
    if new.precision is None:
        return new.scale is not None and (old.scale is None or new.scale < old.scale)
    if old.precision is None:
        return True
    old_scale, new_scale = old.scale or 0, new.scale or 0
    return new_scale < old_scale or new.precision - new_scale < old.precision - old_scale


def row_key(table: Table, without: str | None = None) -> tuple[str, ...] | None:
    """Columns that identify a row of `table`: its primary key, else a unique key of NOT NULL columns.

    Keys holding column `without` are skipped (its values are what is kept).
    """
    candidates: list[tuple[str, ...]] = []
    if table.primary_key is not None and table.primary_key.columns:
        candidates.append(table.primary_key.columns)
    candidates += [unique.columns for unique in table.uniques]
    candidates += [i.columns for i in table.indexes if i.unique and i.columns and not i.expressions and not i.where]
    primary = table.primary_key.columns if table.primary_key is not None else ()
    for columns in candidates:
        if without in columns or not all(table.has_column(name) for name in columns):
            continue
        if columns == primary or not any(table.column(name).nullable for name in columns):
            return columns
    return None


# -- the operations protect() inserts ------------------------------------------------


class DataStep(InternalOperation):
    """Base of the steps `protect` adds: they change no schema, journal like data and have nothing to undo
    (a copy stays until replaced or pruned); plans hold them, migration files never do."""


@dataclass(frozen=True)
class KeepData(DataStep):
    """Copy what the next operation would lose into a backup table and record it."""

    backup: str
    what: str
    reason: str

    def describe(self) -> str:
        return f"keep {self.what} in {self.backup} (before: {self.reason})"


@dataclass(frozen=True)
class RestoreData(DataStep):
    """Put kept values back after the operation that re-created their column or table."""

    backup: str
    what: str

    def describe(self) -> str:
        return f"restore {self.what} from {self.backup}"


@dataclass(frozen=True)
class ForgetBackups(DataStep):
    """Remove the registry rows of backups restored (or made stale) in this step."""

    backups: tuple[str, ...]

    def describe(self) -> str:
        return f"forget backup(s) {', '.join(self.backups)}"


@dataclass(frozen=True)
class DiscardBackup(DataStep):
    """Drop an older backup of values that are now lost unkept, so it is never restored by mistake."""

    backup: str

    def describe(self) -> str:
        return f"drop the outdated backup {self.backup}"


@dataclass(frozen=True)
class CheckValuesUnused(DataStep):
    """Refuse to go on while rows use enum values the next operation removes."""

    table: str
    column: str
    values: tuple[str, ...]
    schema: str | None = None

    def describe(self) -> str:
        return f"check that no row of {self.table_key}.{self.column} uses {', '.join(map(repr, self.values))}"


@dataclass(frozen=True)
class CheckNoRows(DataStep):
    """Refuse to go on while a table holds rows: the next operation adds a NOT NULL column with no value for them."""

    table: str
    column: str
    schema: str | None = None

    def describe(self) -> str:
        return f"check that {self.table_key} has no rows (it gets NOT NULL column {self.column} with no value to fill)"


@dataclass(frozen=True)
class NotKept(DataStep):
    """A marker (no statement): the next operation loses data that is not kept, and why."""

    what: str
    reason: str
    refused: bool = False

    def describe(self) -> str:
        verdict = "REFUSED unless --allow-data-loss" if self.refused else "data loss allowed"
        return f"not kept: {self.what} ({self.reason}; {verdict})"


# -- naming and the registry -------------------------------------------------------


def backup_name(revision: str, direction: str, index: int) -> str:
    """``_schemashift_bk_<rev12>_<u|d>_<n>``; revisions that are not 12 plain characters get a short hash."""
    safe = re.sub(r"[^a-z0-9]", "", revision.lower())
    if safe != revision or len(safe) > 12:
        safe = safe[:6] + hashlib.blake2b(revision.encode(), digest_size=3).hexdigest()
    return f"{PREFIX}{safe}_{'u' if direction == UP else 'd'}_{index}"


@lru_cache(maxsize=16)
def registry_table(schema: str | None = None) -> sa.Table:
    """The registry table: one row per backup table (built once per schema: every protected plan asks for it, the
    pytest runner's once per step, and building it costs about as much as a round trip; nothing changes it)."""
    return sa.Table(
        REGISTRY,
        sa.MetaData(schema=schema),
        sa.Column("backup_table", sa.String(64), primary_key=True),
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("source_table", sa.String(255), nullable=False),
        sa.Column("columns", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("row_count", sa.Integer),
    )


def recorded(connection: sa.Connection, schema: str | None = None) -> dict[str, dict[str, Any]]:
    """The registry's rows by backup table name (empty when there is no registry)."""
    registry = registry_table(schema)
    if not sa.inspect(connection).has_table(REGISTRY, schema=schema):
        rows: list[dict[str, Any]] = []
    else:
        rows = [dict(row) for row in connection.execute(sa.select(registry).order_by(registry.c.created_at)).mappings()]
    if connection.in_transaction() and not connection.in_nested_transaction():
        connection.commit()
    return {row["backup_table"]: row for row in rows}


# -- SQL ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kept:
    """What one backup holds: rows of `table`, whole (`column` None) or `column` by `key`."""

    table: Table
    key: tuple[str, ...] = ()
    column: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns of the backup table."""
        if self.column is None:
            return self.table.column_names
        return (*self.key, self.column)

    @property
    def label(self) -> str:
        """The registry's `columns` text."""
        return "*" if self.column is None else ",".join(self.columns)

    @property
    def what(self) -> str:
        """Words for plans."""
        if self.column is None:
            return f"the rows of {self.table.key}"
        return f"the values of {self.table.key}.{self.column} by ({', '.join(self.key)})"


@dataclass
class _Sql:
    """SQL building for one dialect."""

    dialect: Dialect
    registry: sa.Table
    sa_dialect: sa.engine.Dialect = field(init=False)

    def __post_init__(self) -> None:
        self.sa_dialect = self.dialect.sa_dialect()

    def text(self, element: sa.sql.ClauseElement) -> str:
        """`element` compiled with its values inline, on one line."""
        compiled = element.compile(dialect=self.sa_dialect, compile_kwargs={"literal_binds": True})
        return re.sub(r"\s*\n\s*", " ", str(compiled)).strip()

    def table(self, name: str, schema: str | None, columns: Collection[str]) -> sa.TableClause:
        return sa.table(name, *[sa.column(c) for c in columns], schema=schema)

    def stored(self, expression: sa.ColumnElement[Any], column: Column) -> sa.ColumnElement[Any]:
        """A value as kept: native enums as text, so the backup does not hold on to the type."""
        typ = column.type.on(self.dialect.name)
        if self.dialect.native_enum and _native_enum(typ):
            return sa.cast(expression, sa.ARRAY(sa.Text) if typ.kind == "array" else sa.Text)
        return expression

    def restored(self, expression: sa.ColumnElement[Any], column: Column) -> sa.ColumnElement[Any]:
        """A kept value converted back to the column's type where needed."""
        if self.dialect.native_enum and _native_enum(column.type.on(self.dialect.name)):
            return sa.cast(expression, to_sa_type(column.type, self.dialect.name))
        return expression

    # -- keeping

    def create_registry(self) -> str:
        return self.text(CreateTable(self.registry, if_not_exists=True))

    def drop_backup(self, name: str, schema: str | None) -> str:
        return self.text(SADropTable(sa.Table(name, sa.MetaData(), schema=schema), if_exists=True))

    def keep(self, kept: _Kept, name: str, revision: str, direction: str) -> list[str]:
        table = kept.table
        source = self.table(table.name, table.schema, table.column_names)
        select = sa.select(*[self.stored(source.c[c], table.column(c)).label(c) for c in kept.columns])
        if kept.column is not None:
            select = select.where(source.c[kept.column].is_not(None))
        backup = sa.table(name, schema=table.schema)
        record = self.registry.insert().values(
            backup_table=name, revision=revision, direction=direction, source_table=table.key, columns=kept.label,
            created_at=now(), row_count=sa.select(sa.func.count()).select_from(backup).scalar_subquery(),
        )
        return [
            self.drop_backup(name, table.schema),
            self.text(CreateTableAs(select, name, schema=table.schema)),
            self.forget((name,)),
            self.text(record),
        ]

    def drop_if_empty(self, name: str, schema: str | None) -> str:
        """An offline script's form of `_DropIfEmpty`: the backup dropped and forgotten when it holds no row, in SQL;
        where SQL cannot drop on a condition, a comment saying the backup stays."""
        drop = self.dialect.drop_if_empty_sql(name, schema)
        if drop is None:
            return (f"-- {name} stays even when it holds no row ({self.dialect.name} cannot drop a table on a "
                    "condition in SQL; schemashift, running this step itself, drops an empty one)")
        registry = self.registry.c
        forget = self.text(self.registry.delete().where(registry.backup_table == name, registry.row_count == 0))
        return f"-- drop {name} again if it holds no row (nothing was kept)\n{drop};\n{forget}"

    def forget(self, names: tuple[str, ...]) -> str:
        return self.text(self.registry.delete().where(self.registry.c.backup_table.in_(names)))

    # -- restoring

    def restore_column(self, kept: _Kept, name: str) -> list[str]:
        assert kept.column is not None
        table = kept.table
        target = self.table(table.name, table.schema, table.column_names)
        backup = self.table(name, table.schema, kept.columns)
        match = sa.and_(*[backup.c[k] == self.stored(target.c[k], table.column(k)) for k in kept.key])
        column = table.column(kept.column)
        value = sa.select(self.restored(backup.c[kept.column], column)).where(match).scalar_subquery()
        update = sa.update(target).values({kept.column: value}).where(sa.exists().where(match))
        return [self.text(update), *self.reset_sequences(table, (column,))]

    def restore_table(self, kept: _Kept, name: str) -> list[str]:
        table = kept.table
        columns = [c for c in table.columns if c.computed is None]
        target = self.table(table.name, table.schema, [c.name for c in columns])
        backup = self.table(name, table.schema, [c.name for c in columns])
        select = sa.select(*[self.restored(backup.c[c.name], c) for c in columns])
        insert = self.text(sa.insert(target).from_select([c.name for c in columns], select))
        if self.dialect.sequences_need_reset and any(c.identity and c.identity.always for c in columns):
            insert = re.sub(r"\)\s*SELECT ", ") OVERRIDING SYSTEM VALUE SELECT ", insert, count=1)
        return [insert, *self.reset_sequences(table, columns)]

    def reset_sequences(self, table: Table, columns: Collection[Column]) -> list[str]:
        """Move owned sequences past restored ids (where the database does not do it itself)."""
        if not self.dialect.sequences_need_reset:
            return []
        statements = []
        qualified = self.sa_dialect.identifier_preparer.format_table(sa.table(table.name, schema=table.schema))
        for column in columns:
            serial = column.autoincrement and column.default is None and column.computed is None
            if not column.type.is_integer or not (column.identity is not None or serial):
                continue
            target = self.table(table.name, table.schema, [column.name])
            sequence = sa.func.pg_get_serial_sequence(sa.literal(qualified), sa.literal(column.name))
            next_value = sa.func.coalesce(sa.func.max(target.c[column.name]), 0) + 1
            setval = sa.select(sa.func.setval(sequence, next_value, sa.false())).select_from(target)
            statements.append(self.text(setval))
        return statements

    # -- counting

    def at_risk(self, operation: Operation, table: Table) -> sa.Select[Any]:
        """How many rows hold values `operation` would lose."""
        source = self.table(table.name, table.schema, table.column_names)
        count = sa.select(sa.func.count()).select_from(source)
        if isinstance(operation, DropTable):
            return count
        name = _lost_column(operation)
        condition: sa.ColumnElement[bool] = source.c[name].is_not(None)
        if isinstance(operation, AlterColumn) and operation.old is not None:
            old, new = operation.old.type, operation.new.type
            if old.kind in ("string", "text") and new.kind == "string" and new.length is not None:
                length = getattr(sa.func, self.dialect.char_length_function)
                condition = length(source.c[name]) > new.length
        return count.where(condition)


def _native_enum(typ: Type) -> bool:
    inner = typ.item if typ.kind == "array" and typ.item is not None else typ
    return inner.kind == "enum" and inner.native and bool(inner.name)


# -- the plan transformer ------------------------------------------------------------


@dataclass
class _Context:
    keep: bool
    allow_data_loss: bool
    refuse: bool
    kept: Mapping[str, Mapping[str, Any]]
    sql: _Sql


def protect(plan: Plan, *, keep: bool, allow_data_loss: bool, kept: Mapping[str, Mapping[str, Any]] | None = None,
            registry_schema: str | None = None, refuse: bool = True) -> Plan:
    """`plan` with backups before destructive operations and restores after re-creating ones.

    `kept` is the registry (`recorded`): only recorded backups are restored. With
    `keep` off, or for values that cannot be kept, a destructive operation raises
    `DataLossRefused` unless `allow_data_loss`; with `refuse` False (``--dry-run``)
    it is marked in the plan instead. Nothing runs here.
    """
    if plan.empty:
        return plan
    context = _Context(keep, allow_data_loss, refuse, kept or {}, _Sql(plan.dialect, registry_table(registry_schema)))
    return replace(plan, steps=[_protect_step(step, context) for step in plan.steps])


def protect_step(step: Step, *, keep: bool, allow_data_loss: bool, kept: Mapping[str, Mapping[str, Any]] | None = None,
                 registry_schema: str | None = None, indexes: Sequence[int] | None = None,
                 refuse: bool = False) -> Step:
    """One step rewritten as `protect` would (for rebuilding a step, e.g. by `repair`).

    `indexes`: each operation's index in its migration file (which names its
    backup) when the step is not the whole migration; `refuse`: raise
    `DataLossRefused` instead of marking an unkept loss.
    """
    sql = _Sql(step.plan_dialect, registry_table(registry_schema))
    context = _Context(keep, allow_data_loss, refuse, kept or {}, sql)
    return _protect_step(step, context, indexes)


def is_data_step(operation: Operation) -> bool:
    """True for the operations `protect` adds (backups, restores, guards): no schema change to undo."""
    return isinstance(operation, DataStep)


def _protect_step(step: Step, context: _Context, indexes: Sequence[int] | None = None) -> Step:
    builder = _StepBuilder(step, context)
    state = step.before
    groups = statement_groups(step)
    count = len(step.operations)
    for position, (operation, statements) in enumerate(zip(step.operations, groups, strict=True)):
        index = position if step.direction == UP else count - 1 - position
        if indexes is not None:
            index = indexes[position]
        after = operation.apply(state)
        builder.before(operation, state, index)
        builder.operation(operation, statements, state, after, index)
        state = after
    return builder.finish()


class _StepBuilder:
    """Accumulates a protected step's operations and statements."""

    def __init__(self, step: Step, context: _Context) -> None:
        self.step = step
        self.context = context
        self.sql = context.sql
        self.operations: list[Operation] = []
        self.statements: list[Statement] = []
        self.registry_ready = False
        self.forgotten: list[str] = []

    def add(self, operation: Operation, statements: list[str]) -> None:
        self.operations.append(operation)
        self.statements.extend(Statement(operation, sql=sql) for sql in statements)

    def before(self, operation: Operation, state: Schema, index: int) -> None:
        """Guard, keep (or refuse) what `operation` would lose."""
        self._guard(operation, state, index)
        what = data_loss(operation)
        if what is None:
            return
        name = backup_name(self.step.migration.revision, self.step.direction, index)
        kept = _kept_for(operation, state)
        if isinstance(kept, _Kept) and self.context.keep:
            self._keep(operation, kept, name)
            return
        reason = kept if isinstance(kept, str) else "keep_data is off"
        self._discard(operation, state, name)
        self._not_kept(operation, what, reason)

    def _discard(self, operation: Operation, state: Schema, name: str) -> None:
        """An older backup under `name` must not be restored after this unkept loss."""
        if name in self.context.kept:
            schema = state.table(operation.table_key or "").schema
            self.add(DiscardBackup(name), [self.sql.drop_backup(name, schema)])
            self.forgotten.append(name)

    def _guard(self, operation: Operation, state: Schema, index: int) -> None:
        if isinstance(operation, AddColumn):
            self._guard_filled(operation, state, index)
            return
        if not (isinstance(operation, AlterColumn) and operation.old is not None):
            return
        old, new = operation.old.type, operation.new.type
        if not (old.kind == new.kind == "enum" and set(old.values) - set(new.values)):
            return
        removed = tuple(v for v in old.values if v not in set(new.values))
        check = CheckValuesUnused(operation.table, operation.column, removed, schema=operation.schema)
        self.operations.append(check)
        self.statements.append(Statement(check, python=_ValuesUnused(check, self.step.label)))

    def _guard_filled(self, operation: AddColumn, state: Schema, index: int) -> None:
        """A NOT NULL column nothing fills (and no backup restores) may only go into an empty table."""
        if operation.fill is not None or not needs_fill(operation.column):
            return
        if self._restorable(operation, operation.apply(state), index) is not None:
            return  # added nullable, filled from the backup, then made NOT NULL (`_add_nullable_then_restore`)
        check = CheckNoRows(operation.table, operation.column.name, schema=operation.schema)
        self.operations.append(check)
        reason = f"refused {operation.table} has rows {operation.column.name} needs a value"
        guard = self.step.plan_dialect.no_rows_guard_sql(operation.table, operation.schema, reason)
        self.statements.append(Statement(check, python=_NoRows(check, self.step), offline_sql=guard))

    def _keep(self, operation: Operation, kept: _Kept, name: str) -> None:
        statements: list[str] = []
        if not self.registry_ready:
            statements.append(self.sql.create_registry())
            self.registry_ready = True
        statements += self.sql.keep(kept, name, self.step.migration.revision, self.step.direction)
        keep = KeepData(name, kept.what, operation.describe())
        self.add(keep, statements)
        self.statements.append(Statement(keep, python=_DropIfEmpty(self.sql, name, kept.table.schema),
                                         offline_sql=self.sql.drop_if_empty(name, kept.table.schema)))

    def _not_kept(self, operation: Operation, what: str, reason: str) -> None:
        if not self.context.allow_data_loss and self.context.refuse:
            verb = "upgrade" if self.step.direction == UP else "downgrade"
            raise DataLossRefused(
                f"{verb} refused: {self.step.label} would {operation.describe()}, losing {what}, "
                f"which is not kept ({reason}); nothing was changed",
                hint="pass --allow-data-loss, or set allow_data_loss = true in the environment, to accept it",
            )
        self.operations.append(NotKept(what, reason, refused=not self.context.allow_data_loss))

    def operation(self, operation: Operation, statements: list[Statement], before: Schema, after: Schema,
                  index: int) -> None:
        """`operation` itself, then the restore of what its inverse kept, if recorded."""
        restore = self._restorable(operation, after, index)
        if restore is None:
            self.operations.append(operation)
            self.statements.extend(statements)
            return
        kept, name = restore
        if isinstance(operation, AddColumn) and operation.fill is None and _needs_filling_first(operation.column):
            self._add_nullable_then_restore(operation, kept, name, before, after)
        else:
            self.operations.append(operation)
            self.statements.extend(statements)
            self._restore(kept, name)

    def _restorable(self, operation: Operation, after: Schema, index: int) -> tuple[_Kept, str] | None:
        if not isinstance(operation, (AddColumn, CreateTableOp, AlterColumn)):
            return None
        try:
            inverse = operation.inverse()
        except SchemashiftError:
            return None
        if data_loss(inverse) is None:
            return None
        opposite = DOWN if self.step.direction == UP else UP
        name = backup_name(self.step.migration.revision, opposite, index)
        record = self.context.kept.get(name)
        kept = _kept_for(inverse, after)
        if record is None or not isinstance(kept, _Kept) or record.get("columns") != kept.label:
            return None
        return kept, name

    def _restore(self, kept: _Kept, name: str) -> None:
        statements = self.sql.restore_table(kept, name) if kept.column is None else self.sql.restore_column(kept, name)
        statements.append(self.sql.drop_backup(name, kept.table.schema))
        self.add(RestoreData(name, kept.what), statements)
        self.forgotten.append(name)

    def _add_nullable_then_restore(self, operation: AddColumn, kept: _Kept, name: str, before: Schema,
                                   after: Schema) -> None:
        """Add a NOT NULL column nullable, restore its values, then make it NOT NULL."""
        dialect = self.step.plan_dialect
        nullable = replace(operation, column=operation.column.evolve(nullable=True))
        middle = nullable.apply(before)
        self.add(nullable, dialect.compile(nullable, before, middle))
        self._restore(replace(kept, table=middle.table(kept.table.key)), name)
        tighten = AlterColumn(operation.table, operation.column.name, new=operation.column,
                              old=nullable.column, schema=operation.schema)
        self.add(tighten, dialect.compile(tighten, middle, after))

    def finish(self) -> Step:
        """The rewritten step; the registry rows of restored backups go last (see the module docstring)."""
        if self.forgotten:
            names = tuple(dict.fromkeys(self.forgotten))
            self.add(ForgetBackups(names), [self.sql.forget(names)])
        return replace(self.step, operations=self.operations, statements=self.statements)


def _kept_for(operation: Operation, state: Schema) -> _Kept | str:
    """What keeping `operation`'s losses takes at `state`, or why they cannot be kept."""
    if not isinstance(operation, (DropTable, DropColumn, AlterColumn)):
        return f"schemashift does not know how to keep what {type(operation).__name__} removes"
    table = state.table(operation.table_key or "")
    if isinstance(operation, DropTable):
        return _Kept(table)
    column = _lost_column(operation)
    key = row_key(table, without=column)
    if key is None:
        in_key = row_key(table) is not None
        if in_key:
            return f"{table.key}.{column} is part of the key that identifies its rows"
        return f"{table.key} has no primary key or NOT NULL unique key to match rows by"
    return _Kept(table, key, column)


def _needs_filling_first(column: Column) -> bool:
    """A NOT NULL column nothing fills by itself."""
    plain = column.default is None and column.computed is None and column.identity is None and not column.autoincrement
    return not column.nullable and plain


class _ValuesUnused:
    """The statement behind `CheckValuesUnused`: a count, and a clear refusal when it is not zero."""

    __name__ = "check_removed_enum_values_unused"

    def __init__(self, check: CheckValuesUnused, label: str) -> None:
        self.check = check
        self.label = label

    def __call__(self, context: Any) -> None:
        table = sa.table(self.check.table, sa.column(self.check.column), schema=self.check.schema)
        column = sa.cast(table.c[self.check.column], sa.Text)  # a native enum compares with text only once cast
        query = sa.select(sa.func.count()).select_from(table).where(column.in_(self.check.values))
        used = context.connection.execute(query).scalar() or 0
        if used:
            values = ", ".join(map(repr, self.check.values))
            raise DataLossRefused(
                f"{used} row(s) of {self.check.table_key}.{self.check.column} still use {values}, which "
                f"{self.label} removes; move them to another value first (an ExecuteSQL with a reverse, "
                "before the AlterColumn)"
            )


class _DropIfEmpty:
    """The statement after a backup's copy: a backup that holds no row is dropped and forgotten again.

    Whether a table holds rows is known only when the step runs, so every keep has
    this statement (the plan's shape never depends on the data, and `repair`
    rebuilds the same step). Run again after a crash it finishes what it began.
    """

    __name__ = "drop_backup_if_empty"

    def __init__(self, sql: _Sql, name: str, schema: str | None) -> None:
        self.sql = sql
        self.name = name
        self.schema = schema

    def __call__(self, context: Any) -> None:
        connection = context.connection
        if sa.inspect(connection).has_table(self.name, schema=self.schema):
            if connection.execute(_any_row(self.name, self.schema)).first() is not None:
                return  # rows kept: the backup stays
            connection.exec_driver_sql(self.sql.drop_backup(self.name, self.schema))
        connection.exec_driver_sql(self.sql.forget((self.name,)))


def _no_rows_refusal(check: CheckNoRows, step: Step, *, before_anything: bool) -> DataLossRefused:
    verb = "upgrade" if step.direction == UP else "downgrade"
    column = f"{check.table_key}.{check.column}"
    changed = "; nothing was changed" if before_anything else ""
    if step.direction == UP:
        hint = (f"give the column a server_default in the model, or the existing rows a one-off value with "
                f"fill=VALUE on its AddColumn, as `generate --default {column}=VALUE` writes")
    else:
        hint = "the values the column had were not kept in a backup, so nothing can fill it again"
    return DataLossRefused(
        f"{verb} refused: {step.label} adds {column} NOT NULL with no default while {check.table_key} holds rows "
        f"that would need a value{changed}",
        hint=hint,
    )


class _NoRows:
    """The statement behind `CheckNoRows`: one row looked for, and a clear refusal when there is one."""

    __name__ = "check_table_has_no_rows"

    def __init__(self, check: CheckNoRows, step: Step) -> None:
        self.check = check
        self.step = step

    def __call__(self, context: Any) -> None:
        if context.connection.execute(_any_row(self.check.table, self.check.schema)).first() is not None:
            raise _no_rows_refusal(self.check, self.step, before_anything=False)


def _any_row(table: str, schema: str | None) -> sa.Select[Any]:
    return sa.select(sa.literal(1)).select_from(sa.table(table, schema=schema)).limit(1)


def refusals(connection: sa.Connection, plan: Plan) -> list[DataLossRefused]:
    """The `CheckNoRows` guards of `plan` that would stop it, checked before anything runs.

    Only tables as they are now count: not those the plan creates or drops before the
    guard (a table renamed before it is looked up by its present name), and only up
    to the plan's first data step (which may add or delete rows).
    """
    found: list[DataLossRefused] = []
    present: dict[str | None, tuple[str, str | None] | None] = {}  # table key in the plan -> (name, schema) now
    for step in plan.steps:
        for operation in step.operations:
            key = operation.table_key
            if isinstance(operation, CheckNoRows):
                now = present.get(key, (operation.table, operation.schema))
                if now is not None and _count(connection, _any_row(*now)):
                    found.append(_no_rows_refusal(operation, step, before_anything=True))
            elif operation.data_only and not isinstance(operation, DataStep):
                return found
            elif isinstance(operation, RenameTable):
                new_key = qualify(operation.new_name, operation.schema)
                present[new_key] = present.get(key, (operation.table, operation.schema))
                present[key] = None
            elif isinstance(operation, (CreateTableOp, DropTable)):
                present[key] = None
    return found


# -- api helpers -------------------------------------------------------------------------


def prepare(connection: sa.Connection, plan: Plan, env: EnvConfig, *, allow_data_loss: bool = False,
            dry_run: bool = False, kept: Mapping[str, Mapping[str, Any]] | None = None) -> Plan:
    """`make_safe` and `protect` with the environment's settings and the database's registry (`kept`, when the
    caller has read it already), then `Dialect.adapt_to_live`."""
    if plan.empty:
        return plan
    plan = make_safe(plan, settings_of(env, plan.dialect), connection)  # first: protect keeps the safe statements
    plan = protect(plan, keep=env.keep_data, allow_data_loss=allow_data_loss or env.allow_data_loss,
                   kept=recorded(connection, env.schema) if kept is None else kept, registry_schema=env.schema,
                   refuse=not dry_run)
    if not dry_run and (refused := refusals(connection, plan)):
        raise refused[0]
    return plan.dialect.adapt_to_live(connection, plan)  # last: the statements protect compiles are adapted too


def rows_at_risk(connection: sa.Connection, plan: Plan) -> list[str]:
    """For each destructive operation of `plan` whose data is not kept: how many rows would lose values.

    Counted on the database as it is now; tables that earlier steps create are "unknown".
    """
    lines: list[str] = []
    sql: _Sql | None = None
    for step in plan.steps:
        state = step.before
        for position, operation in enumerate(step.operations):
            previous = step.operations[position - 1] if position else None
            if isinstance(previous, NotKept) and data_loss(operation) is not None:
                sql = sql or _Sql(plan.dialect, registry_table())
                count = _count(connection, sql.at_risk(operation, state.table(operation.table_key or "")))
                amount = "an unknown number of" if count is None else str(count)
                lines.append(f"  at risk in {step.label}: {operation.describe()}: {amount} row(s) would lose values")
            state = operation.apply(state)
    if lines:
        lines.insert(0, "Data that would be lost (not kept):")
    return lines + [f"REFUSED: {refusal}" for refusal in refusals(connection, plan)]


def _count(connection: sa.Connection, query: sa.Select[Any]) -> int | None:
    if connection.in_transaction():
        connection.commit()
    try:
        with connection.begin():
            return int(connection.execute(query).scalar() or 0)
    except sa.exc.DBAPIError:
        return None


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``30d`` or ``1w`` as a timedelta."""
    match = _DURATION.match(text or "")
    if match is None:
        raise SchemashiftError(f"invalid duration {text!r}: use a number and a unit, e.g. 90m, 12h, 30d or 1w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _row(row: Mapping[str, Any]) -> dict[str, Any]:
    created = row["created_at"]
    return {
        "backup_table": row["backup_table"], "revision": row["revision"], "direction": row["direction"],
        "source_table": row["source_table"], "columns": row["columns"],
        "created_at": created.isoformat(sep=" ") if isinstance(created, datetime) else created,
        "rows": row["row_count"],
    }


def list_backups(project: Project) -> list[dict[str, Any]]:
    """Every recorded backup, oldest first."""
    with project.connect() as connection:
        return [_row(row) for row in recorded(connection, project.env.schema).values()]


def prune(project: Project, older_than: str, out: Output, lock: MigrationLock | None = None) -> int:
    """Drop backups made more than `older_than` ago (see `parse_duration`); returns how many.

    `lock` takes the migration lock (`schemashift.runtime.locks.migration_lock`); by default the dialect's own.
    """
    from schemashift.dialects import dialect_of

    cutoff = now() - parse_duration(older_than)
    with project.connect() as connection:
        dialect = dialect_of(connection)
        held = lock(dialect, connection, project.lock_name, project.env) if lock is not None \
            else dialect.lock(connection, project.lock_name, project.env.lock_timeout)
        with held:
            sql = _Sql(dialect, registry_table(project.env.schema))
            old = [row for row in recorded(connection, project.env.schema).values() if _older(row, cutoff)]
            for row in old:
                schema = row["source_table"].rsplit(".", 1)[0] if "." in row["source_table"] else None
                connection.exec_driver_sql(sql.drop_backup(row["backup_table"], schema))
                connection.exec_driver_sql(sql.forget((row["backup_table"],)))
                connection.commit()
                out(f"dropped {row['backup_table']} ({row['source_table']}, revision {row['revision']}, "
                    f"{row['row_count']} row(s))")
    return len(old)


def _older(row: Mapping[str, Any], cutoff: datetime) -> bool:
    created = row["created_at"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return created is not None and created < cutoff


__all__ = [
    "PREFIX",
    "REGISTRY",
    "CheckNoRows",
    "CheckValuesUnused",
    "DataLossRefused",
    "DataStep",
    "DiscardBackup",
    "ForgetBackups",
    "KeepData",
    "NotKept",
    "RestoreData",
    "backup_name",
    "data_loss",
    "list_backups",
    "narrows",
    "parse_duration",
    "prepare",
    "protect",
    "protect_step",
    "prune",
    "recorded",
    "refusals",
    "registry_table",
    "row_key",
    "rows_at_risk",
]
