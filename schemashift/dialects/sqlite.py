"""SQLite: capabilities, SQL compilation, normalisation of reflected schemas, locking."""

from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from .. import ops
from ..errors import MigrationError
from ..schema import normalize as norm
from ..schema.types import Type
from ..schema.model import Column, Schema, Table
from .base import Dialect, poll_lock, table_at

if TYPE_CHECKING:
    from ..plan import Plan, Step

# --- helpers of the SQL compilation and locking sections (below) ---------------

#: A default ``ADD COLUMN`` accepts: NULL, TRUE/FALSE, a number, a string or blob literal.
_CONSTANT = re.compile(
    r"\s*(?:NULL|TRUE|FALSE|[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|'(?:[^']|'')*'|[xX]'[0-9a-fA-F]*')\s*",
    re.IGNORECASE,
)

#: Kinds whose SQLite affinity (INTEGER, REAL, TEXT) a CAST reproduces exactly. Others have
#: NUMERIC affinity, where a CAST would turn '2024-05-01' into 2024; the column's affinity
#: converts those values on insert anyway.
_CASTS = frozenset({"smallint", "integer", "bigint", "float", "string", "text"})


def _adds_in_place(column: Column, table: Table) -> bool:
    """True when SQLite's ``ADD COLUMN`` accepts `column`; otherwise the table is rebuilt."""
    default = column.default
    if default is not None and not _CONSTANT.fullmatch(default):
        return False
    if not column.nullable and (default is None or default.strip().upper() == "NULL"):
        return False
    if column.computed is not None and column.computed.persisted:
        return False
    in_key = table.primary_key is not None and column.name in table.primary_key.columns
    return not in_key and column.identity is None


def _database_file(connection: sa.Connection) -> str | None:
    """The absolute path of the connection's database file; None for in-memory databases."""
    database = connection.engine.url.database or ""
    if database.startswith("file:"):
        path, _, query = database[len("file:"):].partition("?")
        if "mode=memory" in query:
            return None
        database = path
    if database in ("", ":memory:"):
        return None
    return os.path.abspath(database)


