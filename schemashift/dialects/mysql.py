"""MySQL and MariaDB: capabilities, SQL compilation, normalisation of reflected schemas, locking."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from .. import ops
from ..schema import normalize as norm
from ..schema.model import ForeignKey, Index
from ..schema.types import Type
from ..schema.model import Constraint, PrimaryKey, Schema, Table, UniqueConstraint
from .base import Dialect, lock_timeout, release_quietly, run_settled, table_at

if TYPE_CHECKING:
    from ..config import EnvConfig


class MySQLDialect(Dialect):
    """MySQL and MariaDB."""

    name = "mysql"

    # --- SQL compilation (owned by the dialects work) ---------------------

    transactional_ddl = False
    instant_add_column = True
    aliases = ("mariadb",)

    def sa_dialect(self) -> sa.engine.Dialect:
        """SQLAlchemy's MySQL dialect; what it emits here runs on MariaDB too (see `drop_constraint_sql`)."""
        return mysql.dialect()

    def compile_alter_column(self, op: ops.AlterColumn, before: Schema, after: Schema) -> list[str]:
        """One ``MODIFY COLUMN`` with the full new definition (type, NULL, default, comment, AUTO_INCREMENT).

        Existing NULLs take the default first when the column becomes NOT NULL (see `fill_nulls`).
        """
        if not op.changes:
            return []
        table = table_at(after, op.table_key)
        column = self.sa_table_for(table, after, include_indexes=False).c[op.column]
        return [*self.fill_nulls(op), f"{self.alter_table(op.table, op.schema)} MODIFY COLUMN {self.column_spec(column)}"]

    def compile_rename_index(self, op: ops.RenameIndex, before: Schema, after: Schema) -> list[str]:
        """``ALTER TABLE … RENAME INDEX … TO`` (MySQL 5.7+, MariaDB 10.5+)."""
        alter = self.alter_table(op.table, op.schema)
        return [f"{alter} RENAME INDEX {self.quote(op.name)} TO {self.quote(op.new_name)}"]

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
        if not isinstance(constraint, sa.CheckConstraint):
            return super().drop_constraint_sql(constraint)
        table = constraint.table
        return f"{self.alter_table(table.name, table.schema)} DROP CONSTRAINT {self.quote(str(constraint.name))}"

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

        case_sensitive_quotes = False
        synonyms = {"lcase": "lower", "ucase": "upper"}
        default_fk_actions = frozenset({"NO ACTION", "RESTRICT"})
        deferrable_fks = False
        has_identity = False

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
            if kind == "binary":
                return typ.evolve(length=None)
            if kind == "uuid":
                return Type("string", length=32)
            if kind == "json":
                return typ.evolve(variant=None)
            return typ

        def prepare(self, table: Table) -> Table:
            uniques = list(table.uniques)
            indexes = []
            for index in table.indexes:
                if index.unique and not index.expressions and not index.where:
                    uniques.append(UniqueConstraint(index.columns, index.name))
                elif not index.unique and any(self.implicit_index(index, fk) for fk in table.foreign_keys):
                    continue
                else:
                    indexes.append(index)
            return table.evolve(uniques=uniques, indexes=indexes)

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
        return self.Normalizer()(schema)

    # --- locking ---------------------------------------------------------

    @contextmanager
    def lock(self, connection: sa.Connection, name: str, timeout: float) -> Iterator[None]:
        """``GET_LOCK`` on the current database's name plus `name`, waiting up to `timeout` s.

        Named locks are server-wide, hence the database name; they belong to the
        session, so a killed process never leaves one behind.
        """
        database = run_settled(connection, "SELECT DATABASE()") or ""
        params: dict[str, object] = {"name": self._lock_name(f"{database}:{name}")}
        got = run_settled(connection, "SELECT GET_LOCK(:name, :timeout)", {**params, "timeout": max(timeout, 0.0)})
        if got != 1:
            raise lock_timeout(repr(name), timeout)
        try:
            yield
        finally:
            release_quietly(connection, "SELECT RELEASE_LOCK(:name)", params)

    @staticmethod
    def _lock_name(name: str) -> str:
        """`name` cut to the 64 characters MySQL allows, a hash keeping long names distinct."""
        if len(name) <= 64:
            return name
        return name[:47] + "-" + hashlib.blake2b(name.encode(), digest_size=8).hexdigest()

    # --- per-environment session settings (the environments work) ------------

    def session_setup(self, connection: "sa.Connection", env: "EnvConfig") -> None:
        """``SET SESSION max_statement_time`` (MariaDB, seconds) or ``max_execution_time`` (MySQL, ms).

        `schema` is refused: a MySQL schema is a database, named in the URL.
        """
        super().session_setup(connection, env)
        if env.statement_timeout is None:
            return
        if connection.dialect.is_mariadb:
            connection.exec_driver_sql(f"SET SESSION max_statement_time = {env.statement_timeout:.3f}")
        else:
            connection.exec_driver_sql(f"SET SESSION max_execution_time = {round(env.statement_timeout * 1000)}")
        connection.commit()
