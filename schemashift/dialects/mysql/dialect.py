"""MySQL and MariaDB: capabilities, SQL compilation, normalisation of reflected schemas, locking."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from schemashift import operations as ops
from schemashift.dialects.base import (
    Dialect,
    SafeForm,
    SafeSql,
    lock_timeout,
    release_quietly,
    run_settled,
    settled_row,
    table_at,
)
from schemashift.errors import MigrationError
from schemashift.model import normalize as norm
from schemashift.model.schema import (
    CheckConstraint,
    Column,
    Constraint,
    ForeignKey,
    Index,
    PrimaryKey,
    Schema,
    Table,
    UniqueConstraint,
)
from schemashift.model.types import Type, copies_online
from schemashift.sacompat import copy_column
from schemashift.sqla.types import from_sa_type

if TYPE_CHECKING:
    from schemashift.config import EnvConfig
    from schemashift.model.schema import Sequence
    from schemashift.reflection.core import RawSchema


#: String literals (kept) and ANSI ``"quoted"`` identifiers (turned into backticks).
_QUOTED = re.compile(r"'(?:[^'\\]|''|\\.)*'" + r'|"((?:[^"]|"")*)"')


def backticked(sql: str) -> str:
    """`sql` with ANSI-quoted identifiers (``"select"``, as SQLAlchemy renders them) in MySQL's backticks."""

    def swap(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group()
        return "`" + match.group(1).replace('""', '"').replace("`", "``") + "`"

    return _QUOTED.sub(swap, sql)


def _served(table: Table, columns: tuple[str, ...]) -> bool:
    """True when an index, unique key or the primary key of `table` starts with `columns` (InnoDB uses it for a FK)."""
    keys = [index.columns for index in table.indexes if not index.expressions]
    keys += [unique.columns for unique in table.uniques]
    if table.primary_key is not None:
        keys.append(table.primary_key.columns)
    return any(key[: len(columns)] == columns for key in keys)


#: The default collation of MySQL/MariaDB character sets (utf8mb4's differs between servers: left out).
_DEFAULT_COLLATIONS = {
    "latin1": "latin1_swedish_ci",
    "ascii": "ascii_general_ci",
    "utf8": "utf8mb3_general_ci",
    "utf8mb3": "utf8mb3_general_ci",
    "binary": "binary",
    "ucs2": "ucs2_general_ci",
    "utf16": "utf16_general_ci",
    "utf32": "utf32_general_ci",
    "latin2": "latin2_general_ci",
    "cp1251": "cp1251_general_ci",
}

def _blob_size(length: int | None) -> str | None:
    """The blob type MySQL makes of ``BLOB(length)``: ``tinyblob``, plain (None), ``mediumblob`` or ``longblob``."""
    if length is None or 255 < length <= 65535:
        return None
    return "tinyblob" if length <= 255 else "mediumblob" if length <= 16777215 else "longblob"


#: Running the statement prepared in ``@schemashift_sql``.
_PREPARED = ("PREPARE schemashift_stmt FROM @schemashift_sql", "EXECUTE schemashift_stmt",
             "DEALLOCATE PREPARE schemashift_stmt")


def set_read_timeout(dbapi_connection: object, seconds: float | None) -> None:
    """Change a PyMySQL connection's read and write timeouts after its handshake.

    PyMySQL has no public setter: it keeps them in two attributes that every read
    and write consults. A driver without them is left as it is.
    """
    for attribute in ("_read_timeout", "_write_timeout"):
        if hasattr(dbapi_connection, attribute):
            setattr(dbapi_connection, attribute, seconds)


#: Kinds of column a key-part length applies to; InnoDB ignores one on any other column (``DATETIME(8)``).
_PREFIXABLE = frozenset({"string", "text", "binary"})


def _whole(typ: Type | None, length: int) -> bool:
    """True when a key-part `length` covers all of a column of (canonical) type `typ`, or does not apply to it.

    None for `typ`: an expression, not a column.
    """
    if typ is None:
        return False
    if typ.kind not in _PREFIXABLE:
        return True
    return typ.kind == "string" and typ.length is not None and length >= typ.length


def _as_mysql(options: tuple[tuple[str, object], ...]) -> tuple[tuple[str, object], ...]:
    """`options` with each ``mariadb_x`` as ``mysql_x`` (a ``mysql_x`` given too wins)."""
    if not any(key.startswith("mariadb_") for key, _ in options):
        return options
    given = dict(options)
    for key, value in options:
        if key.startswith("mariadb_"):
            del given[key]
            given.setdefault("mysql_" + key[len("mariadb_") :], value)
    return tuple(sorted(given.items()))


class MySQLDialect(Dialect):
    """MySQL and MariaDB."""
    objects_module = "schemashift.dialects.mysql.objects"
    renames_in_place = frozenset({"view"})
    view_rename = "RENAME TABLE {old} TO {new}"

    name = "mysql"

    # --- SQL compilation (owned by the dialects work) ---------------------

    transactional_ddl = False
    remote_catalogue = True
    max_identifier_length = 64
    online_alter = True
    #: MariaDB 10.3+ has sequences; on MySQL itself, a migration creating one fails (MySQL has none).
    supports_sequences = True
    no_cycle = "NOCYCLE"
    aliases = ("mariadb",)
    driver_extra = "mysql"

    def next_value_sql(self, key: str) -> str:
        """``nextval(seq)``: MariaDB takes the sequence's name, not a string."""
        schema, _, name = key.rpartition(".")
        return f"nextval({self.table_name(name, schema or None)})"

    def read_tables(self, connection: sa.Connection, schema: str | None) -> RawSchema:
        """The catalogue of `schema` through the bulk reader of ``mysql/reflect.py``."""
        from schemashift.dialects.mysql.reflect import read

        return read(connection, schema)

    def read_sequences(self, connection: sa.Connection, schema: str | None, key_schema: str | None) -> list[Sequence]:
        """MariaDB's standalone sequences of `schema` (see ``mysql/reflect.py``)."""
        from schemashift.dialects.mysql.reflect import read_sequences

        return read_sequences(connection, schema, key_schema)

    def current_database(self, connection: sa.Connection, default_schema: str | None) -> str | None:
        """The current database (``SELECT DATABASE()``)."""
        from schemashift.dialects.mysql.reflect import current_database

        return current_database(connection)

    def sa_dialect(self) -> sa.engine.Dialect:
        """SQLAlchemy's MySQL dialect; what it emits here runs on MariaDB too (see `drop_constraint_sql`)."""
        return mysql.dialect()

    def ddl_column(self, column: Column) -> Column:
        """As in `Dialect`, with ANSI-quoted identifiers in a generated column's expression backticked."""
        if column.computed is not None:
            column = column.evolve(computed=replace(column.computed, sql=backticked(column.computed.sql)))
        return super().ddl_column(column)

    def sa_table_for(self, table: Table, schema: Schema, **options: object) -> sa.Table:
        """As in `Dialect`, with ANSI-quoted identifiers in checks and index expressions backticked, and
        ``mariadb_`` options given as ``mysql_`` ones (SQLAlchemy's MySQL compiler reads only those)."""
        table = table.evolve(
            checks=tuple(replace(check, sql=backticked(check.sql)) for check in table.checks),
            indexes=tuple(
                replace(i, expressions=tuple(backticked(e) for e in i.expressions), options=_as_mysql(i.options))
                for i in table.indexes
            ),
            options=_as_mysql(table.options),
        )
        return super().sa_table_for(table, schema, **options)

    def compile_alter_column(self, op: ops.AlterColumn, before: Schema, after: Schema) -> list[str]:
        """One ``MODIFY COLUMN`` with the full new definition (type, NULL, default, comment, AUTO_INCREMENT).

        Existing NULLs take the default first when the column becomes NOT NULL (see `fill_nulls`).
        """
        if not op.changes:
            return []
        table = table_at(after, op.table_key)
        column = self.sa_table_for(table, after, include_indexes=False).c[op.column]
        modify = f"{self.alter_table(op.table, op.schema)} MODIFY COLUMN {self.column_spec(column)}"
        return [*self.fill_nulls(op), modify]

    # --- InnoDB's own indexes for foreign keys -----------------------------------
    #
    # InnoDB gives a foreign key that no index serves (none starts with its columns)
    # an index of its own, named after the key (or its first column); it drops that
    # index by itself once another index serves the key, keeps it when the key is
    # dropped, and refuses to drop the last index a key can use. The models never
    # have that index: migrations drop it with its key, and re-add a key whose last
    # index goes, so that InnoDB makes it again.

    def compile_drop_index(self, op: ops.DropIndex, before: Schema, after: Schema) -> list[str]:
        """``DROP INDEX``; foreign keys that only this index served are re-added around it."""
        return self._reserve(op.table_key, before, after, super().compile_drop_index(op, before, after))

    def compile_drop_constraint(self, op: ops.DropConstraint, before: Schema, after: Schema) -> list[str]:
        """As in `Dialect`; a dropped foreign key takes its implicit index along, a dropped key hands over."""
        statements = super().compile_drop_constraint(op, before, after)
        fk = op.definition
        if not isinstance(fk, ForeignKey):
            return self._reserve(op.table_key, before, after, statements)
        name = op.name or fk.name
        if name is None or _served(table_at(before, op.table_key), fk.columns):
            return statements
        return [*statements, f"{self.alter_table(op.table, op.schema)} DROP INDEX {self.quote(name)}"]

    def _reserve(self, key: str | None, before: Schema, after: Schema, statements: list[str]) -> list[str]:
        """`statements` (dropping an index or key of table `key`) between dropping and re-adding the
        foreign keys that only the dropped index served (MySQL refuses the drop otherwise)."""
        if key is None or key not in before or key not in after:
            return statements
        old, new = before.table(key), after.table(key)
        orphans = [fk for fk in new.foreign_keys if fk in old.foreign_keys
                   and _served(old, fk.columns) and not _served(new, fk.columns)]
        drops: list[str] = []
        adds: list[str] = []
        for fk in orphans:
            drop = ops.DropConstraint(new.name, fk.name, schema=new.schema, definition=fk)
            drops += Dialect.compile_drop_constraint(self, drop, before, before)
            add = ops.AddConstraint(new.name, fk, schema=new.schema)
            adds += Dialect.compile_add_constraint(self, add, after, after)
        return [*drops, *statements, *adds]

    def compile_rename_index(self, op: ops.RenameIndex, before: Schema, after: Schema) -> list[str]:
        """``ALTER TABLE … RENAME INDEX … TO`` (MySQL 5.7+, MariaDB 10.5+)."""
        alter = self.alter_table(op.table, op.schema)
        return [f"{alter} RENAME INDEX {self.quote(op.name)} TO {self.quote(op.new_name)}"]

    def drop_if_empty_sql(self, table: str, schema: str | None) -> str | None:
        """The ``DROP TABLE`` or a no-op chosen by the table's rows and run as a prepared statement (no stored
        program, no DELIMITER: one line for any client)."""
        name = self.table_name(table, schema)
        return (f"SET @schemashift_drop = IF(EXISTS(SELECT 1 FROM {name}), 'DO 0', 'DROP TABLE {name}'); "
                "PREPARE schemashift_drop FROM @schemashift_drop; EXECUTE schemashift_drop; "
                "DEALLOCATE PREPARE schemashift_drop")

    def no_rows_guard_sql(self, table: str, schema: str | None, reason: str) -> str | None:
        """A row inserted into a scratch table whose CHECK fails while `table` holds a row (MySQL/MariaDB fill a
        NOT NULL column with ``''``/0 silently); the CHECK's name is the error's text. One line for any client:
        no stored program, no DELIMITER."""
        guard = self.quote("_schemashift_guard")
        name = self.quote(re.sub(r"[^a-z0-9_]+", "_", reason.lower())[:64].rstrip("_"))
        return (f"CREATE TEMPORARY TABLE {guard} (n INT, CONSTRAINT {name} CHECK (n = 0)); "
                f"INSERT INTO {guard} SELECT COUNT(*) FROM (SELECT 1 FROM {self.table_name(table, schema)} LIMIT 1) "
                f"AS any_row; DROP TEMPORARY TABLE {guard}")

    def compile_rename_constraint(self, op: ops.RenameConstraint, before: Schema, after: Schema) -> list[str]:
        """A unique key is an index here (``RENAME INDEX``); every primary key is named ``PRIMARY`` (nothing to do).

        MariaDB cannot rename a foreign key or a check: that is a one-line error naming the constraint.
        """
        table = table_at(before, op.table_key)
        if table.primary_key is not None and table.primary_key.name == op.name:
            return []
        if any(u.name == op.name for u in table.uniques):
            alter = self.alter_table(op.table, op.schema)
            return [f"{alter} RENAME INDEX {self.quote(op.name)} TO {self.quote(op.new_name)}"]
        raise MigrationError(f"MariaDB/MySQL cannot rename constraint {op.name} on {table.key}: drop it and add it "
                             "under the new name")

    def rename_target(self, new_name: str, schema: str | None) -> str:
        """Qualified like the old name: an unqualified one would move the table to the current database."""
        return self.table_name(new_name, schema)

    def default_constraint_name(self, table: Table, constraint: Constraint) -> str | None:
        """``PRIMARY`` for the key; a unique index is named after its first column."""
        if isinstance(constraint, PrimaryKey):
            return "PRIMARY"
        if isinstance(constraint, UniqueConstraint):
            return constraint.columns[0]
        return None

    def drop_constraint_sql(self, constraint: sa.Constraint) -> str:
        """``DROP PRIMARY KEY|FOREIGN KEY|INDEX``, and ``DROP CONSTRAINT`` for checks.

        ``DROP CHECK`` is MySQL-only; MySQL 8.0.19+ and MariaDB both accept ``DROP CONSTRAINT``.
        """
        table = constraint.table
        if isinstance(constraint, sa.PrimaryKeyConstraint) and table.autoincrement_column is not None:
            # AUTO_INCREMENT needs a key: it goes first, in the same statement
            column = copy_column(table.autoincrement_column)
            column.autoincrement = False
            sa.Table(table.name, sa.MetaData(), column)
            spec = self.column_spec(column)
            return f"{self.alter_table(table.name, table.schema)} MODIFY COLUMN {spec}, DROP PRIMARY KEY"
        if not isinstance(constraint, sa.CheckConstraint):
            return super().drop_constraint_sql(constraint)
        return f"{self.alter_table(table.name, table.schema)} DROP CONSTRAINT {self.quote(str(constraint.name))}"

    def compile_add_constraint(self, op: ops.AddConstraint, before: Schema, after: Schema) -> list[str]:
        """As in `Dialect`; a new primary key gets its AUTO_INCREMENT column back (it needs the key first)."""
        statements = super().compile_add_constraint(op, before, after)
        if not isinstance(op.constraint, PrimaryKey):
            return statements
        column = self.sa_table_for(table_at(after, op.table_key), after, include_indexes=False).autoincrement_column
        if column is None:
            return statements
        return [*statements, f"{self.alter_table(op.table, op.schema)} MODIFY COLUMN {self.column_spec(column)}"]

    def drop_unnamed_constraint(self, table: Table, constraint: Constraint) -> list[str]:
        """An unnamed foreign key (``<table>_ibfk_<n>``, n unknown): its name is looked up when the migration runs.

        The name found in ``information_schema`` goes into a prepared ``ALTER TABLE … DROP FOREIGN KEY``;
        InnoDB's index for the key (named after its first column) goes too when no other index serves it.
        """
        schema = self.literal(table.schema) if table.schema else "DATABASE()"
        alter = self.alter_table(table.name, table.schema).replace("'", "''")
        if isinstance(constraint, CheckConstraint):
            return self._drop_unnamed_check(table, constraint, schema, alter)
        if not isinstance(constraint, ForeignKey):
            return []
        lookup = (
            "SELECT CONSTRAINT_NAME FROM information_schema.KEY_COLUMN_USAGE "
            f"WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {self.literal(table.name)} "
            f"AND REFERENCED_TABLE_NAME = {self.literal(constraint.ref_table)} GROUP BY CONSTRAINT_NAME "
            "HAVING GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) = "
            f"{self.literal(','.join(constraint.columns))} "
            "LIMIT 1"
        )
        index = "" if _served(table, constraint.columns) else f", DROP INDEX {self.quote(constraint.columns[0])}"
        index = index.replace("'", "''")
        statement = f"CONCAT('{alter} DROP FOREIGN KEY `', @schemashift_fk, '`{index}')"
        missing = f"no foreign key ({', '.join(constraint.columns)}) -> {constraint.ref_table} on {table.name}"
        return [
            f"SET @schemashift_fk = ({lookup})",
            f"SET @schemashift_sql = {self._or_signal(statement, missing)}",
            *_PREPARED,
        ]

    def _drop_unnamed_check(self, table: Table, check: CheckConstraint, schema: str, alter: str) -> list[str]:
        """An unnamed check (``CONSTRAINT_<n>``, ``<table>_chk_<n>``): of the checks neither named in the table's
        definition nor named after a column (MariaDB's own JSON checks), one whose clause is `check`'s text as the
        server prints it (twins are alike: the last added), else the only one. Neither: the statement fails rather
        than guess."""
        known = [c.name for c in table.checks if c.name] + list(table.column_names)
        unnamed = (
            f"FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = {schema} "
            f"AND TABLE_NAME = {self.literal(table.name)} AND CONSTRAINT_TYPE = 'CHECK' "
            f"AND CONSTRAINT_NAME NOT IN ({', '.join(self.literal(name) for name in known)})"
        )
        same_clause = (
            f"SELECT MAX(CONSTRAINT_NAME) {unnamed} AND CONSTRAINT_NAME IN (SELECT CONSTRAINT_NAME FROM "
            f"information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = {schema}{self._check_of(table)} "
            f"AND CHECK_CLAUSE = {self.literal(check.sql)})"
        )
        lookup = f"SELECT COALESCE(({same_clause}), (SELECT IF(COUNT(*) = 1, MIN(CONSTRAINT_NAME), NULL) {unnamed}))"
        statement = f"CONCAT('{alter} DROP CONSTRAINT `', @schemashift_ck, '`')"
        missing = f"cannot tell which unnamed CHECK of {table.name} to drop (none or several, none with its text)"
        return [
            f"SET @schemashift_ck = ({lookup})",
            f"SET @schemashift_sql = {self._or_signal(statement, missing)}",
            *_PREPARED,
        ]

    def _or_signal(self, statement: str, message: str) -> str:
        """`statement` (SQL giving the text of the statement to prepare), or one raising `message` when it is NULL
        (a name looked up was not found), instead of a syntax error "near NULL"."""
        signal = f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = {self.literal('schemashift: ' + message[:100])}"
        return f"COALESCE({statement}, {self.literal(signal)})"

    def _check_of(self, table: Table) -> str:
        """The condition on ``information_schema.CHECK_CONSTRAINTS`` beyond the schema (MySQL names checks per
        schema, so none)."""
        return ""

    # --- normalisation for comparison (owned by the reflection work) -------

    class Normalizer(norm.Normalizer):
        """MySQL/MariaDB's canonical form for comparison (see `schema.normalize`).

        Unique constraints and unique indexes are the same thing here: both become
        `UniqueConstraint`s. The index InnoDB adds for a foreign key (named after the
        constraint, or its first column) is dropped. Enums are anonymous; DATETIME
        and TIME have no time zone; FLOAT is 4 bytes unless its precision exceeds
        24 (DOUBLE); DECIMAL defaults to (10, 0); blobs have no length; UUID is
        compared as CHAR(32) (native on MariaDB, CHAR(32) on MySQL); RESTRICT is
        the default FK action; DEFERRABLE is not supported. Generated names: the PK
        is always ``PRIMARY``, ``<table>_ibfk_<n>``, a unique key is named after its
        first column, checks ``CONSTRAINT_<n>`` (MariaDB) or ``<table>_chk_<n>``.
        """

        dialect = "mysql"
        keeps_charsets = True
        case_sensitive_quotes = False
        option_prefix = "mysql"
        dialect_names = ("mysql", "mariadb")
        synonyms: ClassVar[dict[str, str]] = {"lcase": "lower", "ucase": "upper", "octet_length": "length"}
        default_fk_actions = frozenset({"NO ACTION", "RESTRICT"})
        deferrable_fks = False
        has_identity = False
        has_sequences = True
        sequence_max = 2**63 - 2
        sequence_min = -(2**63) + 1

        def parse_type(self, sql: str) -> Type | None:
            from schemashift.dialects.mysql.reflect import parse_column_type

            return from_sa_type(parse_column_type(sql))

        def type(self, typ: Type) -> Type:
            typ = super().type(typ)
            kind = typ.kind
            if kind == "enum":
                return typ.evolve(name=None)
            if kind in ("datetime", "time"):
                return typ.evolve(timezone=False)
            if kind == "interval":  # emulated as DATETIME
                return Type("datetime")
            if kind == "float":
                return typ.evolve(precision=53 if typ.precision is not None and typ.precision > 24 else 24)
            if kind == "numeric":
                precision = 10 if typ.precision is None else typ.precision
                return typ.evolve(precision=precision, scale=0 if typ.scale is None else typ.scale)
            if kind == "binary":  # BLOB(n) is the smallest blob type holding n bytes (buildbot's LargeBinary(65536))
                return typ.evolve(length=None, variant=typ.variant or _blob_size(typ.length))
            if kind == "uuid":
                return Type("string", length=32)
            if kind == "json":
                return typ.evolve(variant=None)
            if kind in ("string", "text") and typ.charset:
                # a character set alone means its default collation (the table's for the usual utf8mb4)
                collation = typ.collation or _DEFAULT_COLLATIONS.get(typ.charset)
                return typ.evolve(charset=None, collation=collation)
            return typ

        def prepare(self, table: Table) -> Table:
            uniques = list(table.uniques)
            indexes = []
            for index in table.indexes:
                if index.unique and not index.expressions and not index.option("mysql_prefix"):
                    uniques.append(UniqueConstraint(index.columns, index.name))
                elif not index.unique and any(self.implicit_index(index, fk) for fk in table.foreign_keys):
                    continue
                else:
                    indexes.append(index)
            return table.evolve(uniques=uniques, indexes=indexes)

        def index_options(self, table: Table, index: Index, options: dict[str, object]) -> dict[str, object]:
            """FULLTEXT/SPATIAL and key-part lengths; ``USING`` is not compared (InnoDB silently makes HASH a BTREE).

            A prefix as long as its column (or longer) is the whole column: InnoDB reports none.
            """
            found: dict[str, object] = {}
            if options.get("prefix"):
                found["prefix"] = str(options["prefix"]).upper()
            length = options.get("length")
            if length is not None:
                elements = index.columns + index.expressions
                lengths = (dict(norm.option_pairs(length)) if isinstance(length, tuple)
                           else dict.fromkeys(elements, length))
                pairs = tuple(
                    (str(c), int(lengths[c]))  # type: ignore[call-overload]
                    for c in elements
                    if lengths.get(c) is not None
                    and not _whole(self.column_type(table, str(c)), int(lengths[c]))  # type: ignore[call-overload]
                )
                if pairs:
                    found["length"] = pairs
            return found

        def column_type(self, table: Table, name: str) -> Type | None:
            """The canonical type of column `name` of `table` on this database (None: no such column)."""
            return self.canonical_type(table.column(name).type) if table.has_column(name) else None

        @staticmethod
        def implicit_index(index: Index, fk: ForeignKey) -> bool:
            """True when `index` is the one InnoDB created by itself for `fk`."""
            if index.columns != fk.columns or index.expressions:
                return False
            return index.name == fk.name or norm.generated_name(index.name, [fk.columns[0]], r"(?:_\d+)?")

        def generated(self, table: Table, kind: str, columns: tuple[str, ...], name: str) -> bool:
            if kind == "pk":
                return True
            if kind == "fk":
                return norm.generated_name(name, [f"{table.name}_ibfk_"], r"\d+")
            if kind == "unique":
                return bool(columns) and norm.generated_name(name, [columns[0]], r"(?:_\d+)?")
            return (
                norm.generated_name(name, ["CONSTRAINT_", f"{table.name}_chk_"], r"\d+")
                or name in table.column_names
            )

    def normalize(self, schema: Schema) -> Schema:
        """`schema` in MySQL/MariaDB's canonical form, for comparison only."""
        return norm.shared(self.Normalizer)(schema)

    # --- locking ---------------------------------------------------------

    @contextmanager
    def lock(self, connection: sa.Connection, name: str, timeout: float) -> Iterator[None]:
        """``GET_LOCK`` on the current database's name plus `name`, waiting up to `timeout` s.

        Named locks are server-wide, hence the database name; they belong to the
        session, so a killed process never leaves one behind.
        """
        wait = max(timeout, 0.0)
        row = settled_row(connection, _GET_LOCK, {"suffix": f":{name}", "timeout": wait})  # one round trip
        full, got = (str(row[0]), row[1]) if row is not None else (f":{name}", None)
        params: dict[str, object] = {"name": full}
        if got is None and len(full) > 64:  # too long for the server: the hashed name
            params["name"] = self._lock_name(full)
            got = run_settled(connection, "SELECT GET_LOCK(:name, :timeout)", {**params, "timeout": wait})
        if got != 1:
            raise lock_timeout(repr(name), timeout)
        try:
            yield
        finally:
            release_quietly(connection, "SELECT RELEASE_LOCK(:name)", params)

    clock_ms_sql = "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000 AS SIGNED)"

    def needs_lease_lock(self, connection: sa.Connection, env: EnvConfig) -> bool:
        """On a Galera cluster `GET_LOCK` holds on one node only: the lease lock is used there."""
        return galera(connection)

    def is_write_conflict(self, error: sa.exc.DBAPIError) -> bool:
        """Duplicate key, lock wait timeout, or deadlock (also how Galera reports a lost certification)."""
        code = error.orig.args[0] if error.orig is not None and error.orig.args else None
        return isinstance(error, sa.exc.IntegrityError) or code in _CONFLICT_CODES

    @staticmethod
    def _lock_name(name: str) -> str:
        """`name` cut to the 64 characters MySQL allows, a hash keeping long names distinct."""
        if len(name) <= 64:
            return name
        return name[:47] + "-" + hashlib.blake2b(name.encode(), digest_size=8).hexdigest()

    # --- connecting --------------------------------------------------------------

    def engine_options(self, url: sa.URL, connect_timeout: float) -> dict[str, object]:
        """PyMySQL waits for the server's greeting under its read timeout: bound that too while connecting."""
        if url.get_driver_name() != "pymysql":
            return {"connect_args": {"connect_timeout": max(1, round(connect_timeout))}}
        wait = max(1, round(connect_timeout))
        return {"connect_args": {"connect_timeout": wait, "read_timeout": wait, "write_timeout": wait}}

    def prepare_engine(self, engine: sa.Engine, read_timeout: float | None) -> None:
        """Once connected, statements wait `read_timeout` (None: as long as they run) instead of the connect bound."""
        if engine.dialect.driver != "pymysql":
            return

        def after_connect(dbapi_connection: object, record: object) -> None:
            set_read_timeout(dbapi_connection, read_timeout)

        sa.event.listen(engine, "connect", after_connect)

    # --- per-environment session settings (the environments work) ------------

    def session_setup(self, connection: sa.Connection, env: EnvConfig) -> None:
        """``SET SESSION max_statement_time`` (MariaDB, seconds) or ``max_execution_time`` (MySQL, ms).

        `schema` is refused: a MySQL schema is a database, named in the URL.
        """
        super().session_setup(connection, env)
        if galera(connection):  # reads see every write the cluster committed before them
            connection.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
            connection.commit()
        if env.statement_timeout is None:
            return
        if getattr(connection.dialect, "is_mariadb", False):
            connection.exec_driver_sql(f"SET SESSION max_statement_time = {env.statement_timeout:.3f}")
        else:
            connection.exec_driver_sql(f"SET SESSION max_execution_time = {round(env.statement_timeout * 1000)}")
        connection.commit()


    # --- safe mode (`schemashift.planning.safe`) ---------------------------

    # on unless ``safe = false``: a table-copying change is refused only on tables above ``safe_rewrite_rows``
    safe_by_default = True
    # defaults ADD COLUMN can neither INSTANT nor INPLACE (MariaDB 10.11: error 1845, "Try ALGORITHM=COPY");
    # ``now()``, ``CURRENT_TIMESTAMP`` and ``rand()`` are evaluated once: INSTANT
    volatile_defaults = re.compile(r"\b(?:uuid|uuid_short|uuid_v[47]|sys_guid|sysdate|nextval)\s*\(|"
                                   r"\bNEXT\s+VALUE\s+FOR\b", re.IGNORECASE)

    def takes_lock(self, sql: str) -> bool:
        """True for DDL: every ALTER/CREATE/DROP/RENAME waits for the table's metadata lock."""
        return bool(_DDL.match(sql))

    def lock_timeout_sql(self, seconds: float, *, in_transaction: bool = True) -> tuple[str, str | None] | None:
        """``SET SESSION lock_wait_timeout`` (whole seconds, at least 1: the metadata-lock wait of DDL), then
        back to the server's value."""
        return (f"SET SESSION lock_wait_timeout = {max(1, math.ceil(seconds))}",
                "SET SESSION lock_wait_timeout = DEFAULT")

    def lock_timed_out(self, error: BaseException) -> bool:
        """True for error 1205 (lock wait timeout exceeded)."""
        return _error_code(error) == _LOCK_WAIT_TIMEOUT

    def algorithm_refused(self, error: BaseException) -> bool:
        """True for errors 1845/1846 (the ALGORITHM or LOCK asked for is not supported for this change)."""
        return _error_code(error) in _ALGORITHM_REFUSED

    def estimated_rows(self, connection: sa.Connection, table: str, schema: str | None) -> float | None:
        """``information_schema.TABLES.TABLE_ROWS`` (InnoDB's estimate; None when the server gives none)."""
        query = sa.text("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_NAME = :name "
                        "AND TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_TYPE = 'BASE TABLE'")
        row = connection.execute(query, {"name": table, "schema": schema}).first()
        if row is None:
            return 0.0
        return None if row[0] is None else float(row[0])

    def safe_form(self, operation: ops.Operation, before: Schema, after: Schema, plain: list[str], *,
                  volatile: frozenset[str] = frozenset()) -> SafeForm | None:
        """Each ALTER/CREATE INDEX/DROP INDEX with the online algorithm for the operation: INSTANT (falling back
        to INPLACE, LOCK=NONE when the server refuses it) for column changes and index drops, INPLACE,
        LOCK=NONE for index builds. A foreign key or check is validated while writes wait (no online form): a
        refusal (SS403), which safe mode applies to large tables only. A NOT NULL column with a default that
        only a copy can fill is added in steps around a batched backfill (`batched_add_column`)."""
        if isinstance(operation, ops.AddConstraint) and isinstance(operation.constraint, (ForeignKey,
                                                                                           CheckConstraint)):
            return SafeForm(refusal=("SS403", _VALIDATED.format(table=operation.table_key)))
        if isinstance(operation, ops.AlterColumn) and operation.old is not None:
            code = copies_online(operation.old.type.on(self.name), operation.new.type.on(self.name))
            if code is not None:
                return SafeForm(refusal=(code, _COPY.format(column=operation.column, table=operation.table_key)))
        if isinstance(operation, ops.AddColumn) and (form := self.batched_add_column(operation, before, "SS401",
                                                                                      volatile)):
            return form
        first = "INPLACE" if isinstance(operation, (ops.CreateIndex, ops.AddConstraint)) else "INSTANT"
        statements = tuple(_online(sql, first) for sql in plain)
        return SafeForm(statements, unless_allowed=frozenset({"SS401", "SS402"}))


def _online(sql: str, first: str) -> SafeSql:
    """`sql` with ``ALGORITHM=…`` (and ``LOCK=NONE`` for INPLACE) when it is one ALTER TABLE or CREATE INDEX;
    INSTANT comes with its INPLACE fallback."""
    if _ALTER.match(sql) and not _NOT_ONLINE.search(sql):
        clause = ", ALGORITHM={}, LOCK=NONE" if first == "INPLACE" else ", ALGORITHM={}"
        fallback = f"{sql}, ALGORITHM=INPLACE, LOCK=NONE"
    elif _INDEX.match(sql):
        clause = " ALGORITHM={} LOCK=NONE" if first == "INPLACE" else " ALGORITHM={}"
        fallback = f"{sql} ALGORITHM=INPLACE LOCK=NONE"
    else:
        return SafeSql(sql)
    strict = sql + clause.format(first)
    return SafeSql(strict, fallback=None if strict == fallback else fallback)


def _error_code(error: BaseException) -> int | None:
    """The MySQL error number of a DB-API error (or of SQLAlchemy's wrapper of one)."""
    original = getattr(error, "orig", None) or error
    args = getattr(original, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


#: How safe mode explains refusing a change that copies the table.
_COPY = (
    "changing {column}'s type copies {table}, blocking writes until done (no INSTANT or INPLACE, LOCK=NONE form); "
    "in safe mode add a new column, backfill it in batches and switch over, or allow(op, SS401=\"why\") "
    "(SS402 for enum values) in the migration, or safe = false for the environment"
)
#: How safe mode explains refusing a foreign key or check added to a large table.
_VALIDATED = (
    "adding a foreign key or check to {table} validates every row while writes wait (MariaDB/MySQL have no "
    "online form for it); add it in a quiet period, or allow(op, SS403=\"why\") in the migration, or "
    "safe = false for the environment"
)
#: DDL statements (they wait for the metadata lock).
_DDL = re.compile(r"^\s*(?:ALTER|CREATE|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE)
#: One ALTER TABLE that can take an ALGORITHM clause.
_ALTER = re.compile(r"^\s*ALTER\s+TABLE\s", re.IGNORECASE)
#: ALTER TABLE clauses that cannot run online or take no ALGORITHM (renames, foreign keys, checks).
_NOT_ONLINE = re.compile(r"\bRENAME\s+TO\b|\bFOREIGN\s+KEY\b|\bCHECK\b|\bALGORITHM\s*=", re.IGNORECASE)
#: CREATE [UNIQUE] INDEX (FULLTEXT and SPATIAL indexes cannot be built with LOCK=NONE; DROP INDEX takes no
#: algorithm clause on MariaDB, and dropping an index is a quick in-place change anyway).
_INDEX = re.compile(r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s", re.IGNORECASE)
#: `MySQLDialect.lock` in one statement: the lock's full name (``<database>:<name>``) and, when the server takes
#: a name that long (64 characters), GET_LOCK's answer (else NULL: the name is hashed, see `_lock_name`).
_GET_LOCK = ("SELECT CONCAT(COALESCE(DATABASE(), ''), :suffix), "
             "CASE WHEN CHAR_LENGTH(CONCAT(COALESCE(DATABASE(), ''), :suffix)) <= 64 "
             "THEN GET_LOCK(CONCAT(COALESCE(DATABASE(), ''), :suffix), :timeout) END")
#: ER_LOCK_WAIT_TIMEOUT.
_LOCK_WAIT_TIMEOUT = 1205
#: ER_ALTER_OPERATION_NOT_SUPPORTED, ER_ALTER_OPERATION_NOT_SUPPORTED_REASON.
_ALGORITHM_REFUSED = (1845, 1846)

#: MySQL error codes of a lost write race: duplicate key, lock wait timeout, deadlock (Galera certification).
_CONFLICT_CODES = frozenset({1062, 1205, 1213})
#: `connection.info` key: the server is a node of a Galera cluster (see `galera`).
_GALERA = "schemashift.galera"


def galera(connection: sa.Connection) -> bool:
    """True when `connection`'s server is a Galera cluster node (``wsrep_on`` with a provider); remembered."""
    info = connection.connection.info
    if _GALERA not in info:
        found = False
        if getattr(connection.dialect, "is_mariadb", False):
            began = not connection.in_transaction()
            row = connection.exec_driver_sql("SELECT @@wsrep_on, @@wsrep_provider").first()
            if began:
                connection.commit()
            found = row is not None and bool(row[0]) and (row[1] or "none") != "none"
        info[_GALERA] = found
    return bool(info[_GALERA])


class MariaDBDialect(MySQLDialect):
    """MariaDB 10.7 and later: ``sa.Uuid`` is the native ``UUID`` type there, as `create_all` builds it.

    Chosen by `dialects.dialect_of` for a connection to such a server (and for ``mariadb://`` URLs offline).
    """

    @property
    def registry_name(self) -> str:
        """``mariadb``: its SQL differs from MySQL's (native UUID)."""
        return "mariadb"

    def _check_of(self, table: Table) -> str:
        """MariaDB names checks per table (``CONSTRAINT_1`` in many tables)."""
        return f" AND TABLE_NAME = {self.literal(table.name)}"

    def sa_dialect(self) -> sa.engine.Dialect:
        """SQLAlchemy's MySQL dialect with MariaDB's native UUID."""
        dialect = mysql.dialect()
        dialect.supports_native_uuid = True
        return dialect