def _try_flock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class SQLiteDialect(Dialect):
    """SQLite."""

    name = "sqlite"

    # --- SQL compilation (owned by the dialects work) ---------------------

    transactional_ddl = True
    rebuilds_tables = True
    supports_comments = False

    def sa_dialect(self) -> sa.engine.Dialect:
        """SQLAlchemy's SQLite dialect."""
        return sqlite.dialect()

    def compile_add_column(self, op: ops.AddColumn, before: Schema, after: Schema) -> list[str]:
        """``ADD COLUMN`` when SQLite allows it (nullable or constant default, not in the key), else a rebuild."""
        table = table_at(after, op.table_key)
        if _adds_in_place(op.column, table):
            return super().compile_add_column(op, before, after)
        return self.rebuild(table_at(before, op.table_key), table, after)

    def compile_drop_column(self, op: ops.DropColumn, before: Schema, after: Schema) -> list[str]:
        """A table rebuild (SQLite's own DROP COLUMN refuses indexed, keyed or constrained columns)."""
        return self._rebuild_for(op, before, after)

    def compile_alter_column(self, op: ops.AlterColumn, before: Schema, after: Schema) -> list[str]:
        """A table rebuild: SQLite cannot alter a column in place."""
        return self._rebuild_for(op, before, after) if op.changes else []

    def compile_add_constraint(self, op: ops.AddConstraint, before: Schema, after: Schema) -> list[str]:
        """A table rebuild: SQLite cannot add constraints to a table."""
        return self._rebuild_for(op, before, after)

    def compile_drop_constraint(self, op: ops.DropConstraint, before: Schema, after: Schema) -> list[str]:
        """A table rebuild: SQLite cannot drop constraints (unnamed ones included)."""
        return self._rebuild_for(op, before, after)

    def compile_rename_index(self, op: ops.RenameIndex, before: Schema, after: Schema) -> list[str]:
        """``DROP INDEX`` and ``CREATE INDEX`` under the new name (SQLite cannot rename indexes)."""
        table = table_at(after, op.table_key)
        renamed = table.evolve(indexes=tuple(i for i in table.indexes if i.name == op.new_name))
        drop = f"DROP INDEX {self.table_name(op.name, op.schema)}"
        return [drop, *self.index_statements(renamed, self.sa_table_for(renamed, after, include_foreign_keys=False))]

    def _rebuild_for(self, op: ops.Operation, before: Schema, after: Schema) -> list[str]:
        return self.rebuild(table_at(before, op.table_key), table_at(after, op.table_key), after)

    def rebuilt(self, op: ops.Operation, before: Schema, after: Schema) -> tuple[Table, Table] | None:
        """The tables before and after `op` (resolved) when SQLite runs it as a table rebuild, else None."""
        if isinstance(op, ops.AddColumn):
            table = table_at(after, op.table_key)
            return None if _adds_in_place(op.column, table) else (table_at(before, op.table_key), table)
        if isinstance(op, ops.AlterColumn) and not op.changes:
            return None
        if isinstance(op, (ops.DropColumn, ops.AlterColumn, ops.AddConstraint, ops.DropConstraint)):
            return table_at(before, op.table_key), table_at(after, op.table_key)
        return None

    def rebuild(self, old: Table, new: Table, after: Schema, carried: "Carried | None" = None) -> list[str]:
        """Replace table `old` by `new`, keeping the rows of the columns both have.

        ``CREATE TABLE "_schemashift_new_<t>"`` from `new`, ``INSERT … SELECT`` the
        common columns (CAST where the type changed, COALESCE with the default where
        the column became NOT NULL), ``DROP TABLE``, ``RENAME TO``, then `new`'s
        indexes. All statements run inside one transaction, but with foreign keys
        enforced, dropping a referenced table would delete or refuse: the executor
        turns ``PRAGMA foreign_keys`` off around the migration (SQLite ignores
        that pragma inside a transaction).

        `carried` (see `adapt_to_live`) is what the live database has beyond the
        migrations: its columns (with their values), table constraints and live
        column definitions go into the new table, its views and triggers are
        dropped first and re-created last with its extra indexes (SQLite's
        documented procedure).
        """
        carried = carried or Carried()
        temp = f"_schemashift_new_{new.name}"
        created = self.sa_table_for(new, after, name=temp, include_indexes=False)
        source, target = self.table_name(old.name, old.schema), self.table_name(temp, new.schema)
        statements = [self._drop(o) for o in reversed(carried.dependents)]
        create = self.ddl(sa.schema.CreateTable(created))
        statements.append(_spliced(create, len(new.columns), {c.name.lower(): c.definition for c in carried.definitions},
                                   [c.definition for c in carried.columns], carried.constraints))
        kept = [column for column in new.columns if old.has_column(column.name) and column.computed is None]
        plain = [self.quote(column.name) for column in carried.columns if not column.generated]
        names = [self.quote(column.name) for column in kept] + plain
        values = [self._copied(old.column(column.name), column) for column in kept] + plain
        if names:
            statements.append(f"INSERT INTO {target} ({', '.join(names)}) SELECT {', '.join(values)} FROM {source}")
        statements += [f"DROP TABLE {source}", f"ALTER TABLE {target} RENAME TO {self.quote(new.name)}"]
        statements += self.index_statements(new, self.sa_table_for(new, after, include_foreign_keys=False))
        return statements + [o.sql for o in carried.indexes + carried.dependents]

    def expected(self, tables: Iterable[Table], after: Schema) -> "Expected":
        """What the migrations give the versions `tables` of one table (see `Expected`)."""
        tables = list(tables)
        constraints: set[str] = set()
        definitions: list[dict[str, str]] = []
        for table in tables:
            create = self.ddl(sa.schema.CreateTable(self.sa_table_for(table, after, include_indexes=False)))
            constraints.update(canonical_sql(text) for text in table_constraints(create))
            definitions.append({name: canonical_sql(text) for name, text in column_definitions(create).items()})
        unchanged = {name: text for name, text in definitions[0].items() if all(d.get(name) == text for d in definitions)}
        earlier = {c.lower() for t in tables[:-1] for c in t.column_names}
        return Expected(frozenset(c.lower() for t in tables for c in t.column_names),
                        frozenset(i.name.lower() for t in tables for i in t.indexes), frozenset(constraints), unchanged,
                        frozenset(c.lower() for c in tables[-1].column_names) - earlier)

    def _drop(self, live: "LiveObject") -> str:
        return f"DROP {live.kind.upper()} {self.table_name(live.name, live.schema)}"

    def _copied(self, old: Column, new: Column) -> str:
        """The SELECT expression carrying `old`'s values into `new`."""
        value = self.quote(old.name)
        if old.type != new.type and new.type.kind in _CASTS:
            value = f"CAST({value} AS {self.type_sql(new.type.evolve(collation=None))})"  # CAST takes no COLLATE
        if old.nullable and not new.nullable and new.default is not None:
            value = f"COALESCE({value}, {new.default})"
        return value

    # --- what only the live database has, carried through rebuilds --------

    def adapt_to_live(self, connection: sa.Connection, plan: "Plan") -> "Plan":
        """`plan` with each table rebuild carrying over what only the live database has on the table.

        Read at plan time (``sqlite_master``, ``table_xinfo``): columns the
        migrations do not know (definition and values), table constraints and
        indexes they do not have, the live definition of columns they define
        otherwise (unless the operation changes them), and the triggers and views
        on or over the table (dropped before, re-created after the rebuild). One of
        those that uses a column the rebuild removes is refused, naming it. After an operation whose effect on the live objects the plan
        cannot know (raw SQL, Python, renames, which SQLite carries into trigger
        and view texts), later rebuilds read the live table when they run instead
        (`LiveRebuild`). A rebuild of a table with foreign keys from or to it is
        followed by `ForeignKeyCheck`.
        """
        if plan.empty:
            return plan
        live = _LivePlan(connection, plan.steps[0].before)
        return replace(plan, steps=[self._adapt_step(step, live) for step in plan.steps])

    def adapt_offline(self, plan: "Plan") -> "Plan":
        """`plan` for a script written without a database: each rebuild says what it cannot know."""
        steps = []
        for step in plan.steps:
            if not any(isinstance(operation, _MAY_REBUILD) for operation in step.operations):
                steps.append(step)
                continue
            statements, state, position = list(step.statements), step.before, 0
            for operation, group in zip(step.operations, _statement_groups(step)):
                after = operation.apply(state)
                tables = self.rebuilt(operation, state, after) if group and group[0].sql else None
                if tables is not None:
                    note = f"-- {_OFFLINE_NOTE.format(table=tables[1].key)}\n{group[0].sql}"
                    statements[position] = replace(group[0], sql=note)
                position, state = position + len(group), after
            steps.append(replace(step, statements=statements))
        return replace(plan, steps=steps)

    def _adapt_step(self, step: "Step", live: "_LivePlan") -> "Step":
        if not any(isinstance(operation, _MAY_REBUILD) for operation in step.operations):
            for operation, group in zip(step.operations, _statement_groups(step)):
                live.note(operation, group)
            return step
        operations: list[ops.Operation] = []
        statements: list[Any] = []
        state = step.before
        for operation, group in zip(step.operations, _statement_groups(step)):
            after = operation.apply(state)
            tables = self.rebuilt(operation, state, after) if group else None
            if tables is None:
                operations.append(operation)
                statements.extend(group)
                live.note(operation, group)
            else:
                added, adapted = self._adapted_rebuild(operation, *tables, after, live)
                operations += [operation, *added]  # after it: `backups.rows_at_risk` reads what precedes it
                statements += adapted
            state = after
        return replace(step, operations=operations, statements=statements)

    def _adapted_rebuild(self, operation: ops.Operation, old: Table, new: Table, after: Schema,
                         live: "_LivePlan") -> tuple[list[ops.Operation], list[Any]]:
        """The operations shown with `operation` and its statements, carrying what only the live table has."""
        from ..plan import Statement

        if live.uncertain:
            shown = [KeepLiveObjects(new.name, _READ_WHEN_RUN, schema=new.schema)]
            statements = [Statement(operation, python=LiveRebuild(self, operation, old, new, after))]
        else:
            carried = live.carried(self, old, new, after)
            refuse_removed_in_use(carried, old, new, operation.describe())
            shown = [KeepLiveObjects(new.name, carried.describe(), schema=new.schema)] if carried else []
            statements = [Statement(operation, sql=sql) for sql in self.rebuild(old, new, after, carried)]
        check = ForeignKeyCheck.planned(live.connection, new, after)
        if check is not None:
            statements.append(Statement(operation, python=check))
        return shown, statements

    # --- normalisation for comparison (owned by the reflection work) -------

    class Normalizer(norm.Normalizer):
        """SQLite's canonical form for comparison (see `schema.normalize`).

        SQLite keeps the declared type names, so most types compare as declared;
        but it has no enum (VARCHAR), no UUID (CHAR(32)), no time zones, comments,
        identities or (reflectable) collations, and all floats are 8-byte REALs. A
        column is autoincrement exactly when it is the table's single-column
        ``INTEGER`` primary key (a rowid alias). Constraint names are stored as
        written and none are generated.
        """

        keeps_comments = False
        case_sensitive_quotes = False
        has_identity = False

        def type(self, typ: Type) -> Type:
            typ = super().type(typ)
            kind = typ.kind
            if kind == "enum":
                return Type("string", length=max((len(v) for v in typ.values), default=None))
            if kind == "uuid":
                return Type("string", length=32)
            if kind == "float":
                return typ.evolve(precision=None)
            if kind in ("datetime", "time"):
                return typ.evolve(timezone=False)
            if kind == "interval":  # emulated as DATETIME
                return Type("datetime")
            if kind in ("string", "text"):
                return typ.evolve(collation=None)
            if kind == "binary":
                return typ.evolve(length=None)
            if kind == "json":
                return typ.evolve(variant=None)
            if typ.is_integer:
                return typ.evolve(unsigned=False)
            return typ

        def column(self, table: Table, column: Column) -> Column:
            column = super().column(table, column)
            pk = table.primary_key
            rowid = pk.columns[0] if pk is not None and len(pk.columns) == 1 else None
            return column.evolve(autoincrement=column.name == rowid and column.type.kind == "integer")

    def normalize(self, schema: Schema) -> Schema:
        """`schema` in SQLite's canonical form, for comparison only."""
        return norm.shared(self.Normalizer)(schema)

    # --- locking ---------------------------------------------------------

    @contextmanager
    def lock(self, connection: sa.Connection, name: str, timeout: float) -> Iterator[None]:
        """An exclusive ``flock`` on ``<database file>.schemashift-lock``, polled until `timeout`.

        The kernel drops it when the process dies, so a killed run never leaves it
        behind; the file itself stays (deleting lock files races). In-memory
        databases belong to one connection and need no lock.
        """
        path = _database_file(connection)
        if path is None:
            yield
            return
        descriptor = os.open(f"{path}.schemashift-lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            poll_lock(lambda: _try_flock(descriptor), timeout, f"{name!r} ({path}.schemashift-lock)")
            try:
                yield
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)


