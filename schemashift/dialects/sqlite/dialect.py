"""SQLite: capabilities, SQL compilation, normalisation of reflected schemas, locking."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from schemashift import operations as ops
from schemashift.dialects.base import Dialect, poll_lock, table_at
from schemashift.dialects.sqlite import live
from schemashift.errors import ConnectionFailed
from schemashift.model import normalize as norm
from schemashift.model.schema import Column, Schema, Table
from schemashift.model.types import Type
from schemashift.sqla.types import from_sa_type

if TYPE_CHECKING:
    from schemashift.planning.plan import Plan
    from schemashift.reflection.core import RawSchema

# --- helpers of the SQL compilation and locking sections (below) ---------------

#: The name of the new table of a rebuild starts so (`SQLiteDialect.rebuild`); an extension's operation whose
#: compiled statements create such a table is a rebuild too.
REBUILD_PREFIX = "_schemashift_new_"

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
    column = column.on("sqlite")
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
    objects_module = "schemashift.dialects.sqlite.objects"

    name = "sqlite"
    keeps_create_table_layout = True  # SQLAlchemy's inspector reads a generated column's expression from its own line

    # --- SQL compilation (owned by the dialects work) ---------------------

    transactional_ddl = True
    autocommits_ddl = True
    char_length_function = "length"
    rebuilds_tables = True
    supports_comments = False

    def check_connection(self, connection: sa.Connection) -> None:
        """Make a non-database file fail here with a clear message, not mid-migration."""
        try:
            connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
            connection.commit()
        except sa.exc.DBAPIError as exc:
            database = connection.engine.url.database
            raise ConnectionFailed(f"cannot open SQLite database {database}: {exc.orig}") from None

    def read_tables(self, connection: sa.Connection, schema: str | None) -> RawSchema:
        """The catalogue of `schema` through the bulk reader of ``sqlite/reflect.py``."""
        from schemashift.dialects.sqlite.reflect import read

        return read(connection, schema)

    def sa_dialect(self) -> sa.engine.Dialect:
        """SQLAlchemy's SQLite dialect."""
        return sqlite.dialect()

    def compile_add_column(self, op: ops.AddColumn, before: Schema, after: Schema) -> list[str]:
        """``ADD COLUMN`` when SQLite allows it (nullable or constant default, not in the key), else a rebuild.

        A column with a one-off fill is added with it as its default, then rebuilt without (see `add_filled_column`).
        """
        if op.fill is not None:
            return self.add_filled_column(op, before, after)
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

    def compile_rename_constraint(self, op: ops.RenameConstraint, before: Schema, after: Schema) -> list[str]:
        """A table rebuild: SQLite keeps constraint names only in the table's ``CREATE TABLE`` text."""
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
        if isinstance(op, (ops.DropColumn, ops.AlterColumn, ops.AddConstraint, ops.DropConstraint,
                           ops.RenameConstraint)):
            return table_at(before, op.table_key), table_at(after, op.table_key)
        if ops.is_extension(op) and op.table_key and any(
                sql.lstrip().upper().startswith("CREATE TABLE") and REBUILD_PREFIX in sql
                for sql in self.compile(op, before, after)):
            return table_at(before, op.table_key), table_at(after, op.table_key)  # an extension's own rebuild
        return None

    def rebuild(self, old: Table, new: Table, after: Schema, carried: live.Carried | None = None) -> list[str]:
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
        carried = carried or live.Carried()
        temp = f"{REBUILD_PREFIX}{new.name}"
        created = self.sa_table_for(new, after, name=temp, include_indexes=False)
        source, target = self.table_name(old.name, old.schema), self.table_name(temp, new.schema)
        statements = [self._drop(o) for o in reversed(carried.dependents)]
        create = self.create_table_sql(created)
        redefined = {c.name.lower(): c.definition for c in carried.definitions}
        statements.append(live.spliced(create, len(new.columns), redefined,
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

    def expected(self, tables: Iterable[Table], after: Schema) -> live.Expected:
        """What the migrations give the versions `tables` of one table (see `Expected`)."""
        tables = list(tables)
        constraints: set[str] = set()
        definitions: list[dict[str, str]] = []
        for table in tables:
            create = self.ddl(sa.schema.CreateTable(self.sa_table_for(table, after, include_indexes=False)))
            constraints.update(live.canonical_sql(text) for text in live.table_constraints(create))
            columns = live.column_definitions(create)
            definitions.append({name: live.canonical_sql(text) for name, text in columns.items()})
        unchanged = {name: text for name, text in definitions[0].items()
                     if all(d.get(name) == text for d in definitions)}
        earlier = {c.lower() for t in tables[:-1] for c in t.column_names}
        return live.Expected(frozenset(c.lower() for t in tables for c in t.column_names),
                        frozenset(i.name.lower() for t in tables for i in t.indexes), frozenset(constraints), unchanged,
                        frozenset(c.lower() for c in tables[-1].column_names) - earlier)

    def _drop(self, dropped: live.LiveObject) -> str:
        return f"DROP {dropped.kind.upper()} {self.table_name(dropped.name, dropped.schema)}"

    def _copied(self, old: Column, new: Column) -> str:
        """The SELECT expression carrying `old`'s values into `new`."""
        old, new = old.on(self.name), new.on(self.name)
        value = self.quote(old.name)
        if old.type != new.type and new.type.kind in _CASTS:
            value = f"CAST({value} AS {self.type_sql(new.type.evolve(collation=None))})"  # CAST takes no COLLATE
        if old.nullable and not new.nullable and new.default is not None:
            value = f"COALESCE({value}, {new.default})"
        return value

    # --- what only the live database has, carried through rebuilds (see `sqlite_live`) --------

    def adapt_to_live(self, connection: sa.Connection, plan: Plan) -> Plan:
        """`plan` with each table rebuild carrying over what only the live database has (`sqlite_live.adapt`)."""
        return live.adapt(self, connection, plan)

    def adapt_offline(self, plan: Plan) -> Plan:
        """`plan` for a script written without a database: each rebuild says what it cannot know."""
        return live.adapt_offline(self, plan)

    # --- normalisation for comparison (owned by the reflection work) -------

    class Normalizer(norm.Normalizer):
        """SQLite's canonical form for comparison (see `schema.normalize`).

        SQLite keeps the declared type names, so most types compare as declared;
        but it has no enum (VARCHAR), no UUID (CHAR(32)), no time zones, comments,
        identities, and all floats are 8-byte REALs. A
        column is autoincrement exactly when it is the table's single-column
        ``INTEGER`` primary key (a rowid alias). Constraint names are stored as
        written and none are generated.
        """

        dialect = "sqlite"
        keeps_comments = False
        case_sensitive_quotes = False
        has_identity = False
        option_prefix = "sqlite"
        dialect_names = ("sqlite",)
        partial_indexes = True

        def parse_type(self, sql: str) -> Type | None:
            from schemashift.dialects.sqlite.reflect import parse_declared_type

            return from_sa_type(parse_declared_type(sql))

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
                return typ.evolve(timezone=False, precision=None)
            if kind == "interval":  # emulated as DATETIME
                return Type("datetime")
            if kind in ("string", "text"):  # collation names are case-insensitive; BINARY is the default
                collation = (typ.collation or "").upper()
                return typ.evolve(collation=None if collation in ("", "BINARY") else collation, variant=None)
            if kind == "binary":
                return typ.evolve(length=None, variant=None)
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

    def create_scratch_database(self, server: sa.URL, name: str, folder: Path) -> str:
        """A database file `name`.db in `folder` (created on first connection)."""
        return server.set(database=str(folder / f"{name}.db")).render_as_string(hide_password=False)

    def drop_scratch_database(self, server: sa.URL, name: str, folder: Path) -> None:
        """Remove the file and its lock file."""
        for suffix in (".db", ".db.schemashift-lock", ".db-journal", ".db-wal"):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)

    def database_missing(self, url: sa.URL) -> bool:
        """A plain file path that does not exist yet (connecting would create an empty file)."""
        database = url.database or ""
        if not database or database == ":memory:" or database.startswith("file:") or url.query.get("uri"):
            return False
        return not Path(database).exists()

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
