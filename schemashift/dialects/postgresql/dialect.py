"""PostgreSQL: capabilities, SQL compilation, normalisation of reflected schemas, locking."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.named_types import CreateEnumType, DropEnumType

from schemashift import operations as ops
from schemashift.dialects.base import (
    Dialect,
    SafeForm,
    SafeSql,
    native_enum_of,
    native_enums,
    poll_lock,
    release_quietly,
    run_settled,
    table_at,
    with_enum,
)
from schemashift.model import normalize as norm
from schemashift.model.schema import (
    CheckConstraint,
    Column,
    Constraint,
    ForeignKey,
    Identity,
    Index,
    PrimaryKey,
    Schema,
    Table,
    UniqueConstraint,
)
from schemashift.model.types import Type, rewrites_storage
from schemashift.operations.statement import Trace, TraceKind
from schemashift.sqla.types import from_sa_type, to_sa_type

if TYPE_CHECKING:
    from schemashift.config import EnvConfig
    from schemashift.model.schema import Sequence
    from schemashift.reflection.core import RawSchema


# --- helpers of the SQL compilation and locking sections (below) ---------------


#: ``ALTER TYPE … ADD VALUE``: its new value is unusable until committed, so it runs outside the transaction.
_ADD_VALUE = re.compile(r"^\s*ALTER\s+TYPE\s+.+\s+ADD\s+VALUE\b", re.IGNORECASE | re.DOTALL)
#: Statements PostgreSQL refuses inside a transaction block: ``CREATE/DROP INDEX CONCURRENTLY``, ``REINDEX …
#: CONCURRENTLY``, ``DETACH PARTITION … CONCURRENTLY``, ``VACUUM``, ``CREATE/DROP DATABASE``/``TABLESPACE``.
_NO_TRANSACTION = re.compile(
    r"^\s*(?:(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\b.*?|ALTER\s+TABLE\b.*?\bDETACH\s+PARTITION\b.*?)"
    r"\s+CONCURRENTLY\b|VACUUM\b|ALTER\s+SYSTEM\b|(?:CREATE|DROP)\s+(?:DATABASE|TABLESPACE)\b)",
    re.IGNORECASE | re.DOTALL,
)
#: ``CREATE [UNIQUE] INDEX CONCURRENTLY name``: a failure leaves the index behind, INVALID.
_CONCURRENT_INDEX = re.compile(
    r'^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>"(?:[^"]|"")+"|[^\s"(]+)\s+ON\b',
    re.IGNORECASE,
)
#: Statements that take a lock blocking writes (ACCESS EXCLUSIVE, SHARE, SHARE ROW EXCLUSIVE): safe mode runs them
#: under ``lock_timeout``.
_STRONG_LOCK = re.compile(
    r"^\s*(?:ALTER\s+(?:TABLE|INDEX|SEQUENCE)|DROP\s+TABLE|TRUNCATE|COMMENT\s+ON|(?:CREATE|DROP)\s+TRIGGER"
    r"|CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY\b)|DROP\s+INDEX\s+(?!CONCURRENTLY\b))",
    re.IGNORECASE,
)
#: SQLSTATE of ``lock_not_available`` (``lock_timeout`` expired).
_LOCK_NOT_AVAILABLE = "55P03"
#: How safe mode explains refusing a type change that rewrites the table.
_EXPAND_CONTRACT = (
    "changing {column}'s type from {old} to {new} rewrites {table} under an ACCESS EXCLUSIVE lock; in safe mode "
    "do it as expand/contract: add a new column, backfill it in batches, switch the code over, drop the old "
    "one (or allow(op, SS205=\"why\") in the migration, or safe = false for the environment)"
)
#: How PostgreSQL shows ``x IN (…)`` / ``x NOT IN (…)`` in reflected checks: ``x = ANY (ARRAY[…])``.
_ANY_ARRAY = re.compile(
    r"(?P<op>=\s*ANY|<>\s*ALL)\s*\(\s*\(?\s*ARRAY\s*\[(?P<items>[^\]]*)\]\s*\)?\s*(?:::[\w ]+\[\])?\s*\)",
    re.IGNORECASE,
)


def _in_list(sql: str) -> str:
    """`sql` with ``= ANY (ARRAY[…])`` written back as ``IN (…)`` (and ``<> ALL`` as ``NOT IN``)."""
    return _ANY_ARRAY.sub(lambda m: (" IN (" if m["op"].startswith("=") else " NOT IN (") + m["items"] + ")", sql)


def _concurrently(sql: str, verb: str) -> str:
    """``CREATE [UNIQUE] INDEX`` / ``DROP INDEX`` made ``… CONCURRENTLY`` (once)."""
    pattern = r"^(\s*CREATE\s+(?:UNIQUE\s+)?INDEX)\s+" if verb == "CREATE" else r"^(\s*DROP\s+INDEX)\s+"
    return re.sub(pattern + r"(?!CONCURRENTLY\b)", r"\1 CONCURRENTLY ", sql, count=1, flags=re.IGNORECASE)


def _advisory_key(name: str) -> int:
    """A signed 64-bit key for `name`, the same in every process."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


#: SQLSTATEs of a lost write race: unique violation, serialization failure, deadlock.
_CONFLICT_STATES = frozenset({"23505", "40001", "40P01"})
#: `connection.info` key: this DBAPI connection reaches PostgreSQL through a pooler (see `behind_pooler`).
_POOLED = "schemashift.pooled"