# --- what only the live database has (see `SQLiteDialect.adapt_to_live`) -------------

_OFFLINE_NOTE = (
    "rebuild of {table} as the migrations define it: without a database, columns, constraints, indexes, triggers and "
    "views that only the live table has are unknown here and NOT carried over (`upgrade --sql` connected "
    "to the database prints the rebuild that keeps them)"
)
_READ_WHEN_RUN = "read when the rebuild runs (raw SQL, Python or a rename before it may change it)"
#: First words of statements that only read or write rows.
_ROW_WORDS = frozenset({"insert", "update", "delete", "select", "with", "replace", "values"})
_FIRST_WORD = re.compile(r"\s*([A-Za-z_]\w*)")
#: Operations that SQLite may run as a table rebuild (see `SQLiteDialect.rebuilt`).
_MAY_REBUILD = (ops.AddColumn, ops.DropColumn, ops.AlterColumn, ops.AddConstraint, ops.DropConstraint)
#: A primary key (a table constraint starts with it; a column definition has it anywhere).
_PRIMARY = re.compile(r"(?:constraint \S+ )?primary key\b")
#: Words that start a table constraint, not a column definition, in ``CREATE TABLE``.
_CONSTRAINT_WORDS = frozenset({"constraint", "primary", "unique", "check", "foreign"})


