"""The dialect interface: capabilities, SQL compilation, normalisation and locking.

`Dialect.compile` calls the method named by the operation's `Operation.compiler`
(``compile_`` plus its class name in snake case). The methods here are the generic forms, built from
SQLAlchemy DDL elements compiled for the database (``CREATE TABLE``, ``ADD
CONSTRAINT`` …) or, where SQLAlchemy has no element (``RENAME``), from its
identifier preparer and DDL compiler; each database module overrides only what
differs. `run_settled`, `poll_lock` and `release_quietly` are the building blocks
of the per-database `Dialect.lock` implementations.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from schemashift import operations as ops
from schemashift.dialects.objects import ObjectDDL
from schemashift.errors import LockTimeout, MigrationError
from schemashift.model.schema import (
    CONSTRAINT_FIELDS,
    CheckConstraint,
    Column,
    Constraint,
    ForeignKey,
    Index,
    PrimaryKey,
    Schema,
    Sequence,
    Table,
    UniqueConstraint,
    built_on,
)
from schemashift.model.types import Type
from schemashift.operations.statement import Trace
from schemashift.reflection.core import RawSchema, Reader, read_with_inspector, reflect
from schemashift.sqla.to_metadata import sa_column, sa_table
from schemashift.sqla.types import TypeMemo, to_sa_type

if TYPE_CHECKING:
    from pathlib import Path

    from schemashift.config import EnvConfig
    from schemashift.operations import Operation
    from schemashift.planning.plan import Plan

#: A plain decimal number (an exact numeric fill written without quotes).
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

#: Neutral constraint class -> the SQLAlchemy constraint class it becomes.
_SA_CONSTRAINTS: dict[type, type[sa.Constraint]] = {
    UniqueConstraint: sa.UniqueConstraint,
    ForeignKey: sa.ForeignKeyConstraint,
    CheckConstraint: sa.CheckConstraint,
}


@dataclass(frozen=True)
class BatchSql:
    """A `Backfill` as SQL pieces: the table, its key column and the SET list (all quoted), the row filter.

    `update` writes the statement for one range of keys (`Backfill` runs batch by
    batch, see `schemashift.runtime.backfill`) or, with no range, for every row.
    """

    table: str
    key: str
    assignments: str
    where: str | None

    def update(self, key_range: str | None = None) -> str:
        """``UPDATE … SET … WHERE <key_range> AND (<where>)``."""
        conditions = [c for c in (key_range, f"({self.where})" if self.where else None) if c]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"UPDATE {self.table} SET {self.assignments}{where}"


@dataclass(frozen=True)
class SafeSql:
    """One statement of a lock-safe form: `locks` when it takes a lock that blocks writes (it then runs
    under the lock timeout, retried); `fallback`: the form to run when the server refuses its algorithm."""

    sql: str
    locks: bool = True
    fallback: str | None = None
    #: A `Backfill` the executor runs batch by batch in place of `sql` (its one-statement form, for scripts).
    backfill: ops.Backfill | None = None
    #: What it leaves in the catalogue, for `repair` to tell after a crash whether it ran (one of several).
    trace: Trace | None = None


@dataclass(frozen=True)
class SafeForm:
    """How safe mode runs one operation on an existing table (see `Dialect.safe_form`).

    `fixes`: the lint codes this form no longer deserves; `refusal`: (lint code,
    reason) when safe mode must refuse the operation unless that code is allowed.
    An empty `statements` without refusal means the plain statements.
    """

    statements: tuple[SafeSql, ...] = ()
    fixes: frozenset[str] = frozenset()
    refusal: tuple[str, str] | None = None
    #: Lint codes whose allowance (``allow(op, SS401=…)``) runs the plain form instead.
    unless_allowed: frozenset[str] = frozenset()
    #: The form serves a table above ``safe_rewrite_rows`` only: a smaller one gets the plain statements.
    large_only: bool = False


class Dialect(ObjectDDL):
    """Base class of the per-database modules (views, functions, triggers…: `ObjectDDL`).

    Subclasses declare capabilities as class attributes and override the few
    methods where their database differs.
    """

    #: SQLAlchemy dialect name.
    name: ClassVar[str] = ""
    #: DDL can be rolled back inside a transaction.
    transactional_ddl: ClassVar[bool] = False
    #: With transactional DDL: a long fresh build creates its tables on several connections, each committing its
    #: share, behind a committed marker row (`schemashift.runtime.fresh`); CREATE TABLE is mostly the server's own
    #: work, which overlaps. Without it the build is one transaction.
    builds_side_by_side: ClassVar[bool] = False
    #: Enums are database types of their own (CREATE TYPE).
    native_enum: ClassVar[bool] = False
    #: Owned sequences do not follow explicitly inserted ids: a restore moves them on (``setval``) and
    #: inserts into identity ALWAYS columns with ``OVERRIDING SYSTEM VALUE``.
    sequences_need_reset: ClassVar[bool] = False
    #: The ``schemashift[extra]`` that installs the database's driver (None: none needed).
    driver_extra: ClassVar[str | None] = None
    #: The SQL function counting a string's characters.
    char_length_function: ClassVar[str] = "char_length"
    #: The DB-API driver commits DDL by itself unless ``BEGIN`` was sent explicitly (pysqlite).
    autocommits_ddl: ClassVar[bool] = False
    #: ALTER TABLE cannot change columns or constraints in place (table rebuild instead).
    rebuilds_tables: ClassVar[bool] = False
    #: Comments on tables and columns are stored.
    supports_comments: ClassVar[bool] = True
    #: Schemas other than the default one (PostgreSQL `schema=`).
    supports_schemas: ClassVar[bool] = False
    #: CREATE INDEX CONCURRENTLY exists (lint: a plain CREATE INDEX blocks writes).
    concurrent_index: ClassVar[bool] = False
    #: Constraints can be added NOT VALID and validated later (lint: in-place validation blocks writes).
    not_valid_constraints: ClassVar[bool] = False
    #: ALTER TABLE picks INSTANT/INPLACE/COPY algorithms (lint: a COPY blocks writes).
    online_alter: ClassVar[bool] = False
    #: Standalone sequences (``CREATE SEQUENCE``); elsewhere sequence operations compile to nothing.
    supports_sequences: ClassVar[bool] = False
    #: How ``ALTER SEQUENCE`` turns cycling off.
    no_cycle: ClassVar[str] = "NO CYCLE"
    #: Other names that select this dialect in `ExecuteSQL.dialects`.
    aliases: ClassVar[tuple[str, ...]] = ()
    #: ``WITH x AS (INSERT …) INSERT …`` works (the executor writes version and history rows in one statement).
    dml_in_cte: ClassVar[bool] = False
    #: The catalogue is read from a server: `api.compare` converts the models while the server answers.
    remote_catalogue: ClassVar[bool] = False
    #: ``CREATE TABLE`` keeps SQLAlchemy's layout, one column per line: the database stores the text and
    #: readers (SQLAlchemy's inspector among them) parse it line by line.
    keeps_create_table_layout: ClassVar[bool] = False
    #: The longest identifier (table, column, index, constraint name) the database takes; None: no limit.
    max_identifier_length: ClassVar[int | None] = None
    #: `max_identifier_length` counts UTF-8 bytes, not characters.
    identifier_length_in_bytes: ClassVar[bool] = False
    #: Lock-safe execution is on unless the environment says ``safe = false`` (see `safe_form`); the database
    #: must have a lock timeout (`lock_timeout_sql`) for ``safe = true`` to mean anything.
    safe_by_default: ClassVar[bool] = False
    #: Server defaults (SQL) that ``ADD COLUMN`` cannot store once for every existing row: the database rewrites or
    #: copies the table to evaluate them row by row (see `batched_add_column`); None: none known.
    volatile_defaults: ClassVar[re.Pattern[str] | None] = None

    def joins_statements_on(self, connection: sa.Connection) -> bool:
        """True when `connection`'s driver runs several DDL statements joined by ``;`` in one call (a fresh build
        then sends them so); not here."""
        return False

    @property
    def registry_name(self) -> str:
        """Its name in the registry (`schemashift.dialects.registry.DATABASES`), which tells apart dialects that share
        a SQLAlchemy `name` but compile differently: what compiled SQL is kept under."""
        return self.name

    def sa_dialect(self) -> sa.engine.Dialect:
        """A SQLAlchemy dialect instance for offline compilation."""
        raise NotImplementedError

    def check_connection(self, connection: sa.Connection) -> None:
        """Fail here, with a clear message, on a connection that cannot be migrated (nothing to check here)."""

    # --- reading a live database (`schemashift.reflection.core.LiveCatalogue`) ----

    def reflect(self, connection: sa.Connection, *, schemas: list[str | None] | None = None,
                exclude: Collection[str] = frozenset(), reader: Reader | None = None) -> Schema:
        """The raw neutral schema of the live database (see `schemashift.reflection.core.reflect`)."""
        return reflect(connection, self, schemas=schemas, exclude=exclude, reader=reader)

    def read_tables(self, connection: sa.Connection, schema: str | None) -> RawSchema:
        """The catalogue of `schema`: here through the Inspector; databases with a bulk reader override it."""
        return read_with_inspector(connection, schema)

    def read_sequences(self, connection: sa.Connection, schema: str | None, key_schema: str | None) -> list[Sequence]:
        """The standalone sequences of `schema`, keyed under `key_schema` (none here)."""
        return []

    def current_database(self, connection: sa.Connection, default_schema: str | None) -> str | None:
        """The schema unqualified names resolve to: the connection's default schema."""
        return default_schema

    def compile(self, operation: Operation, before: Schema, after: Schema) -> list[str]:
        """SQL statements that perform `operation`, given the schema before and after it.

        The operation is resolved against `before` first, so hand-written ones
        without their *from* side compile too. Statements carry no trailing semicolon.
        """
        method = getattr(self, operation.compiler, None)
        if operation.internal or method is None:
            raise MigrationError(f"the {self.name} dialect cannot compile {type(operation).__name__} operations")
        operation = operation.resolve(before)
        if not self.builds_object_of(operation, after):
            return []
        resolved = self.own_form(operation)
        if resolved is None:
            return []
        statements: list[str] = method(resolved, before, after)
        return statements

    def builds(self, item: Index | CheckConstraint) -> bool:
        """False for an index ``ddl_if(dialect=…)`` keeps off this database, or a type's CHECK it does not get
        (``create_all`` skips both)."""
        return built_on(item, (self.name, *self.aliases))

    def builds_object_of(self, operation: Operation, after: Schema) -> bool:
        """False for an operation on an index or CHECK that does not exist on this database (see `builds`)."""
        if isinstance(operation, ops.CreateIndex):
            return self.builds(operation.index)
        if isinstance(operation, ops.DropIndex) and operation.definition is not None:
            return self.builds(operation.definition)
        if isinstance(operation, ops.AddConstraint) and isinstance(operation.constraint, CheckConstraint):
            return self.builds(operation.constraint)
        if isinstance(operation, ops.DropConstraint) and isinstance(operation.definition, CheckConstraint):
            return self.builds(operation.definition)
        if isinstance(operation, ops.RenameIndex) and operation.table_key is not None and operation.table_key in after:
            renamed = [i for i in after.table(operation.table_key).indexes if i.name == operation.new_name]
            return all(self.builds(index) for index in renamed)
        return True

    def adapt_to_live(self, connection: sa.Connection, plan: Plan) -> Plan:
        """`plan` adjusted, just before it runs or is shown, to what the live database has beyond the migrations.

        This generic form changes nothing; SQLite carries live-only objects through table rebuilds.
        """
        return plan

    def adapt_offline(self, plan: Plan) -> Plan:
        """`plan` for a script written without a database (`adapt_to_live` cannot run): unchanged here."""
        return plan

    def own_form(self, operation: Operation) -> Operation | None:
        """`operation` with this database's forms of its columns; None when it changes nothing here
        (a CHECK only other databases have, a column change only in other databases' forms)."""
        if isinstance(operation, ops.AlterColumn) and operation.old is not None:
            if not (operation.old.defaults or operation.old.type.dialects
                    or operation.new.defaults or operation.new.type.dialects):
                return operation
            resolved = replace(operation, old=operation.old.on(self.name), new=operation.new.on(self.name))
            return resolved if resolved.changes else None
        if isinstance(operation, (ops.AddConstraint, ops.DropConstraint)):
            constraint = getattr(operation, "constraint", None) or getattr(operation, "definition", None)
            if isinstance(constraint, CheckConstraint) and not constraint.applies_to(self.name):
                return None
        return operation

    # --- safe mode (`schemashift.planning.safe`) -------------------------------

    def safe_form(self, operation: Operation, before: Schema, after: Schema, plain: list[str], *,
                  volatile: frozenset[str] = frozenset()) -> SafeForm | None:
        """The lock-safe way to run the resolved `operation` on a table that existed before the migration;
        `plain` is what `compile` gives. None (the generic form): `plain`, each statement that `takes_lock`
        under the lock timeout."""
        return None

    def takes_lock(self, sql: str) -> bool:
        """True when `sql` takes a lock that blocks other sessions' writes (generic: none known)."""
        return False

    def volatile_default(self, column: Column, volatile: frozenset[str] = frozenset()) -> bool:
        """True when adding `column` to a table holding rows evaluates its server default row by row (a rewrite or
        a copy of the table, see `volatile_defaults`, or a call of one of the `volatile` functions the database
        says are: `volatile_functions`); not for a SERIAL or identity column (no default of its own)."""
        default = column.default_on(self.name)
        if default is None:
            return False
        if self.volatile_defaults is not None and self.volatile_defaults.search(default) is not None:
            return True
        called = {name.lower() for name in re.findall(r"(\w+)\s*\(", default)}
        return bool(called & volatile)

    def volatile_functions(self, connection: sa.Connection) -> frozenset[str]:
        """The (lower-case) names of the functions the database evaluates anew for every row it calls them on,
        beyond `volatile_defaults` (the database's own and the users'); generic: none known."""
        return frozenset()

    def batched_add_column(self, op: ops.AddColumn, before: Schema, code: str,
                           volatile: frozenset[str] = frozenset()) -> SafeForm | None:
        """A column with a volatile default added without rewriting the table: nullable without its default,
        then the default (for new rows), a `Backfill` of the rows that are NULL with the default's expression,
        then (a NOT NULL column) NOT NULL, each step in its own lock-safe form. For tables above
        ``safe_rewrite_rows`` (`SafeForm.large_only`); `code` (the lint code of the rewrite) refuses it when the
        table has no single-column primary key to batch by. None: not such a column."""
        column = op.column
        if op.fill is not None or not self.volatile_default(column, volatile):
            return None
        table = before.table(op.table_key or "")
        key = table.primary_key.columns if table.primary_key is not None else ()
        if len(key) != 1:
            return SafeForm(refusal=(code, f"adding {column.name} with default {column.default_on(self.name)} "
                                           f"rewrites {op.table_key}, which has no single-column primary key to "
                                           "fill it in batches by; add it nullable and fill it in a quiet period, "
                                           f"or allow(op, {code}=\"why\"), or safe = false for the environment"))
        statements: list[SafeSql] = []
        state = before
        for part in _batched_parts(op, self.quote(column.name), self.name):
            after = part.apply(state)
            statements += self._safe_part(part, state, after)
            state = after
        return SafeForm(tuple(statements), frozenset({code}), large_only=True)

    def _safe_part(self, part: Operation, before: Schema, after: Schema) -> list[SafeSql]:
        """The lock-safe statements of one part of `batched_add_column`; a part of one statement traced by what it
        changes (`part_trace`)."""
        plain = self.compile(part, before, after)
        if isinstance(part, ops.Backfill):
            return [SafeSql(sql, locks=False, backfill=part) for sql in plain]
        if isinstance(part, ops.AlterColumn):  # the backfill filled the NULLs: no one-statement UPDATE
            fills = set(self.fill_nulls(part))
            plain = [sql for sql in plain if sql not in fills]
        form = self.safe_form(part, before, after, plain)
        statements = [SafeSql(sql, locks=self.takes_lock(sql)) for sql in plain] \
            if form is None or not form.statements else list(form.statements)
        if len(statements) == 1 and statements[0].trace is None:
            statements = [replace(statements[0], trace=part_trace(part))]
        return statements

    def trace_left(self, connection: sa.Connection, trace: Trace) -> bool:
        """True when the catalogue shows `trace` (the statement that leaves it ran), read through SQLAlchemy's
        inspector in `connection`'s transaction."""
        inspector = sa.inspect(connection)
        if trace.kind in ("column", "default", "not_null"):
            columns = {c["name"]: c for c in inspector.get_columns(trace.table, schema=trace.schema)}
            column = columns.get(trace.name)
            if trace.kind == "column" or column is None:
                return column is not None
            return column.get("default") is not None if trace.kind == "default" else not column["nullable"]
        checks = {c["name"]: c for c in inspector.get_check_constraints(trace.table, schema=trace.schema)}
        check = checks.get(trace.name)
        if trace.kind == "no_check" or check is None:
            return (check is None) == (trace.kind == "no_check")
        return trace.kind == "check" or not check.get("dialect_options", {}).get("not_valid", False)

    def no_rows_guard_sql(self, table: str, schema: str | None, reason: str) -> str | None:
        """SQL that fails, naming `reason`, while `table` holds a row; None where the database refuses by itself.

        An offline script runs it before adding a NOT NULL column with no value for existing rows (online, the
        executor checks in Python first). Here: None (the database's own ``ADD COLUMN … NOT NULL`` refuses).
        """
        return None

    def drop_if_empty_sql(self, table: str, schema: str | None) -> str | None:
        """SQL that drops `table` when it holds no row; None where plain SQL cannot drop on a condition (here).

        An offline script runs it after keeping data in a backup table (online, the executor checks in Python).
        """
        return None

    def lock_timeout_sql(self, seconds: float, *, in_transaction: bool = True) -> tuple[str, str | None] | None:
        """The statement bounding how long the next statement (run in a transaction or not) waits for a lock,
        and the one putting the bound back after it (None: not needed); None: the database has no such bound."""
        return None

    def lock_timed_out(self, error: BaseException) -> bool:
        """True when `error` (a DB-API error, or SQLAlchemy's wrapper of one) is a lock-wait timeout."""
        return False

    def algorithm_refused(self, error: BaseException) -> bool:
        """True when `error` says the server cannot run a statement with the online algorithm it names."""
        return False

    def estimated_rows(self, connection: sa.Connection, table: str, schema: str | None) -> float | None:
        """The catalog's estimate of the rows of `table` (0 when there is no such table); None: no estimate
        (safe mode then counts, up to its threshold)."""
        return None

    def runs_in_transaction(self, sql: str) -> bool:
        """False for statements that must run outside a transaction (e.g. CREATE INDEX CONCURRENTLY)."""
        return True

    def normalize(self, schema: Schema) -> Schema:
        """`schema` in the form this database reflects it, so live and model schemas compare equal."""
        return schema

    def leftovers_of_failure(self, connection: sa.Connection, sql: str, error: str) -> list[str]:
        """Statements (run outside a transaction) removing what the failed statement `sql` left behind.

        A failed statement changes nothing on most databases (a transaction, or
        atomic DDL); a dialect overrides this for the exceptions.
        """
        return []

    def stores_alike(self, a: Type, b: Type) -> bool:
        """True when this database stores columns of types `a` and `b` alike (equal once normalised)."""
        normalizer = getattr(self, "Normalizer", None)
        if normalizer is None:
            return a == b
        from schemashift.model.normalize import shared

        canonical = shared(normalizer).canonical_type
        return canonical(a) == canonical(b)

    def parse_type(self, sql: str) -> Type | None:
        """The neutral form of DDL type text as this database's reflection reads it (None: unknown)."""
        normalizer = getattr(self, "Normalizer", None)
        if normalizer is None:
            return None
        from schemashift.model.normalize import shared

        try:
            return shared(normalizer).parse_type(sql)
        except Exception:  # noqa: BLE001 - deliberately broad: text SQLAlchemy cannot read: unknown
            return None

    @contextmanager
    def lock(self, connection: sa.Connection, name: str, timeout: float) -> Iterator[None]:
        """Hold the migration lock called `name` for the block (LockTimeout after `timeout` s)."""
        yield

    #: `lock_in_transaction` works: a lock held until the open transaction ends (one round trip, no release).
    transaction_lock: ClassVar[bool] = False

    def lock_in_transaction(self, connection: sa.Connection, name: str, timeout: float) -> None:
        """Take the migration lock `name` inside `connection`'s open transaction, released by its end (commit or
        rollback); it excludes `lock` on the same name. Only with `transaction_lock` (LockTimeout after `timeout`)."""
        raise NotImplementedError(f"the {self.name} dialect has no transaction-level lock")

    # --- lease locks (see `schemashift.runtime.locks`) ---------------------------

    #: SQL expression for the database clock in whole milliseconds since 1970 (lease expiry); None: no lease lock.
    clock_ms_sql: ClassVar[str | None] = None

    def needs_lease_lock(self, connection: sa.Connection, env: EnvConfig) -> bool:
        """True when `lock` is not safe here and the lease lock must be used instead (generic: never)."""
        return False

    def is_write_conflict(self, error: sa.exc.DBAPIError) -> bool:
        """True when `error` means another session's write won (duplicate key, deadlock, certification failure)."""
        return isinstance(error, sa.exc.IntegrityError)

    def defer_durability(self, connection: sa.Connection) -> object | None:
        """Let this session's commits return before they are durable; a token for `restore_durability`.

        None (the generic form): commits stay as they are. See `executor.Executor.run` for when it is safe.
        """
        return None

    def restore_durability(self, connection: sa.Connection, token: object) -> None:
        """Undo `defer_durability`: from the next commit on, commits are durable again (and with them all
        earlier ones)."""

    def flush_commits(self, connection: sa.Connection) -> None:
        """After `restore_durability`: make every earlier commit of the session durable now, with one durable
        commit of its own (generic: nothing, commits were never deferred)."""

    def copy_rows(self, connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> bool:
        """Insert `rows` (all with the same keys) into `table` in one bulk load inside the open transaction; False
        (the generic form: nothing done) when the database or driver has none and the caller inserts them."""
        return False

    # --- generic compilation (the SQL compilation work) ----------------------

    def compile_create_table(self, op: ops.CreateTable, before: Schema, after: Schema) -> list[str]:
        """Enum types, ``CREATE TABLE`` with keys and constraints, comments, then ``CREATE INDEX``."""
        table = self.sa_table_for(op.table, after)
        statements = self.schema_setup(op.table.schema, before)
        statements += self.enum_setup(op.table.columns, before)
        statements.append(self.create_table_sql(table))
        if self.separate_comments and table.comment is not None:
            statements.append(self.ddl(sa.schema.SetTableComment(table)))
        for column in table.columns:
            statements += self.column_comment(column)
        return statements + self.index_statements(op.table, table)

    def compile_drop_table(self, op: ops.DropTable, before: Schema, after: Schema) -> list[str]:
        """``DROP TABLE``, then enum types nothing uses any more."""
        drop = self.ddl(sa.schema.DropTable(sa.Table(op.table, sa.MetaData(), schema=op.schema)))
        columns = op.definition.columns if op.definition is not None else ()
        return [drop, *self.enum_cleanup(columns, after)]

    def compile_rename_table(self, op: ops.RenameTable, before: Schema, after: Schema) -> list[str]:
        """``ALTER TABLE … RENAME TO``."""
        return [f"{self.alter_table(op.table, op.schema)} RENAME TO {self.rename_target(op.new_name, op.schema)}"]

    def compile_alter_table_comment(self, op: ops.AlterTableComment, before: Schema, after: Schema) -> list[str]:
        """``COMMENT ON TABLE`` (or the database's own form); nothing where comments are not stored."""
        if not self.supports_comments:
            return []
        table = sa.Table(op.table, sa.MetaData(), schema=op.schema, comment=op.comment)
        element = sa.schema.SetTableComment if op.comment is not None else sa.schema.DropTableComment
        return [self.ddl(element(table))]

    def compile_add_column(self, op: ops.AddColumn, before: Schema, after: Schema) -> list[str]:
        """Enum types, ``ALTER TABLE … ADD COLUMN`` with the full definition, its comment (see `add_filled_column`)."""
        if op.fill is not None:
            return self.add_filled_column(op, before, after)
        column = self.added_column(table_at(after, op.table_key), op.column.name, after)
        statements = self.enum_setup((op.column,), before)
        statements.append(f"{self.alter_table(op.table, op.schema)} ADD COLUMN {self.column_spec(column)}")
        return statements + self.column_comment(column)

    def add_filled_column(self, op: ops.AddColumn, before: Schema, after: Schema) -> list[str]:
        """A column with a one-off `fill`: added with the fill as its default (which fills the rows already
        there), then altered to its own definition (the default goes)."""
        statements: list[str] = []
        for part, part_before, part_after in self.fill_parts(op, before):
            statements += self.compile(part, part_before, part_after)
        return statements

    def fill_parts(self, op: ops.AddColumn, before: Schema) -> list[tuple[ops.Operation, Schema, Schema]]:
        """The two operations a filled `AddColumn` runs as, each with the schema before and after it."""
        assert op.fill is not None
        filled = op.column.evolve(default=self.fill_sql(op.fill, op.column.type))
        add = replace(op, column=filled, fill=None)
        middle = add.apply(before)
        settle = ops.AlterColumn(op.table, op.column.name, new=op.column, old=filled, schema=op.schema)
        return [(add, before, middle), (settle, middle, settle.apply(middle))]

    def fill_sql(self, value: ops.Fill, typ: Type) -> str:
        """`value` (an `AddColumn.fill`) as an SQL literal for a column of type `typ`."""
        if isinstance(value, bool):
            return str((sa.true() if value else sa.false()).compile(dialect=self._sa))
        if isinstance(value, (int, float)):
            return repr(value)
        if typ.kind == "numeric" and _NUMBER.fullmatch(value.strip()):
            return value.strip()
        return self.literal(value)

    def compile_drop_column(self, op: ops.DropColumn, before: Schema, after: Schema) -> list[str]:
        """``ALTER TABLE … DROP COLUMN``, then enum types nothing uses any more."""
        drop = f"{self.alter_table(op.table, op.schema)} DROP COLUMN {self.quote(op.column)}"
        columns = (op.definition,) if op.definition is not None else ()
        return [drop, *self.enum_cleanup(columns, after)]

    def compile_alter_column(self, op: ops.AlterColumn, before: Schema, after: Schema) -> list[str]:
        """Statements changing a column in place (every database does this its own way)."""
        raise NotImplementedError

    def compile_rename_column(self, op: ops.RenameColumn, before: Schema, after: Schema) -> list[str]:
        """``ALTER TABLE … RENAME COLUMN … TO``."""
        alter = self.alter_table(op.table, op.schema)
        return [f"{alter} RENAME COLUMN {self.quote(op.column)} TO {self.quote(op.new_name)}"]

    def compile_create_index(self, op: ops.CreateIndex, before: Schema, after: Schema) -> list[str]:
        """``CREATE [UNIQUE] INDEX``."""
        table = table_at(after, op.table_key).evolve(indexes=(op.index,))
        return self.index_statements(table, self.sa_table_for(table, after, include_foreign_keys=False))

    def compile_drop_index(self, op: ops.DropIndex, before: Schema, after: Schema) -> list[str]:
        """``DROP INDEX`` (its definition comes from `before` when the operation lacks it)."""
        assert op.definition is not None  # resolved by `compile`
        table = table_at(before, op.table_key).evolve(indexes=(op.definition,))
        index = _sa_index(self.sa_table_for(table, before, include_foreign_keys=False), op.name)
        return [self.ddl(sa.schema.DropIndex(index))]

    def compile_rename_index(self, op: ops.RenameIndex, before: Schema, after: Schema) -> list[str]:
        """``ALTER INDEX … RENAME TO`` (the standard form; MySQL and SQLite differ)."""
        return [f"ALTER INDEX {self.table_name(op.name, op.schema)} RENAME TO {self.quote(op.new_name)}"]

    def compile_add_constraint(self, op: ops.AddConstraint, before: Schema, after: Schema) -> list[str]:
        """``ALTER TABLE … ADD [CONSTRAINT n] PRIMARY KEY|UNIQUE|FOREIGN KEY|CHECK``."""
        constraint = self.sa_constraint(table_at(after, op.table_key), op.constraint, after)
        return [self.ddl(sa.schema.AddConstraint(constraint))]

    def compile_rename_constraint(self, op: ops.RenameConstraint, before: Schema, after: Schema) -> list[str]:
        """``ALTER TABLE … RENAME CONSTRAINT … TO`` (PostgreSQL's form; MySQL and SQLite differ)."""
        return [f"{self.alter_table(op.table, op.schema)} RENAME CONSTRAINT {self.quote(op.name)} TO "
                f"{self.quote(op.new_name)}"]

    def compile_drop_constraint(self, op: ops.DropConstraint, before: Schema, after: Schema) -> list[str]:
        """``ALTER TABLE … DROP CONSTRAINT n`` (or the database's own form, see `drop_constraint_sql`)."""
        assert op.definition is not None  # resolved by `compile`
        table = table_at(before, op.table_key)
        name = op.name or op.definition.name or self.default_constraint_name(table, op.definition)
        if name is None and (unnamed := self.drop_unnamed_constraint(table, op.definition)):
            return unnamed
        if name is None:
            raise MigrationError(
                f"cannot drop an unnamed constraint of {table.key}: "
                f"{self.name} names it in a way schemashift cannot predict",
                hint="name the constraint; a naming convention on the MetaData names them all",
            )
        named = replace(op.definition, name=name)
        return [self.drop_constraint_sql(self.sa_constraint(table, named, before))]

    def compile_create_sequence(self, op: ops.CreateSequence, before: Schema, after: Schema) -> list[str]:
        """``CREATE SEQUENCE`` (nothing without `supports_sequences`)."""
        if not self.supports_sequences:
            return []
        create = self.ddl(sa.schema.CreateSequence(sa_sequence(op.sequence)))
        return [*self.schema_setup(op.sequence.schema, before), create]

    def compile_drop_sequence(self, op: ops.DropSequence, before: Schema, after: Schema) -> list[str]:
        """``DROP SEQUENCE`` (nothing without `supports_sequences`)."""
        if not self.supports_sequences:
            return []
        return [self.ddl(sa.schema.DropSequence(sa.Sequence(op.name, schema=op.schema)))]

    def compile_alter_sequence(self, op: ops.AlterSequence, before: Schema, after: Schema) -> list[str]:
        """``ALTER SEQUENCE`` with the changed options; the current value carries on (no RESTART)."""
        if not self.supports_sequences or not op.changes:
            return []
        new = op.new
        ascending = (new.increment or 1) > 0
        clauses: list[str] = []
        if "increment" in op.changes:
            clauses.append(f"INCREMENT BY {1 if new.increment is None else new.increment}")
        if "minvalue" in op.changes:
            clauses.append("NO MINVALUE" if new.minvalue is None else f"MINVALUE {new.minvalue}")
        if "maxvalue" in op.changes:
            clauses.append("NO MAXVALUE" if new.maxvalue is None else f"MAXVALUE {new.maxvalue}")
        if "start" in op.changes or (new.start is None and {"minvalue", "maxvalue"} & set(op.changes)):
            start = new.start
            if start is None:
                start = (new.minvalue if new.minvalue is not None else 1) if ascending else (
                    new.maxvalue if new.maxvalue is not None else -1)
            clauses.append(f"START WITH {start}")
        if "cycle" in op.changes:
            clauses.append("CYCLE" if new.cycle else self.no_cycle)
        return [f"ALTER SEQUENCE {self.table_name(op.name, op.schema)} {' '.join(clauses)}"]

    def compile_execute_sql(self, op: ops.ExecuteSQL, before: Schema, after: Schema) -> list[str]:
        """The SQL itself when meant for this database (no `dialects`, or this one among them)."""
        if op.dialects and not {self.name, *self.aliases} & set(op.dialects):
            return []
        sql = op.sql.strip().rstrip(";").rstrip()
        return [sql] if sql else []

    def compile_backfill(self, op: ops.Backfill, before: Schema, after: Schema) -> list[str]:
        """One ``UPDATE`` of every row `where` selects, with a comment: the executor runs it batch by batch
        (what ``--sql`` prints; a script runs it as one statement)."""
        if op.empty:
            return []
        parts = self.backfill_sql(op, before)
        note = (f"/* schemashift runs this in batches of {op.batch_size} rows by {parts.key} ranges, "
                "one transaction each; here it is one statement */")
        return [f"{parts.update()} {note}"]

    def backfill_sql(self, op: ops.Backfill, before: Schema) -> BatchSql:
        """`op` as SQL pieces for a database at schema `before` (values as literals of their columns' types)."""
        table = before.table(op.table_key or "")
        key = op.check(table)
        sets = [f"{self.quote(name)} = {'NULL' if value is None else self.fill_sql(value, table.column(name).type)}"
                for name, value in op.values.items()]
        sets += [f"{self.quote(name)} = {expression}" for name, expression in op.expressions.items()]
        return BatchSql(self.table_name(op.table, op.schema), self.quote(key), ", ".join(sets), op.where)

    def compile_run_python(self, op: ops.RunPython, before: Schema, after: Schema) -> list[str]:
        """Nothing: the executor calls the function."""
        return []

    # --- hooks the databases override ------------------------------------------

    def enum_setup(self, columns: Iterable[Column], before: Schema) -> list[str]:
        """Statements creating the database enum types `columns` need (none without native enums)."""
        return []

    def schema_setup(self, name: str | None, before: Schema) -> list[str]:
        """``CREATE SCHEMA IF NOT EXISTS`` when `before` has nothing in schema `name` yet (with `supports_schemas`).

        Schemas are never dropped: they may hold objects schemashift does not manage.
        """
        if not self.supports_schemas or name is None or name in before.schema_names:
            return []
        return [f"CREATE SCHEMA IF NOT EXISTS {self._sa.identifier_preparer.quote_schema(name)}"]

    def next_value_sql(self, key: str) -> str:
        """The SQL default that takes the next value of sequence `key` (``schema.name`` or ``name``)."""
        schema, _, name = key.rpartition(".")
        return f"nextval({self.literal(self.table_name(name, schema or None))})"

    def sequence_column(self, column: Column) -> Column:
        """`column` with its sequence turned into a default (or ignored without `supports_sequences`)."""
        if column.sequence is None:
            return column
        if not self.supports_sequences:
            return column.evolve(sequence=None)
        return column.evolve(sequence=None, default=self.next_value_sql(column.sequence), autoincrement=False)

    def enum_cleanup(self, columns: Iterable[Column], after: Schema) -> list[str]:
        """Statements dropping enum types of `columns` that `after` no longer uses."""
        return []

    def default_constraint_name(self, table: Table, constraint: Constraint) -> str | None:
        """The name the database gave an unnamed constraint, when it is predictable."""
        return None

    def drop_unnamed_constraint(self, table: Table, constraint: Constraint) -> list[str]:
        """Statements dropping an unnamed constraint whose name only the database knows (none: refused)."""
        return []

    def drop_constraint_sql(self, constraint: sa.Constraint) -> str:
        """The statement dropping a named, table-bound SQLAlchemy `constraint`."""
        return self.ddl(sa.schema.DropConstraint(constraint))

    def rename_target(self, new_name: str, schema: str | None) -> str:
        """The new name in ``RENAME TO`` (unqualified: the table stays in its schema)."""
        return self.quote(new_name)

    # --- SQL building blocks -----------------------------------------------------

    @cached_property
    def _sa(self) -> sa.engine.Dialect:
        return self.sa_dialect()

    @cached_property
    def _ddl_types(self) -> TypeMemo:
        """The SQLAlchemy types of this database's DDL so far, shared between tables (`shared_sa_type`)."""
        return {}

    @property
    def compiler_dialect(self) -> sa.engine.Dialect:
        """The SQLAlchemy dialect this database's DDL is compiled with (one instance, kept)."""
        return self._sa

    @property
    def separate_comments(self) -> bool:
        """True when comments need their own ``COMMENT ON`` statements."""
        return self.supports_comments and not self._sa.inline_comments

    def ddl(self, element: sa.schema.ExecutableDDLElement) -> str:
        """`element` compiled for this database, on one line, without a trailing semicolon."""
        return one_line(str(element.compile(dialect=self._sa)))

    def create_table_sql(self, table: sa.Table) -> str:
        """``CREATE TABLE`` for `table`: on one line, or as SQLAlchemy lays it out (`keeps_create_table_layout`)."""
        element = sa.schema.CreateTable(table)
        if self.keeps_create_table_layout:
            return str(element.compile(dialect=self._sa)).strip()
        return self.ddl(element)

    def quote(self, name: str) -> str:
        """`name` as an identifier, quoted when the database needs it."""
        return self._sa.identifier_preparer.quote(name)

    def table_name(self, name: str, schema: str | None = None) -> str:
        """A table (or index, sequence…) name, schema-qualified when `schema` is given."""
        return self._sa.identifier_preparer.format_table(sa.table(name, schema=schema))

    def alter_table(self, name: str, schema: str | None = None) -> str:
        """``ALTER TABLE <qualified name>``."""
        return f"ALTER TABLE {self.table_name(name, schema)}"

    def literal(self, value: str) -> str:
        """`value` as an SQL string literal, escaped the database's way."""
        compiled = sa.literal(value, sa.String()).compile(dialect=self._sa, compile_kwargs={"literal_binds": True})
        return str(compiled)

    def type_sql(self, typ: Type) -> str:
        """`typ` as this database writes it in DDL."""
        return self._sa.type_compiler_instance.process(to_sa_type(typ, self.name))

    def sa_table_for(self, table: Table, schema: Schema, **options: object) -> sa.Table:
        """`table` as a SQLAlchemy table for this database (see `to_sqlalchemy.sa_table`), columns as
        `ddl_column` makes them."""
        columns = tuple(self.ddl_column(column) for column in table.columns)
        if any(new is not old for new, old in zip(columns, table.columns, strict=False)):
            table = table.evolve(columns=columns)
        if any(check.only_on for check in table.checks):
            table = table.evolve(checks=tuple(check for check in table.checks if self.builds(check)))
        return sa_table(table, schema=schema, dialect_name=self.name, types=self._ddl_types,
                        **options)  # type: ignore[arg-type]

    def ddl_column(self, column: Column) -> Column:
        """`column` as this database's DDL states it: filled from a sequence, its next value is the default
        (see `sequence_column`); its type and default are this database's forms; databases add their own rewrites."""
        column = column.on(self.name)
        return self.sequence_column(column) if column.sequence is not None else column

    def added_column(self, table: Table, name: str, schema: Schema) -> sa.Column[Any]:
        """Column `name` of `table` as a SQLAlchemy column, for ``ADD COLUMN`` and its comment.

        A column's DDL depends on its table only through the primary key (SERIAL,
        AUTO_INCREMENT, inline PRIMARY KEY) and a separate comment names the
        table, so other columns are built alone, at a fraction of the cost of a table.
        """
        column = table.column(name)
        keyed = table.primary_key is not None and name in table.primary_key.columns
        if keyed or (column.comment is not None and self.separate_comments):
            return self.sa_table_for(table, schema, include_indexes=False).c[name]
        return sa_column(self.ddl_column(column), self.name)

    @cached_property
    def _ddl_compiler(self) -> sa.sql.compiler.DDLCompiler:
        return self._sa.ddl_compiler(self._sa, None)  # type: ignore[arg-type]  # no statement: used for its methods

    def column_spec(self, column: sa.Column[Any]) -> str:
        """The full definition of `column` (``name TYPE NOT NULL DEFAULT …``); see `added_column`."""
        return self._ddl_compiler.get_column_specification(column)

    def fill_nulls(self, op: ops.AlterColumn) -> list[str]:
        """``UPDATE … SET c = <default> WHERE c IS NULL`` when a column with a default becomes NOT NULL.

        Without it the change fails on existing NULLs; SQLite rebuilds do the same with COALESCE.
        """
        if op.old is None or not op.old.nullable or op.new.nullable or op.new.default is None:
            return []
        column = self.quote(op.column)
        table = self.table_name(op.table, op.schema)
        return [f"UPDATE {table} SET {column} = {op.new.default} WHERE {column} IS NULL"]

    def column_comment(self, column: sa.Column[Any]) -> list[str]:
        """``COMMENT ON COLUMN`` for `column` when it has one and comments are separate statements."""
        if not self.separate_comments or column.comment is None:
            return []
        return [self.ddl(sa.schema.SetColumnComment(column))]

    def index_statements(self, table: Table, sa_tab: sa.Table) -> list[str]:
        """``CREATE INDEX`` for each index of `table`, in its order (`sa_tab` is its SQLAlchemy form)."""
        return [
            self.ddl(sa.schema.CreateIndex(_sa_index(sa_tab, index.name)))
            for index in table.indexes if self.builds(index)
        ]

    def sa_constraint(self, table: Table, constraint: Constraint, schema: Schema) -> sa.Constraint:
        """`constraint` as a SQLAlchemy constraint bound to a copy of `table`."""
        sa_tab = self.sa_table_for(_holding_only(table, constraint), schema, include_indexes=False)
        if isinstance(constraint, PrimaryKey):
            return sa_tab.primary_key
        kind = _SA_CONSTRAINTS[type(constraint)]
        return next(c for c in sa_tab.constraints if isinstance(c, kind))

    # --- connecting --------------------------------------------------------------

    def engine_options(self, url: sa.URL, connect_timeout: float) -> dict[str, object]:
        """`create_engine` keywords bounding how long connecting to `url` may take (generic: none)."""
        return {}

    def create_scratch_database(self, server: sa.URL, name: str, folder: Path) -> str:
        """Create the empty database `name` on `server`'s server (tests); its URL.

        The generic form runs ``CREATE DATABASE`` through `server`'s own database.
        """
        engine = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(f"CREATE DATABASE {self.quote(name)}")
        finally:
            engine.dispose()
        return server.set(database=name).render_as_string(hide_password=False)

    def drop_scratch_database(self, server: sa.URL, name: str, folder: Path) -> None:
        """Drop the database `create_scratch_database` made."""
        engine = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(self.drop_database_sql(name))
        finally:
            engine.dispose()

    def drop_database_sql(self, name: str) -> str:
        """``DROP DATABASE`` for `name` (generic: ``IF EXISTS``)."""
        return f"DROP DATABASE IF EXISTS {self.quote(name)}"

    def database_missing(self, url: sa.URL) -> bool:
        """True when `url` names a database that connecting would create (generic: never)."""
        return False

    def prepare_engine(self, engine: sa.Engine, read_timeout: float | None) -> None:
        """Hook run on a new engine of ours (generic: nothing); `read_timeout` bounds each wait for a result."""

    # --- per-environment session settings (the environments work) ------------

    def session_setup(self, connection: sa.Connection, env: EnvConfig) -> None:
        """Apply `env`'s per-connection settings (`schema`, `statement_timeout`) to a new connection.

        This generic form has no statement timeout (ignored) and no schemas: `schema` is refused.
        """
        self.check_settings(env)

    def check_settings(self, env: EnvConfig) -> None:
        """Refuse settings of `env` this database does not have (generic: `schema`)."""
        if env.schema and not self.supports_schemas:
            from schemashift.errors import ConfigError

            raise ConfigError(
                f"env {env.name!r}: `schema` is a PostgreSQL setting, not supported on {self.name}",
                hint="name the database in the URL instead",
            )

    def ensure_schema(self, connection: sa.Connection, name: str | None) -> None:
        """Create schema `name` when it is missing (before migrating into it); committed at once."""
        if name and not sa.inspect(connection).has_schema(name):
            connection.execute(sa.schema.CreateSchema(name))
            connection.commit()


# --- helpers -------------------------------------------------------------------


def _batched_parts(op: ops.AddColumn, quoted: str, dialect: str) -> list[Operation]:
    """The operations `Dialect.batched_add_column` runs `op` as (`quoted`: the column's quoted name)."""
    column = op.column.on(dialect)
    bare = column.evolve(nullable=True, default=None)
    defaulted = bare.evolve(default=column.default)
    assert column.default is not None
    parts: list[Operation] = [
        replace(op, column=bare),
        ops.AlterColumn(op.table, column.name, new=defaulted, old=bare, schema=op.schema),
        ops.Backfill(op.table, expressions={column.name: column.default}, where=f"{quoted} IS NULL",
                     schema=op.schema),
    ]
    if not column.nullable:
        parts.append(ops.AlterColumn(op.table, column.name, new=column, old=defaulted, schema=op.schema))
    return parts


def part_trace(part: Operation) -> Trace | None:
    """What the one statement of a part of `Dialect.batched_add_column` leaves: the column added, its default
    set, it made NOT NULL; None for anything else."""
    if isinstance(part, ops.AddColumn):
        return Trace("column", part.table, part.schema, part.column.name)
    if not isinstance(part, ops.AlterColumn) or part.old is None:
        return None
    if "nullable" in part.changes and not part.new.nullable:
        return Trace("not_null", part.table, part.schema, part.column)
    if part.old.default is None and part.new.default is not None:
        return Trace("default", part.table, part.schema, part.column)
    return None


def table_at(schema: Schema, key: str | None) -> Table:
    """The table `key` of `schema`, or a MigrationError saying it is missing."""
    if key is None or key not in schema:
        raise MigrationError(f"table {key!r} does not exist at this point of the migration")
    return schema.table(key)


def sa_sequence(sequence: Sequence) -> sa.Sequence:
    """A `sa.Sequence` for the neutral `sequence`."""
    return sa.Sequence(
        sequence.name,
        start=sequence.start,
        increment=sequence.increment,
        minvalue=sequence.minvalue,
        maxvalue=sequence.maxvalue,
        cycle=sequence.cycle or None,
        schema=sequence.schema,
    )


def one_line(sql: str) -> str:
    """SQLAlchemy's multi-line ``CREATE TABLE`` layout folded onto one line, trimmed."""
    sql = sql.strip().replace(" (\n\t", " (").replace(", \n\t", ", ")
    return re.sub(r"\n\)(?=\S)", ") ", sql).replace("\n)", ")")


def native_enum_of(typ: Type) -> Type | None:
    """The named, native enum `typ` is or holds (arrays of enums), else None."""
    inner = typ.item if typ.kind == "array" and typ.item is not None else typ
    return inner if inner.kind == "enum" and inner.native and inner.name else None


def with_enum(typ: Type, enum: Type) -> Type:
    """`typ` with its enum (itself, or its array item) replaced by `enum`."""
    return typ.evolve(item=enum) if typ.kind == "array" else enum


def native_enums(columns: Iterable[Column]) -> list[Type]:
    """The native enum types `columns` use, once each by name, in column order."""
    found: dict[str, Type] = {}
    for column in columns:
        enum = native_enum_of(column.type)
        if enum is not None and enum.name not in found:
            found[enum.name] = enum  # type: ignore[index]
    return list(found.values())


def _sa_index(sa_tab: sa.Table, name: str) -> sa.Index:
    return next(index for index in sa_tab.indexes if index.name == name)


def _holding_only(table: Table, constraint: Constraint) -> Table:
    """`table` with `constraint` as its only key, constraint and no index."""
    bare = table.evolve(primary_key=None, uniques=(), foreign_keys=(), checks=(), indexes=())
    if isinstance(constraint, PrimaryKey):
        return bare.evolve(primary_key=constraint)
    return bare.evolve(**{CONSTRAINT_FIELDS[type(constraint)]: (constraint,)})


# --- locking helpers -------------------------------------------------------------


def run_settled(connection: sa.Connection, sql: str, params: dict[str, object] | None = None) -> object:
    """Run `sql` and return its first value, committing the transaction the driver began for it.

    Locks here are session-level, so they outlive that commit; committing leaves
    no implicit transaction open under the caller's later work. A transaction the
    caller had already begun is left alone.
    """
    row = settled_row(connection, sql, params)
    return None if row is None else row[0]


def settled_row(connection: sa.Connection, sql: str,
                params: dict[str, object] | None = None) -> tuple[Any, ...] | None:
    """`run_settled` returning the first row (None: no row)."""
    began = not connection.in_transaction()
    row = connection.execute(sa.text(sql), params or {}).first()
    if began:
        connection.commit()
    return None if row is None else tuple(row)


def lock_timeout(what: str, timeout: float) -> LockTimeout:
    """The error raised when the migration lock `what` stayed taken for `timeout` seconds."""
    return LockTimeout(
        f"could not take the migration lock {what} within {timeout:g} s: another schemashift run holds it",
        hint="wait for it to finish, or raise the lock timeout",
    )


def poll_lock(attempt: Callable[[], bool], timeout: float, what: str) -> None:
    """Call `attempt` until it returns True, waiting a little longer each time; LockTimeout after `timeout` s."""
    deadline = time.monotonic() + max(timeout, 0.0)
    wait = 0.02
    while not attempt():
        left = deadline - time.monotonic()
        if left <= 0:
            raise lock_timeout(what, timeout)
        time.sleep(min(wait, left))
        wait = min(wait * 2, 0.5)


def release_quietly(connection: sa.Connection, sql: str, params: dict[str, object] | None = None) -> None:
    """Run the lock-releasing `sql`; a closed or broken connection has released the lock already.

    When the caller's transaction failed (PostgreSQL refuses statements until a
    rollback), it is rolled back first.
    """
    if connection.closed or connection.invalidated:
        return
    try:
        run_settled(connection, sql, params)
    except sa.exc.DBAPIError:
        if connection.invalidated or not connection.in_transaction():
            return
        connection.rollback()
        run_settled(connection, sql, params)