def behind_pooler(connection: sa.Connection) -> bool:
    """True when `connection` goes through a pooler (PgBouncer, pgcat, RDS Proxy …); remembered per connection.

    A pooler hands the client its own cancel key, so the backend process id the driver got at
    connection time differs from the ``pg_backend_pid()`` of the server connection that answers.
    Drivers that do not expose the former count as direct.
    """
    info = connection.connection.info
    if _POOLED not in info:
        raw: Any = connection.connection.dbapi_connection
        announced = getattr(getattr(raw, "info", None), "backend_pid", None)
        if announced is None and hasattr(raw, "get_backend_pid"):
            announced = raw.get_backend_pid()
        info[_POOLED] = announced is not None and run_settled(connection, "SELECT pg_backend_pid()") != announced
    return bool(info[_POOLED])


def pooled(connection: sa.Connection, env: EnvConfig) -> bool:
    """True when `connection` goes through a transaction pooler, as `env.pooler` declares, else when
    `behind_pooler` finds any pooler (its mode cannot be seen from the client: assume the stricter one)."""
    if env.pooler is not None:
        connection.connection.info[_POOLED] = env.pooler == "transaction"
        return env.pooler == "transaction"
    return behind_pooler(connection)


def unprepared(connection: sa.Connection) -> None:
    """Turn psycopg 3's automatic prepared statements off: a pooler mixes them up between server connections."""
    raw: Any = connection.connection.dbapi_connection
    if hasattr(raw, "prepare_threshold"):
        raw.prepare_threshold = None


def set_locally(connection: sa.Connection, statements: list[str]) -> None:
    """Run `statements` (``SET LOCAL …``) at the start of each transaction `connection` begins."""
    if not statements:
        return

    def begin(conn: sa.Connection) -> None:
        raw = conn.connection.dbapi_connection
        if raw is None or getattr(raw, "autocommit", False):
            return  # outside a transaction block SET LOCAL does nothing
        cursor = raw.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()

    sa.event.listen(connection, "begin", begin)


def _same_but_values(old: Type, new: Type) -> bool:
    """True when `old` and `new` are the same native enum (or array of it) but for its values."""
    old_enum, new_enum = native_enum_of(old), native_enum_of(new)
    if old_enum is None or new_enum is None or old_enum.name != new_enum.name:
        return False
    return with_enum(old, new_enum) == new


def _extends(old: tuple[str, ...], new: tuple[str, ...]) -> bool:
    """True when `new` only inserts values into `old`, keeping their order."""
    return [value for value in new if value in set(old)] == list(old)


def _rewrites_column(old: Type, new: Type) -> bool:
    """True when changing `old` into `new` alters the column's type (not just its enum's values)."""
    if old == new:
        return False
    old_enum, new_enum = native_enum_of(old), native_enum_of(new)
    if old_enum is None or new_enum is None or not _same_but_values(old, new):
        return True
    return not _extends(old_enum.values, new_enum.values)


def _text_cast(typ: Type) -> str:
    """The cast to text that converting from a native enum (or enum array) needs first."""
    if native_enum_of(typ) is None:
        return ""
    return "::text[]" if typ.kind == "array" else "::text"


def _stored(column: Column) -> Column:
    """`column`, a generated one of unstated kind marked STORED."""
    if column.computed is None or column.computed.persisted is not None:
        return column
    return column.evolve(computed=replace(column.computed, persisted=True))


def _is_serial(column: Column) -> bool:
    """True for an integer column filled from its own sequence (SERIAL)."""
    plain = column.identity is None and column.default is None and column.computed is None and column.sequence is None
    return column.autoincrement and plain and column.type.is_integer


#: A column an operation changes: (table key, column name, new definition).
_Own = tuple[str, str, Column]


def _current_enum(before: Schema, enum: Type, skip: tuple[str, str] | None = None) -> Type | None:
    """The enum named like `enum` as `before`'s columns (but `skip`) have it: `enum` itself when one of them
    has exactly it (the type already has those values), else the first one's; None when none uses the name."""
    found: list[Type] = []
    for key, name in before.enum_users(enum.name or ""):
        if (key, name) != skip:
            current = native_enum_of(before.table(key).column(name).type.on("postgresql"))
            if current is not None:
                found.append(current)
    return enum if enum in found else (found[0] if found else None)


def _identity_settings(old: Identity, new: Identity) -> list[str]:
    """``SET GENERATED …``, ``SET START WITH …``, ``SET INCREMENT BY …`` for what changed."""
    settings: list[str] = []
    if old.always != new.always:
        settings.append(f"SET GENERATED {'ALWAYS' if new.always else 'BY DEFAULT'}")
    if old.start != new.start:
        settings.append(f"SET START WITH {1 if new.start is None else new.start}")
    if old.increment != new.increment:
        settings.append(f"SET INCREMENT BY {1 if new.increment is None else new.increment}")
    return settings