@dataclass(frozen=True)
class LiveObject:
    """An index, trigger or view as ``sqlite_master`` holds it."""

    kind: str
    name: str
    table: str
    sql: str
    schema: str | None = None

    @cached_property
    def identifiers(self) -> frozenset[str]:
        """Every name its SQL mentions, lower-cased (an over-approximation of what it uses)."""
        return _identifiers(self.sql)


@dataclass(frozen=True)
class LiveColumn:
    """A column of a live table with its definition as written in the table's ``CREATE TABLE``."""

    name: str
    definition: str
    generated: bool = False


@dataclass(frozen=True)
class Carried:
    """What a rebuild of one table takes over from the live database beyond the migrations' definition."""

    columns: tuple[LiveColumn, ...] = ()
    indexes: tuple[LiveObject, ...] = ()
    dependents: tuple[LiveObject, ...] = ()  #: triggers and views, in creation order
    constraints: tuple[str, ...] = ()  #: table constraints (CHECK, UNIQUE, FOREIGN KEY) as written
    definitions: tuple[LiveColumn, ...] = ()  #: known columns the live table defines otherwise, kept as they are

    def __bool__(self) -> bool:
        return bool(self.columns or self.indexes or self.dependents or self.constraints or self.definitions)

    def describe(self) -> str:
        """``column legacy (with its values), constraint CHECK (…), index ix_legacy, trigger t, view v``."""
        parts = [f"column {c.name}" + ("" if c.generated else " (with its values)") for c in self.columns]
        parts += [f"column {c.name} defined as live ({_short(c.definition)})" for c in self.definitions]
        parts += [f"constraint {_short(text)}" for text in self.constraints]
        parts += [f"{o.kind} {o.name}" for o in self.indexes + self.dependents]
        return ", ".join(parts)


@dataclass(frozen=True)
class Expected:
    """What the migrations give a rebuilt table, to tell the live-only part apart (names lower-cased)."""

    columns: frozenset[str]
    indexes: frozenset[str]
    constraints: frozenset[str]  #: `canonical_sql` of the table constraints ``CREATE TABLE`` writes
    definitions: dict[str, str]  #: `canonical_sql` of each column definition no operation so far changes
    added: frozenset[str] = frozenset()  #: columns the rebuild adds


@dataclass(frozen=True)
class KeepLiveObjects(ops.Operation):
    """Shown before a rebuild (``--dry-run``): what the rebuild carries over that only the live database has."""

    table: str
    what: str
    schema: str | None = None
    data_only = True

    def apply(self, schema: Schema) -> Schema:
        return schema

    def inverse(self) -> ops.Operation:
        """Nothing to undo."""
        return ops.ExecuteSQL("")

    def describe(self) -> str:
        return f"keep what only the live database has on {self.table_key}: {self.what}"


class LiveCatalogue:
    """``sqlite_master`` of one database (main or attached), read once, and its tables' columns."""

    def __init__(self, connection: sa.Connection, schema: str | None) -> None:
        self.connection, self.schema = connection, schema
        self.prefix = f'"{schema}".' if schema else ""
        rows = connection.exec_driver_sql(
            f"SELECT type, name, tbl_name, sql FROM {self.prefix}sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"
        ).fetchall()
        self.tables = {name.lower(): sql for kind, name, _, sql in rows if kind == "table"}
        self.objects = [LiveObject(kind, name, table, sql, schema) for kind, name, table, sql in rows
                        if kind in ("index", "trigger", "view")]

    def columns(self, table: str) -> list[LiveColumn]:
        """The live columns of `table` ([] when it does not exist); definition "" where it cannot be read."""
        quoted = table.replace('"', '""')
        rows = self.connection.exec_driver_sql(f'PRAGMA {self.prefix}table_xinfo("{quoted}")').fetchall()
        definitions = column_definitions(self.tables.get(table.lower(), ""))
        return [LiveColumn(row[1], definitions.get(row[1].lower(), ""), row[6] in (2, 3)) for row in rows]

    def carried(self, table: str, expected: "Expected") -> Carried:
        """What a rebuild of `table` must carry beyond what the migrations give it (`expected`).

        Columns, indexes and table constraints (by `canonical_sql`, never a primary
        key) they do not have, the live definition of columns they have defined
        otherwise (and no operation so far changes), every dependent trigger and view.
        """
        live = self.columns(table)
        clash = [c.name for c in live if c.name.lower() in expected.added]
        if clash:
            raise MigrationError(f"cannot rebuild {table}: the column {clash[0]} it adds already exists in the live "
                                 "database (the migrations do not have it); nothing was changed",
                                 hint="drop or rename the live column first, or leave it out of the models")
        extra = tuple(c for c in live if c.name.lower() not in expected.columns)
        for column in extra:
            if not column.definition:
                raise MigrationError(f"cannot rebuild {table}: the definition of its live-only column {column.name} "
                                     "could not be read from its CREATE TABLE text; nothing was changed")
        redefined = tuple(c for c in live if c.name.lower() in expected.definitions and c.definition
                          and canonical_sql(c.definition) != expected.definitions[c.name.lower()]
                          and not _PRIMARY.search(canonical_sql(c.definition)))
        indexes = tuple(o for o in self.objects if o.kind == "index" and o.table.lower() == table.lower()
                        and o.name.lower() not in expected.indexes)
        constraints = tuple(text for text in table_constraints(self.tables.get(table.lower(), ""))
                            if canonical_sql(text) not in expected.constraints and not _PRIMARY.match(canonical_sql(text)))
        return Carried(extra, indexes, self.dependents(table), constraints, redefined)

    def dependents(self, table: str) -> tuple[LiveObject, ...]:
        """Triggers and views on or mentioning `table`, or a view that does (SQLite checks them on RENAME)."""
        names = {table.lower()}
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for live in self.objects:
                key = f"{live.kind}:{live.name.lower()}"
                if live.kind == "index" or key in found:
                    continue
                if live.table.lower() in names or names & live.identifiers:
                    found.add(key)
                    changed = True
                    if live.kind == "view":
                        names.add(live.name.lower())
        return tuple(o for o in self.objects if f"{o.kind}:{o.name.lower()}" in found)