class PostgreSQLDialect(Dialect):
    """PostgreSQL."""
    supports_materialized_views = True
    supports_functions = True
    supports_extensions = True
    supports_policies = True
    triggers_per_table = True
    renames_in_place = frozenset({"view", "function", "trigger", "policy"})
    objects_module = "schemashift.dialects.postgresql.objects"

    name = "postgresql"

    # --- SQL compilation (owned by the dialects work) ---------------------

    transactional_ddl = True
    builds_side_by_side = True
    remote_catalogue = True
    max_identifier_length = 63  # NAMEDATALEN - 1 bytes: longer names are silently cut
    identifier_length_in_bytes = True
    native_enum = True
    supports_schemas = True
    concurrent_index = True
    not_valid_constraints = True
    supports_sequences = True
    dml_in_cte = True
    sequences_need_reset = True
    driver_extra = "postgresql"

    def read_tables(self, connection: sa.Connection, schema: str | None) -> RawSchema:
        """The catalogue of `schema` through the bulk reader of ``postgresql/reflect.py``."""
        from schemashift.dialects.postgresql.reflect import read

        return read(connection, schema)

    def read_sequences(self, connection: sa.Connection, schema: str | None, key_schema: str | None) -> list[Sequence]:
        """The standalone sequences of `schema` (see ``postgresql/reflect.py``)."""
        from schemashift.dialects.postgresql.reflect import read_sequences

        return read_sequences(connection, schema, key_schema)

    def runs_in_transaction(self, sql: str) -> bool:
        """False for ``ALTER TYPE … ADD VALUE``.

        A value added in a transaction cannot be used before it commits, so a
        migration that adds a value and then uses it (a default, an UPDATE, a cast)
        would fail. Such a migration runs journaled, statement by statement (see
        `executor`): the ADD VALUE commits at once, ``IF NOT EXISTS`` makes it safe to repeat.
        Also False for statements PostgreSQL refuses in a transaction block (``CREATE INDEX CONCURRENTLY``…).
        """
        return not (_ADD_VALUE.match(sql) or _NO_TRANSACTION.match(sql))

    def leftovers_of_failure(self, connection: sa.Connection, sql: str, error: str) -> list[str]:
        """A failed ``CREATE INDEX CONCURRENTLY`` leaves its index INVALID: drop it (it is this statement's own).

        Not when the failure was that the name exists: then the index is someone else's.
        """
        match = _CONCURRENT_INDEX.match(sql)
        if match is None or "already exists" in error:
            return []
        name = match["name"]
        name = name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()
        query = sa.text(
            "SELECT n.nspname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = :name AND NOT i.indisvalid AND n.nspname = ANY (current_schemas(false))")
        schemas = [row[0] for row in connection.execute(query, {"name": name})]
        if connection.in_transaction():
            connection.commit()
        return [f"DROP INDEX CONCURRENTLY IF EXISTS {self.quote(schema)}.{self.quote(name)}" for schema in schemas[:1]]

    # --- safe mode (`schemashift.planning.safe`) ---------------------------

    # on unless ``safe = false``: a rewriting type change is refused only on tables above ``safe_rewrite_rows``
    safe_by_default = True
    # VOLATILE functions (``now()``, ``CURRENT_TIMESTAMP`` are STABLE: stored once, no rewrite)
    volatile_defaults = re.compile(r"\b(?:random|random_normal|gen_random_uuid|uuid_generate_v\w*|uuidv[47]|"
                                   r"clock_timestamp|timeofday|nextval)\s*\(", re.IGNORECASE)

    def takes_lock(self, sql: str) -> bool:
        """True for ALTER TABLE/INDEX/SEQUENCE, DROP TABLE, plain CREATE/DROP INDEX and the like."""
        return bool(_STRONG_LOCK.match(sql))

    def lock_timeout_sql(self, seconds: float, *, in_transaction: bool = True) -> tuple[str, str | None] | None:
        """``SET LOCAL lock_timeout`` (milliseconds): it holds for the statement's transaction only; outside a
        transaction (``… CONCURRENTLY``) ``SET lock_timeout``, then ``RESET lock_timeout``."""
        value = f"lock_timeout = '{max(1, round(seconds * 1000))}ms'"
        return (f"SET LOCAL {value}", None) if in_transaction else (f"SET {value}", "RESET lock_timeout")

    def lock_timed_out(self, error: BaseException) -> bool:
        """True for SQLSTATE 55P03 (``lock_not_available``)."""
        original = getattr(error, "orig", None) or error
        code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
        return code == _LOCK_NOT_AVAILABLE or "lock timeout" in str(original)

    def estimated_rows(self, connection: sa.Connection, table: str, schema: str | None) -> float | None:
        """``pg_class.reltuples`` (None when the table was never analyzed: -1 since PostgreSQL 14)."""
        query = sa.text(
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = :name AND c.relkind IN ('r', 'p') AND n.nspname = COALESCE(:schema, current_schema())")
        row = connection.execute(query, {"name": table, "schema": schema}).first()
        if row is None:
            return 0.0
        return None if row[0] is None or row[0] < 0 else float(row[0])

    def safe_form(self, operation: ops.Operation, before: Schema, after: Schema, plain: list[str], *,
                  volatile: frozenset[str] = frozenset()) -> SafeForm | None:
        """CONCURRENTLY for indexes, NOT VALID + VALIDATE for foreign keys and checks, a validated CHECK under
        SET NOT NULL, a concurrently built index under UNIQUE/PRIMARY KEY, a NOT NULL column with a volatile
        default added in steps around a batched backfill; a rewriting type change refused."""
        if isinstance(operation, ops.CreateIndex) and len(plain) == 1:
            return SafeForm((SafeSql(_concurrently(plain[0], "CREATE")),), frozenset({"SS201"}))
        if isinstance(operation, ops.DropIndex) and len(plain) == 1:
            return SafeForm((SafeSql(_concurrently(plain[0], "DROP")),))
        if isinstance(operation, ops.AddConstraint) and len(plain) == 1:
            return self._safe_constraint(operation, after, plain[0])
        if isinstance(operation, ops.AlterColumn) and operation.old is not None:
            return self._safe_alter_column(operation, plain)
        if isinstance(operation, ops.AddColumn):
            return self.batched_add_column(operation, before, "SS206", volatile)
        return None

    def volatile_functions(self, connection: sa.Connection) -> frozenset[str]:
        """Every function ``pg_proc`` marks VOLATILE outside the system catalog (an extension's, a user's): a
        column added with one in its default makes PostgreSQL rewrite the table."""
        rows = connection.exec_driver_sql(
            "SELECT DISTINCT lower(p.proname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.provolatile = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')").scalars().all()
        if connection.in_transaction():
            connection.commit()
        return frozenset(str(name) for name in rows)

    def _safe_constraint(self, op: ops.AddConstraint, after: Schema, plain: str) -> SafeForm | None:
        table = table_at(after, op.table_key)
        constraint = op.constraint
        name = constraint.name or self.default_constraint_name(table, constraint)
        if name is None:
            return None
        alter = self.alter_table(op.table, op.schema)
        if isinstance(constraint, (ForeignKey, CheckConstraint)):
            added = plain if constraint.name else plain.replace(f"{alter} ADD ", f"{alter} ADD CONSTRAINT "
                                                                 f"{self.quote(name)} ", 1)
            code = "SS202" if isinstance(constraint, ForeignKey) else "SS203"
            validate = f"{alter} VALIDATE CONSTRAINT {self.quote(name)}"
            return SafeForm((SafeSql(f"{added} NOT VALID"), SafeSql(validate, locks=False)), frozenset({code}))
        if isinstance(constraint, (UniqueConstraint, PrimaryKey)):
            columns = ", ".join(self.quote(column) for column in constraint.columns)
            # IF NOT EXISTS: after a crash the journal cannot tell a finished build (a valid index) from none; an
            # unfinished one (INVALID) is dropped first (`leftovers_of_failure`)
            index = (f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {self.quote(name)} "
                     f"ON {self.table_name(op.table, op.schema)} ({columns})")
            kind = "UNIQUE" if isinstance(constraint, UniqueConstraint) else "PRIMARY KEY"
            attach = f"{alter} ADD CONSTRAINT {self.quote(name)} {kind} USING INDEX {self.quote(name)}"
            return SafeForm((SafeSql(index), SafeSql(attach)), frozenset({"SS207"}))
        return None

    def _rewrites_table(self, old: Type, new: Type) -> bool:
        """True when changing a column from `old` to `new` rewrites the table: not for the same type in
        PostgreSQL's terms, values added to a native enum (``ADD VALUE``), nor a widening `rewrites_storage` allows."""
        if self.type_sql(old) == self.type_sql(new) or not _rewrites_column(old, new):
            return False
        return rewrites_storage(old, new)

    def _safe_alter_column(self, op: ops.AlterColumn, plain: list[str]) -> SafeForm | None:
        assert op.old is not None
        changed = set(op.changes)
        if "type" in changed and self._rewrites_table(op.old.type.on(self.name), op.new.type.on(self.name)):
            reason = _EXPAND_CONTRACT.format(column=op.column, old=self.type_sql(op.old.type),
                                             new=self.type_sql(op.new.type), table=op.table_key)
            return SafeForm(refusal=("SS205", reason))
        if changed != {"nullable"} or op.new.nullable:
            return None
        column = self.quote(op.column)
        alter = self.alter_table(op.table, op.schema)
        name = f"ss_nn_{_advisory_key(f'{op.table_key}.{op.column}') & 0xFFFFFFFF:08x}"
        check = self.quote(name)
        fills = [SafeSql(sql, locks=False) for sql in plain if sql.startswith("UPDATE ")]

        def trace(kind: TraceKind, traced: str = name) -> Trace:
            return Trace(kind, op.table, op.schema, traced)

        return SafeForm((
            *fills,
            SafeSql(f"{alter} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID", trace=trace("check")),
            SafeSql(f"{alter} VALIDATE CONSTRAINT {check}", locks=False, trace=trace("validated")),
            SafeSql(f"{alter} ALTER COLUMN {column} SET NOT NULL", trace=trace("not_null", op.column)),
            SafeSql(f"{alter} DROP CONSTRAINT {check}", trace=trace("no_check")),
        ), frozenset({"SS204"}))

    def compile_rename_table(self, op: ops.RenameTable, before: Schema, after: Schema) -> list[str]:
        """``RENAME TO``, and the sequences of its SERIAL and identity columns renamed with it.

        PostgreSQL names them ``<table>_<column>_seq`` when it makes them, and leaves
        them be on a rename; ``create_all`` of the renamed table would name them after it.
        """
        statements = super().compile_rename_table(op, before, after)
        table = before.tables.get(op.table_key or "")
        for column in table.columns if table is not None else ():
            if _is_serial(column) or column.identity is not None:
                old = norm.object_name(op.table, column.name, "seq")
                new = norm.object_name(op.new_name, column.name, "seq")
                statements.append(
                    f"ALTER SEQUENCE IF EXISTS {self.table_name(old, op.schema)} RENAME TO {self.quote(new)}"
                )
        return statements

    def joins_statements_on(self, connection: sa.Connection) -> bool:
        """Yes, but not through asyncpg: SQLAlchemy prepares each call there, and a prepared statement holds one
        command."""
        return connection.dialect.driver != "asyncpg"

    def sa_dialect(self) -> sa.engine.Dialect:
        """SQLAlchemy's PostgreSQL dialect (compiling needs no driver)."""
        return postgresql.dialect()  # type: ignore[no-untyped-call]

    def defer_durability(self, connection: sa.Connection) -> object | None:
        """``synchronous_commit = off`` for the session; the earlier value is the token (None when already off).

        A commit then returns before its WAL reaches disk; a server crash can
        lose the last such transactions, whole (never part of one), while the
        next synchronous commit flushes every earlier one.
        """
        if connection.info.get(_POOLED):
            return None  # the setting would stay on a shared server connection
        previous = run_settled(connection, "SELECT current_setting('synchronous_commit')")
        if previous == "off":
            return None
        run_settled(connection, "SELECT set_config('synchronous_commit', 'off', false)")
        return previous

    def restore_durability(self, connection: sa.Connection, token: object) -> None:
        """Put `synchronous_commit` back to the value `defer_durability` found."""
        run_settled(connection, "SELECT set_config('synchronous_commit', :value, false)", {"value": token})

    def copy_rows(self, connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> bool:
        """``COPY … FROM STDIN`` through psycopg 3 (one round trip for thousands of rows); other drivers: False."""
        if not rows or connection.dialect.driver != "psycopg":
            return False
        keys = list(rows[0])
        preparer = connection.dialect.identifier_preparer
        columns = ", ".join(preparer.quote(key) for key in keys)
        raw = connection.connection.dbapi_connection
        if raw is None:
            return False
        cursor: Any = raw.cursor()  # psycopg's own cursor: `copy` is not DB-API
        try:
            with cursor.copy(f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[key] for key in keys])
        finally:
            cursor.close()
        return True

    def flush_commits(self, connection: sa.Connection) -> None:
        """A transaction given an xid (``txid_current()``) commits durably, which flushes the WAL of every
        earlier commit too."""
        run_settled(connection, "SELECT pg_catalog.txid_current()")

    def ddl_column(self, column: Column) -> Column:
        """As in `Dialect`, with a generated column of unstated kind made STORED (the only kind before
        PostgreSQL 18)."""
        return super().ddl_column(_stored(column))

    def enum_setup(self, columns: Iterable[Column], before: Schema) -> list[str]:
        """``CREATE TYPE … AS ENUM`` for each native enum of `columns` that `before` does not use yet.

        An enum that `before`'s columns use with other values is changed for all of
        them (the first operation bringing new values changes the type, see `_change_type`).
        """
        statements: list[str] = []
        for enum in native_enums(column.on(self.name) for column in columns):  # variants: this database's type
            current = _current_enum(before, enum)
            if current is None:
                statements.append(self._enum_ddl(CreateEnumType, enum))
            elif current != enum:
                statements += self._change_values(current, enum, before)
        return statements

    def enum_cleanup(self, columns: Iterable[Column], after: Schema) -> list[str]:
        """``DROP TYPE`` for each native enum of `columns` that `after` no longer uses."""
        enums = native_enums(column.on(self.name) for column in columns)
        return [self._enum_ddl(DropEnumType, e) for e in enums if not after.enum_users(e.name or "")]

    def default_constraint_name(self, table: Table, constraint: Constraint) -> str | None:
        """PostgreSQL's own names: ``t_pkey``, ``t_a_b_key``, ``t_a_fkey``, ``t_a_check`` / ``t_check``.

        (A collision makes PostgreSQL append a number, which is not predicted.)
        """
        if isinstance(constraint, PrimaryKey):
            return f"{table.name}_pkey"
        if isinstance(constraint, CheckConstraint):
            # named after the one column the expression uses, if it uses exactly one
            words = {text.strip('"') for kind, text in norm.tokenize(constraint.sql) if kind in ("word", "quoted")}
            used = [name for name in table.column_names if name in words]
            return norm.object_name(table.name, used[0] if len(used) == 1 else None, "check")
        suffix = {UniqueConstraint: "key", ForeignKey: "fkey"}.get(type(constraint))
        return f"{table.name}_{'_'.join(constraint.columns)}_{suffix}" if suffix else None

    def compile_alter_column(self, op: ops.AlterColumn, before: Schema, after: Schema) -> list[str]:
        """One ``ALTER COLUMN`` clause per changed field, in an order PostgreSQL accepts.

        Existing NULLs take the default when the column becomes NOT NULL (see
        `fill_nulls`). A type change drops and restores the column default around ``TYPE … USING``
        (defaults rarely cast by themselves). A new generation expression cannot be
        altered in place (before PostgreSQL 17): the column is dropped and added
        again with its indexes.
        """
        assert op.old is not None  # resolved by `compile`
        changed = set(op.changes)
        if "computed" in changed and op.new.computed is not None:
            return self._regenerate(op, after)
        column = self._column_clause(op.table, op.schema, op.column)
        statements: list[str] = []
        if "computed" in changed:
            statements.append(f"{column} DROP EXPRESSION")
        if "identity" in changed and op.new.identity is None:
            statements.append(f"{column} DROP IDENTITY IF EXISTS")
        if "type" in changed:
            statements += self._change_type(op, before, after)
        if "nullable" in changed:
            statements += self.fill_nulls(op)
            statements.append(f"{column} {'DROP' if op.new.nullable else 'SET'} NOT NULL")
        statements += self._serial_change(op)
        if "sequence" in changed:
            if op.new.sequence is not None:
                statements.append(f"{column} SET DEFAULT {self.next_value_sql(op.new.sequence)}")
            elif op.new.default is None and not _is_serial(op.new):
                statements.append(f"{column} DROP DEFAULT")
        if "default" in changed and not _rewrites_column(op.old.type, op.new.type):
            default = op.new.default
            statements.append(f"{column} SET DEFAULT {default}" if default is not None else f"{column} DROP DEFAULT")
        if "identity" in changed and op.new.identity is not None:
            statements += self._identity_change(op)
        if "comment" in changed:
            statements.append(self._comment(op, after))
        return statements

    def _column_clause(self, table: str, schema: str | None, column: str) -> str:
        return f"{self.alter_table(table, schema)} ALTER COLUMN {self.quote(column)}"

    def _enum_ddl(self, element: type[sa.schema.ExecutableDDLElement], enum: Type) -> str:
        return self.ddl(element(to_sa_type(enum, self.name)))  # type: ignore[call-arg]

    def _type_name(self, enum: Type) -> str:
        preparer: Any = self._sa.identifier_preparer  # PostgreSQL's, with `format_type`
        return str(preparer.format_type(to_sa_type(enum, self.name)))

    def _change_type(self, op: ops.AlterColumn, before: Schema, after: Schema) -> list[str]:
        """A type change; when only an enum's values change, the shared type changes instead.

        The type changes once, for every column using it, by the first operation
        bringing the new values: when another column already has them, nothing is left to do.
        """
        assert op.old is not None
        old_enum, new_enum = native_enum_of(op.old.type), native_enum_of(op.new.type)
        if old_enum is not None and new_enum is not None and _same_but_values(op.old.type, op.new.type):
            if _current_enum(before, new_enum, skip=(op.table_key or "", op.column)) == new_enum:
                return []
            return self._change_values(old_enum, new_enum, before, (op.table_key or "", op.column, op.new))
        statements = self.enum_setup((op.new,), before)
        statements += self._retype(op.table, op.schema, op.old, op.new)
        return statements + self.enum_cleanup((op.old,), after)

    def _retype(self, table: str, schema: str | None, old: Column, new: Column) -> list[str]:
        """``ALTER COLUMN … TYPE … USING``, the default dropped before and restored after."""
        column = self._column_clause(table, schema, old.name)
        source = self.quote(old.name) + _text_cast(old.type)
        using = f"{source}::{self.type_sql(new.type.evolve(collation=None))}"
        statements = [f"{column} DROP DEFAULT"] if old.default is not None else []
        statements.append(f"{column} TYPE {self.type_sql(new.type)} USING {using}")
        if new.default is not None:
            statements.append(f"{column} SET DEFAULT {new.default}")
        return statements

    def _add_enum_values(self, old: Type, new: Type) -> list[str]:
        """``ALTER TYPE … ADD VALUE`` for each new value, placed BEFORE/AFTER its neighbour."""
        kept = set(old.values)
        first_kept = next((v for v in new.values if v in kept), None)
        statements: list[str] = []
        for position, value in enumerate(new.values):
            if value in kept:
                continue
            if first_kept is None:
                where = ""
            elif position < new.values.index(first_kept):
                where = f" BEFORE {self.literal(first_kept)}"
            else:
                where = f" AFTER {self.literal(new.values[position - 1])}"
            statements.append(f"ALTER TYPE {self._type_name(new)} ADD VALUE IF NOT EXISTS {self.literal(value)}{where}")
        return statements

    def _change_values(self, old: Type, new: Type, before: Schema, own: _Own | None = None) -> list[str]:
        """Enum type `old` given the values of `new`: added in place, or a new type (see `_replace_enum`)."""
        if _extends(old.values, new.values):
            return self._add_enum_values(old, new)
        return self._replace_enum(old, new, before, own)

    def _replace_enum(self, old_enum: Type, new_enum: Type, before: Schema, own: _Own | None) -> list[str]:
        """Values removed or reordered: a new type, every column of the old one moved to it, then renamed.

        `own` is the column the operation changes, with its new definition (the others keep theirs).
        """
        assert new_enum.name
        temp = new_enum.evolve(name=f"{new_enum.name[:40]}_schemashift_new")
        removed = tuple(value for value in old_enum.values if value not in set(new_enum.values))
        statements = [self._enum_ddl(CreateEnumType, temp)]
        for key, name in before.enum_users(new_enum.name):
            table = before.table(key)
            old = table.column(name)
            if native_enum_of(old.type) is None:
                continue
            if removed:
                statements.append(self._values_unused(table, old, new_enum, removed))
            new = own[2] if own is not None and (key, name) == own[:2] else old
            statements += self._retype(table.name, table.schema, old, new.evolve(type=with_enum(new.type, temp)))
        statements.append(self._enum_ddl(DropEnumType, old_enum))
        statements.append(f"ALTER TYPE {self._type_name(temp)} RENAME TO {self.quote(new_enum.name)}")
        return statements

    def _values_unused(self, table: Table, column: Column, enum: Type, removed: tuple[str, ...]) -> str:
        """A ``DO`` block that stops the migration, with a clear message, while rows of `column` use `removed`."""
        values = ", ".join(self.literal(value) for value in removed)
        source = self.quote(column.name) + ("::text[]" if column.type.kind == "array" else "::text")
        used = (f"{source} && ARRAY[{values}]::text[]" if column.type.kind == "array" else f"{source} IN ({values})")
        message = (
            f"rows of {table.key}.{column.name} still use the value(s) {', '.join(removed)} that enum type "
            f"{enum.name} loses: move them to another value first"
        ).replace("%", "")
        table_name = self.table_name(table.name, table.schema)
        return (
            f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM {table_name} WHERE {used}) "
            f"THEN RAISE EXCEPTION {self.literal(message)}; END IF; END $$"
        )

    def _serial_change(self, op: ops.AlterColumn) -> list[str]:
        """A serial column (an owned sequence as its default) appears or goes."""
        assert op.old is not None
        had, wants = _is_serial(op.old), _is_serial(op.new)
        if had == wants:
            return []
        column = self._column_clause(op.table, op.schema, op.column)
        sequence = self.table_name(f"{op.table}_{op.column}_seq", op.schema)
        if had:
            return [f"{column} DROP DEFAULT", f"DROP SEQUENCE IF EXISTS {sequence}"]
        owner = f"{self.table_name(op.table, op.schema)}.{self.quote(op.column)}"
        return [
            f"CREATE SEQUENCE {sequence} OWNED BY {owner}",
            f"{column} SET DEFAULT nextval({self.literal(sequence)}::regclass)",
            self._sync_sequence(op, self.literal(sequence)),
        ]

    def _sync_sequence(self, op: ops.AlterColumn, sequence: str) -> str:
        """Move `sequence` (an SQL expression) past the column's largest value."""
        table = self.table_name(op.table, op.schema)
        return f"SELECT setval({sequence}, COALESCE(MAX({self.quote(op.column)}), 0) + 1, false) FROM {table}"

    def _identity_change(self, op: ops.AlterColumn) -> list[str]:
        """``ADD GENERATED … AS IDENTITY`` (continuing after existing rows), or ``SET`` its options."""
        assert op.old is not None and op.new.identity is not None
        old, new = op.old.identity, op.new.identity
        column = self._column_clause(op.table, op.schema, op.column)
        mode = "ALWAYS" if new.always else "BY DEFAULT"
        if old is None:
            options = self._ddl_compiler.get_identity_options(
                sa.Identity(start=new.start, increment=new.increment)
            )
            statements = [f"{column} ADD GENERATED {mode} AS IDENTITY" + (f" ({options})" if options else "")]
            if new.start is None:
                table = self.literal(self.table_name(op.table, op.schema))
                serial = f"pg_get_serial_sequence({table}, {self.literal(op.column)})"
                statements.append(self._sync_sequence(op, serial))
            return statements
        return [f"{column} {' '.join(_identity_settings(old, new))}"]

    def _comment(self, op: ops.AlterColumn, after: Schema) -> str:
        table = table_at(after, op.table_key)
        column = self.sa_table_for(table, after, include_foreign_keys=False, include_indexes=False).c[op.column]
        # SetColumnComment renders IS NULL for no comment; DropColumnComment forgets the schema
        return self.ddl(sa.schema.SetColumnComment(column))

    def _regenerate(self, op: ops.AlterColumn, after: Schema) -> list[str]:
        """Drop and re-add a generated column whose expression changed, with its indexes."""
        table = table_at(after, op.table_key)
        sa_tab = self.sa_table_for(table, after)
        column = sa_tab.c[op.column]
        alter = self.alter_table(op.table, op.schema)
        statements = [f"{alter} DROP COLUMN {self.quote(op.column)}", f"{alter} ADD COLUMN {self.column_spec(column)}"]
        statements += self.column_comment(column)
        indexed = table.evolve(indexes=tuple(i for i in table.indexes if op.column in i.columns))
        return statements + self.index_statements(indexed, sa_tab)

    # --- normalisation for comparison (owned by the reflection work) -------

    class Normalizer(norm.Normalizer):
        """PostgreSQL's canonical form for comparison (see `schema.normalize`).

        ``public`` is the default schema (None). A ``nextval(...)`` default marks a
        serial column: autoincrement, no default. ``FLOAT(p)`` is ``real`` up to 24
        bits, else ``double precision``; ``bytea`` has no length; array dimensions
        are not enforced, so not compared. Casts are dropped from reflected SQL.
        Generated names: ``<table>_pkey``, ``<table>_<columns>_key``,
        ``<table>_<columns>_fkey``, ``<table>[_<column>]_check``. A computed column
        with no explicit storage is STORED (true up to PostgreSQL 17).
        """

        dialect = "postgresql"

        def parse_type(self, sql: str) -> Type | None:
            from schemashift.dialects.postgresql.reflect import parse_type_text

            parsed = parse_type_text(sql)
            return None if parsed is None else from_sa_type(parsed)

        default_schema = "public"
        option_prefix = "postgresql"
        dialect_names = ("postgresql",)
        partial_indexes = True
        strips_casts = True
        computed_stored_by_default = True
        has_sequences = True
        synonyms: ClassVar[dict[str, str]] = {"~~": "like", "~~*": "ilike", "!~~": "not like", "!~~*": "not ilike"}

        def type(self, typ: Type) -> Type:
            typ = super().type(typ)
            if typ.kind == "float":
                return typ.evolve(precision=24 if typ.precision is not None and typ.precision <= 24 else 53)
            if typ.kind == "binary":
                return typ.evolve(length=None, variant=None)
            if typ.kind in ("text", "datetime"):  # MySQL's text sizes; TIMESTAMP is DateTime here
                return typ.evolve(variant=None)
            if typ.kind == "array":
                return typ.evolve(dimensions=None)
            if typ.is_integer:
                return typ.evolve(unsigned=False)
            return typ

        def column(self, table: Table, column: Column) -> Column:
            if column.default and column.default.strip().lower().startswith("nextval("):
                column = column.evolve(default=None, autoincrement=True)
            return super().column(table, column)

        def expression(self, sql: str) -> str:
            return super().expression(_in_list(sql))

        def index_options(self, table: Table, index: Index, options: dict[str, object]) -> dict[str, object]:
            """Access method (but btree), INCLUDE columns, operator classes, storage parameters, NULLS NOT DISTINCT,
            and INVALID (reflected only: such an index is never counted as present)."""
            found: dict[str, object] = {}
            using = str(options.get("using") or "btree").lower()
            if using != "btree":
                found["using"] = using
            if options.get("include"):
                found["include"] = tuple(str(c) for c in options["include"])  # type: ignore[attr-defined]
            if options.get("ops"):
                found["ops"] = tuple(sorted((str(k), str(v)) for k, v in norm.option_pairs(options["ops"])))
            if options.get("with"):
                pairs = norm.option_pairs(options["with"])
                found["with"] = tuple(sorted((str(k).lower(), str(v).lower()) for k, v in pairs))
            if options.get("nulls_not_distinct"):
                found["nulls_not_distinct"] = True
            if options.get("invalid"):
                found["invalid"] = True  # left by a failed CONCURRENTLY build: not the index the models want
            return found

        def generated(self, table: Table, kind: str, columns: tuple[str, ...], name: str) -> bool:
            if kind == "pk":
                return norm.postgres_generated(name, table.name, [None], "pkey")
            if kind in ("unique", "fk"):
                label = "key" if kind == "unique" else "fkey"
                return norm.postgres_generated(name, table.name, ["_".join(columns)], label)
            return norm.postgres_generated(name, table.name, [None, *table.column_names], "check")

    def normalize(self, schema: Schema) -> Schema:
        """`schema` in PostgreSQL's canonical form, for comparison only."""
        return norm.shared(self.Normalizer)(schema)

    # --- locking ---------------------------------------------------------

    @contextmanager
    def lock(self, connection: sa.Connection, name: str, timeout: float) -> Iterator[None]:
        """A session-level advisory lock on a 64-bit hash of `name`, polled with ``pg_try_advisory_lock``.

        The server drops it when the session ends, so a killed process never leaves it behind.
        """
        params: dict[str, object] = {"key": _advisory_key(name)}
        locked = "SELECT pg_try_advisory_lock(:key)"
        poll_lock(lambda: bool(run_settled(connection, locked, params)), timeout, repr(name))
        try:
            yield
        finally:
            release_quietly(connection, "SELECT pg_advisory_unlock(:key)", params)

    transaction_lock = True

    def lock_in_transaction(self, connection: sa.Connection, name: str, timeout: float) -> None:
        """The advisory lock of `lock` at transaction level (``pg_try_advisory_xact_lock``, polled): the same key,
        so the two exclude each other; the transaction's end releases it, and it is safe behind a pooler."""
        params: dict[str, object] = {"key": _advisory_key(name)}
        locked = sa.text("SELECT pg_try_advisory_xact_lock(:key)")
        poll_lock(lambda: bool(connection.execute(locked, params).scalar()), timeout, repr(name))

    clock_ms_sql = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"

    def needs_lease_lock(self, connection: sa.Connection, env: EnvConfig) -> bool:
        """Through a pooler (declared, or detected by `behind_pooler`) a session advisory lock belongs to
        whichever server connection ran it, so the lease lock is used; ``pooler = "session"`` keeps advisory locks."""
        return pooled(connection, env)

    def is_write_conflict(self, error: sa.exc.DBAPIError) -> bool:
        """Unique violation, serialization failure or deadlock."""
        state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return isinstance(error, sa.exc.IntegrityError) or state in _CONFLICT_STATES

    def drop_if_empty_sql(self, table: str, schema: str | None) -> str | None:
        """An anonymous code block (``DO``) that drops `table` when it holds no row."""
        name = self.table_name(table, schema)
        return f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM {name}) THEN DROP TABLE {name}; END IF; END $$"

    def drop_database_sql(self, name: str) -> str:
        """``DROP DATABASE … WITH (FORCE)``: connections a test left open do not keep it."""
        return f"DROP DATABASE IF EXISTS {self.quote(name)} WITH (FORCE)"

    def engine_options(self, url: sa.URL, connect_timeout: float) -> dict[str, object]:
        """libpq's ``connect_timeout`` (whole seconds, at least 2) bounds the whole connection set-up.

        asyncpg and pg8000 call the same bound ``timeout``.
        """
        if url.get_driver_name() in ("asyncpg", "pg8000"):
            return {"connect_args": {"timeout": connect_timeout}}
        return {"connect_args": {"connect_timeout": max(2, round(connect_timeout))}}

    # --- per-environment session settings (the environments work) ------------

    def session_setup(self, connection: sa.Connection, env: EnvConfig) -> None:
        """``SET search_path`` to `env.schema` and ``SET statement_timeout`` (ms), committed for the session.

        Through a transaction pooler (`pooled`) a session setting would stick to whichever server
        connection ran it, for other clients too: prepared statements are turned off and the settings
        become ``SET LOCAL`` at the start of each of our transactions instead (`set_locally`).
        """
        statements: list[str] = []
        if env.schema:
            statements.append(f"SET search_path TO {self.quote(env.schema)}")
        if env.statement_timeout is not None:
            statements.append(f"SET statement_timeout = {round(env.statement_timeout * 1000)}")
        if pooled(connection, env):
            unprepared(connection)
            set_locally(connection, [statement.replace("SET ", "SET LOCAL ", 1) for statement in statements])
            return
        for statement in statements:
            connection.exec_driver_sql(statement)
        if statements:
            connection.commit()