class _LivePlan:
    """The live database while a plan is adapted: catalogues read on first use, and whether they still hold."""

    def __init__(self, connection: sa.Connection, start: Schema) -> None:
        self.connection, self.start = connection, start
        self.uncertain = False  # an earlier operation may have changed live objects unpredictably
        self.fresh: set[str] = set()  # tables this plan creates or drops: their live columns are not drift
        self._catalogues: dict[str | None, LiveCatalogue] = {}

    def note(self, operation: ops.Operation, statements: list[Any]) -> None:
        """Remember an operation whose effect on the live objects cannot be predicted, or that replaces a table.

        Raw SQL that only reads or writes rows (``INSERT``, ``UPDATE``, ``DELETE``, ``SELECT``, ``WITH``) is predictable.
        """
        if isinstance(operation, ops.ExecuteSQL):
            self.uncertain = self.uncertain or not all(_rows_only(s.sql or "") for s in statements)
        elif isinstance(operation, (ops.RunPython, ops.RenameTable, ops.RenameColumn)):
            self.uncertain = True
        elif isinstance(operation, (ops.CreateTable, ops.DropTable)) and operation.table_key is not None:
            self.fresh.add(operation.table_key)

    def carried(self, dialect: SQLiteDialect, old: Table, new: Table, after: Schema) -> Carried:
        """What a rebuild of `old` into `new` carries, judged against the migrations' schema at plan start."""
        if old.schema not in self._catalogues:
            self._catalogues[old.schema] = LiveCatalogue(self.connection, old.schema)
        catalogue = self._catalogues[old.schema]
        start = None if old.key in self.fresh else self.start.tables.get(old.key)
        if start is None:  # created by this plan: nothing of it is live-only
            return Carried(dependents=catalogue.dependents(old.name))
        return catalogue.carried(old.name, dialect.expected((start, old, new), after))


def refuse_removed_in_use(carried: Carried, old: Table, new: Table, what: str) -> None:
    """MigrationError naming each carried index, trigger or view that mentions a column the rebuild removes.

    Such an object cannot be re-created as it is, and schemashift neither rewrites
    nor silently drops what the user made: like SQLite's own ``DROP COLUMN``, it refuses.
    """
    removed = {name.lower(): name for name in old.column_names if not new.has_column(name)}
    uses = []
    named = [(f"constraint {_short(text)}", _identifiers(text)) for text in carried.constraints]
    named += [(f"column {c.name} as live", _identifiers(c.definition) - {c.name.lower()}) for c in carried.definitions]
    named += [(f"{live.kind} {live.name}", live.identifiers) for live in carried.indexes + carried.dependents]
    for label, identifiers in named:
        used = sorted(removed[name] for name in identifiers.intersection(removed))
        if used:
            uses.append(f"{label} ({', '.join(f'{old.key}.{name}' for name in used)})")
    if uses:
        raise MigrationError(
            f"cannot {what}: what only the live database has uses columns this removes: {', '.join(uses)}; "
            "nothing was changed",
            hint="drop or rewrite them first, e.g. with an ExecuteSQL that has a reverse, in this or an earlier migration",
        )


class LiveRebuild:
    """A rebuild that reads the live table when it runs (after operations the plan cannot predict)."""

    def __init__(self, dialect: SQLiteDialect, operation: ops.Operation, old: Table, new: Table, after: Schema) -> None:
        self.dialect, self.operation, self.old, self.new, self.after = dialect, operation, old, new, after
        self.__name__ = f"rebuild_{new.name}_keeping_live_objects"

    def __call__(self, context: Any) -> None:
        catalogue = LiveCatalogue(context.connection, self.old.schema)
        carried = catalogue.carried(self.old.name, self.dialect.expected((self.old, self.new), self.after))
        refuse_removed_in_use(carried, self.old, self.new, self.operation.describe())
        for sql in self.dialect.rebuild(self.old, self.new, self.after, carried):
            context.connection.exec_driver_sql(sql)


class ForeignKeyCheck:
    """After a rebuild: ``PRAGMA foreign_key_check`` on the table and those referencing it.

    Refuses (the migration rolls back) when a table has more violating rows than
    when the plan was made, so violations the database already had do not block.
    """

    __name__ = "foreign_key_check"

    def __init__(self, tables: dict[tuple[str, str | None], int | None]) -> None:
        self.tables = tables

    @classmethod
    def planned(cls, connection: sa.Connection, table: Table, after: Schema) -> "ForeignKeyCheck | None":
        """The check for a rebuild of `table`, with today's counts; None when no foreign key is involved."""
        involved = [t for t in after.tables.values() if any(fk.ref_key == table.key for fk in t.foreign_keys)]
        if table.foreign_keys:
            involved.insert(0, table)
        if not involved:
            return None
        return cls({(t.name, t.schema): _violations(connection, t.name, t.schema) for t in involved})

    def __call__(self, context: Any) -> None:
        for (name, schema), before in self.tables.items():
            if before is None:
                continue  # the check failed already when planned (a foreign key to a non-unique key)
            now = _violations(context.connection, name, schema, strict=True) or 0
            if now > before:
                raise MigrationError(
                    f"{now - before} more row(s) of {name} violate its foreign keys after the table rebuild "
                    f"(PRAGMA foreign_key_check); nothing was changed"
                )


def _violations(connection: sa.Connection, table: str, schema: str | None, *, strict: bool = False) -> int | None:
    """Rows of `table` violating its foreign keys (0 when it does not exist; None when SQLite cannot check)."""
    prefix = f'"{schema}".' if schema else ""
    quoted = table.replace('"', '""')
    try:
        return len(connection.exec_driver_sql(f'PRAGMA {prefix}foreign_key_check("{quoted}")').fetchall())
    except sa.exc.DBAPIError:
        if strict:
            raise
        return None


def _rows_only(sql: str) -> bool:
    """True when every statement of `sql` reads or writes rows only (no DDL, no PRAGMA)."""
    text = _without_comments(sql)
    starts = [0] + [i + 1 for a, b, kind in _scan(text) if kind == "code" for i in range(a, b) if text[i] == ";"]
    words = [_FIRST_WORD.match(text, start) for start in starts]
    return all(word is None or word.group(1).lower() in _ROW_WORDS for word in words)


def _identifiers(sql: str) -> frozenset[str]:
    names = set()
    for kind, text in norm.tokenize(_without_comments(sql)):
        if kind == "word":
            names.add(text.lower())
        elif kind == "quoted":
            closing = text[-1]
            names.add(text[1:-1].replace(closing * 2, closing).lower())
    return frozenset(names)


def _without_comments(sql: str) -> str:
    return "".join(sql[a:b] for a, b, kind in _scan(sql) if kind != "comment")


def _scan(sql: str) -> Iterator[tuple[int, int, str]]:
    """Spans of `sql`: ``quoted`` (strings and names), ``comment`` and ``code`` pieces."""
    position, length = 0, len(sql)
    closing = {"'": "'", '"': '"', "`": "`", "[": "]"}
    while position < length:
        char = sql[position]
        if char in closing:
            end = sql.find(closing[char], position + 1)
            while end != -1 and char != "[" and sql.startswith(closing[char] * 2, end):
                end = sql.find(closing[char], end + 2)
            end = length if end == -1 else end + 1
            yield position, end, "quoted"
        elif sql.startswith("--", position) or sql.startswith("/*", position):
            end = sql.find("\n", position) if char == "-" else sql.find("*/", position + 2)
            end = length if end == -1 else end + (0 if char == "-" else 2)
            yield position, end, "comment"
        else:
            end = position + 1
            while end < length and sql[end] not in closing and not sql.startswith(("--", "/*"), end):
                end += 1
            yield position, end, "code"
        position = end


def _elements(sql: str) -> list[tuple[int, int]]:
    """Spans of the top-level comma-separated elements inside the first parentheses of `sql`."""
    spans: list[tuple[int, int]] = []
    depth, start = 0, 0
    for a, b, kind in _scan(sql):
        if kind != "code":
            continue
        for position in range(a, b):
            char = sql[position]
            if char == "(":
                depth += 1
                start = position + 1 if depth == 1 else start
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return spans + [(start, position)]
            elif char == "," and depth == 1:
                spans.append((start, position))
                start = position + 1
    return []


def table_constraints(table_sql: str) -> list[str]:
    """The table constraints (``CONSTRAINT …``, ``CHECK``, ``UNIQUE``, ``FOREIGN KEY``, ``PRIMARY KEY``) of a ``CREATE TABLE`` text."""
    found = []
    for a, b in _elements(table_sql):
        text = table_sql[a:b].strip()
        tokens = norm.tokenize(_without_comments(text))
        if tokens and tokens[0][0] == "word" and tokens[0][1].lower() in _CONSTRAINT_WORDS:
            found.append(text + ("\n" if "--" in text else ""))
    return found


def canonical_sql(text: str) -> str:
    """`text` compared loosely: comments and spacing dropped, names unquoted and lower-cased."""
    parts = []
    for kind, token in norm.tokenize(_without_comments(text)):
        if kind == "quoted" and token[0] != "'":
            parts.append(token[1:-1].replace(token[-1] * 2, token[-1]).lower())
        else:
            parts.append(token.lower() if kind == "word" else token)
    return " ".join(parts)


def _short(text: str) -> str:
    text = " ".join(_without_comments(text).split())
    return text if len(text) <= 60 else text[:57] + "..."


def column_definitions(table_sql: str) -> dict[str, str]:
    """Lower-cased column name -> its definition as written in a ``CREATE TABLE`` text."""
    found: dict[str, str] = {}
    for a, b in _elements(table_sql):
        text = table_sql[a:b].strip()
        tokens = norm.tokenize(_without_comments(text))
        if not tokens or (tokens[0][0] == "word" and tokens[0][1].lower() in _CONSTRAINT_WORDS):
            continue
        kind, first = tokens[0]
        name = first[1:-1] if kind == "quoted" else first
        found.setdefault(name.lower(), text + ("\n" if "--" in text else ""))
    return found


def _spliced(create: str, count: int, definitions: dict[str, str], columns: list[str], constraints: Iterable[str]) -> str:
    """`create` (a ``CREATE TABLE`` whose first `count` elements are columns) with the columns named in
    `definitions` defined so instead, `columns` added after its columns and `constraints` at its end."""
    constraints = list(constraints)
    if not (definitions or columns or constraints):
        return create
    spans = _elements(create)
    edits: list[tuple[int, int, int, str]] = []  # start, order at that place, end, text
    for a, b in spans[:count]:
        name = next(iter(column_definitions(f"({create[a:b]})")), None)
        if name in definitions:
            edits.append((a, 0, b, definitions[name]))
    if columns:
        edits.append((spans[count - 1][1], 1, spans[count - 1][1], ", " + ", ".join(columns)))
    if constraints:
        edits.append((spans[-1][1], 2, spans[-1][1], ", " + ", ".join(constraints)))
    for a, _, b, text in sorted(edits, reverse=True):
        create = create[:a] + text + create[b:]
    return create


def _statement_groups(step: "Step") -> list[list[Any]]:
    """The statements of each operation of `step`, in order."""
    groups: list[list[Any]] = []
    position = 0
    for operation in step.operations:
        group = []
        while position < len(step.statements) and step.statements[position].operation is operation:
            group.append(step.statements[position])
            position += 1
        groups.append(group)
    return groups
