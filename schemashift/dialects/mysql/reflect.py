"""Bulk reflection for MySQL and MariaDB: ``information_schema`` in six queries.

SQLAlchemy's MySQL reflection parses ``SHOW CREATE TABLE``, one query per table.
Here the catalogue comes from ``information_schema`` for the whole schema at once;
column types are still parsed by SQLAlchemy (its table-definition parser reads
each ``COLUMN_TYPE`` as it would a line of ``SHOW CREATE TABLE``), so they match
what SQLAlchemy itself reflects. Shapes follow SQLAlchemy's reflection dicts.

On MariaDB 10.5+ every query but the table list comes back aggregated as JSON
arrays of rows (``JSON_ARRAYAGG(JSON_ARRAY(…) ORDER BY …)``): one per table for
columns and indexes, one for the whole schema for checks and foreign keys. They
are decoded by ``json.loads``, so the driver parses a few thousand fields
instead of hundreds of thousands (PyMySQL decodes each field in Python). The
decoded rows are the plain rows, in the same order, and go through the same
code. An aggregate that is missing, not JSON, or of the wrong count or shape (or
a server refusing the statement) makes `read` start again from plain rows
(`read_rows`), which MySQL always uses: its ``JSON_ARRAYAGG`` cannot order.

Read as they are stored:

* unique keys are reported as unique constraints (MySQL has no separate kind);
* ``TINYINT(1)`` is a boolean;
* a MariaDB ``LONGTEXT`` with its column-level ``CHECK (json_valid(col))`` is JSON
  (that check is not reported);
* a collation is reported only where it differs from the table's default;
* MariaDB quotes literal defaults and reports no default as ``NULL``; MySQL does
  not quote them and flags expressions with ``DEFAULT_GENERATED`` — both end up
  as SQL text (``'abc'``, ``0``, ``current_timestamp()``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.mysql.reflection import ReflectedState

from schemashift.model import schema as neutral
from schemashift.reflection.core import RawSchema, Reflected, remember_quiet
from schemashift.reflection.sequences import sequences_of
from schemashift.sacompat import mysql_parse_column

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")

#: ``group_concat_max_len`` while aggregating (the session's, 1 MiB by default, would cut a big
#: schema's foreign keys). ``max_allowed_packet`` still caps each aggregate; one cut short is detected.
_AGGREGATE_MAX_LEN = 1 << 30


@dataclass(frozen=True)
class _Query:
    """Rows ``TABLE_NAME, <columns>`` of `source` (``FROM … WHERE …``), by table then `order` (None: any order).

    Aggregated, `per_table` gives one JSON array per table (bounded by the
    table's size); else one array for all, for queries with few rows per table.
    """

    columns: str
    source: str
    order: str | None
    per_table: bool = True

    @property
    def width(self) -> int:
        """Fields per row: ``TABLE_NAME`` and `columns`."""
        return 1 + len(self.columns.split(","))

    def rows_sql(self) -> str:
        order = "" if self.order is None else f" ORDER BY TABLE_NAME, {self.order}"
        return f"SELECT TABLE_NAME, {self.columns} {self.source}{order}"

    def aggregated_sql(self) -> str:
        """Rows of a row count and those rows as a JSON array of arrays, in the plain rows' order.

        Each element carries its table name: ``GROUP BY`` compares names
        case-insensitively, so ``Foo`` and ``foo`` may share a group. Such tables tie
        in plain rows' order too, so they may come in another order; each table's
        own rows keep theirs (`order` is unique within a table).
        """
        if self.per_table:
            order = "" if self.order is None else f" ORDER BY {self.order}"
            group = " GROUP BY TABLE_NAME ORDER BY TABLE_NAME"
        else:
            order = "" if self.order is None else f" ORDER BY TABLE_NAME, {self.order}"
            group = ""
        return (
            f"SET STATEMENT group_concat_max_len = {_AGGREGATE_MAX_LEN} FOR "
            f"SELECT COUNT(*), JSON_ARRAYAGG(JSON_ARRAY(TABLE_NAME, {self.columns}){order}) {self.source}{group}"
        )


_TABLES = """
SELECT TABLE_NAME, TABLE_COLLATION, TABLE_COMMENT FROM information_schema.TABLES
WHERE TABLE_SCHEMA = :schema AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')
"""
_COLUMNS = _Query(
    "COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_SET_NAME, "
    "COLLATION_NAME, EXTRA, COLUMN_COMMENT, GENERATION_EXPRESSION",
    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :schema",
    "ORDINAL_POSITION",
)
_INDEXES = _Query(
    "INDEX_NAME, NON_UNIQUE, COLUMN_NAME, COLLATION, SUB_PART, INDEX_TYPE",
    "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = :schema",
    "INDEX_NAME, SEQ_IN_INDEX",
)
# Before 10.8 MariaDB ignores DESC, so no key part is 'D'; and its COLLATION opens every table's
# storage engine (the other columns need only the table definition), the costliest part of reading.
_INDEXES_NO_COLLATION = replace(_INDEXES, columns="INDEX_NAME, NON_UNIQUE, COLUMN_NAME, NULL, SUB_PART, INDEX_TYPE")
# Two queries joined here: MariaDB joins these two views by reading every database's tables.
_FOREIGN_KEYS = _Query(
    "CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME",
    "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = :schema AND REFERENCED_TABLE_NAME IS NOT NULL",
    "CONSTRAINT_NAME, ORDINAL_POSITION",
    per_table=False,
)
_FOREIGN_KEY_RULES = _Query(
    "CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE",
    "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = :schema",
    None,
    per_table=False,
)
# MariaDB lists checks with their table and level; MySQL needs TABLE_CONSTRAINTS for the table.
_CHECKS_MARIADB = _Query(
    "CONSTRAINT_NAME, LEVEL, CHECK_CLAUSE",
    "FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = :schema",
    "CONSTRAINT_NAME",
    per_table=False,
)
_CHECKS_MYSQL = """
SELECT t.TABLE_NAME, c.CONSTRAINT_NAME, 'Table', c.CHECK_CLAUSE
FROM information_schema.TABLE_CONSTRAINTS AS t
JOIN information_schema.CHECK_CONSTRAINTS AS c
  ON c.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA AND c.CONSTRAINT_NAME = t.CONSTRAINT_NAME
WHERE t.TABLE_SCHEMA = :schema AND t.CONSTRAINT_TYPE = 'CHECK' ORDER BY t.TABLE_NAME, c.CONSTRAINT_NAME
"""

Fetch = Callable[[sa.Connection, _Query, "dict[str, Any]"], Iterable[Sequence[Any]]]


class _Unreadable(Exception):
    """An aggregated answer that does not look like the rows it stands for."""


def read(connection: sa.Connection, schema: str | None) -> RawSchema:
    """The catalogue of database `schema` (the connection's current database when None).

    Aggregated on MariaDB 10.5+; the same result as `read_rows`.
    """
    dialect = connection.dialect
    if getattr(dialect, "is_mariadb", False) and (dialect.server_version_info or ()) >= (10, 5):
        try:
            return _read(connection, schema, _aggregated_rows)
        except _Unreadable:
            pass
        except sa.exc.DBAPIError as exc:  # e.g. a proxy refusing SET STATEMENT: plain rows still work
            if exc.connection_invalidated:
                raise
    return read_rows(connection, schema)


def read_rows(connection: sa.Connection, schema: str | None) -> RawSchema:
    """The catalogue of database `schema` from plain rows, one per catalogue row."""
    return _read(connection, schema, _rows)


def _rows(connection: sa.Connection, query: _Query, params: dict[str, Any]) -> Iterable[Sequence[Any]]:
    return connection.execute(sa.text(query.rows_sql()), params)


def _aggregated_rows(connection: sa.Connection, query: _Query, params: dict[str, Any]) -> list[list[Any]]:
    """The rows of `query` from its per-table JSON aggregates; `_Unreadable` if any looks off (e.g. cut short)."""
    width = query.width
    rows: list[list[Any]] = []
    for count, aggregate in connection.execute(sa.text(query.aggregated_sql()), params):
        if count == 0:  # no rows at all: no group, or one with a NULL aggregate
            continue
        try:
            items = json.loads(aggregate)
        except (TypeError, ValueError) as exc:  # NULL or cut off (at max_allowed_packet, with a warning)
            raise _Unreadable(query.source) from exc
        if type(items) is not list or len(items) != count:
            raise _Unreadable(query.source)
        for item in items:
            if type(item) is not list or len(item) != width:
                raise _Unreadable(query.source)
        rows += items
    return rows


def _read(connection: sa.Connection, schema: str | None, fetch: Fetch) -> RawSchema:
    name = schema or connection.exec_driver_sql("SELECT DATABASE()").scalar()
    params = {"schema": name}
    raw = RawSchema()
    collations: dict[str, str | None] = {}
    for table, collation, comment in connection.execute(sa.text(_TABLES), params):
        raw.columns[table] = []
        collations[table] = collation
        raw.comments[table] = comment or None
    json_columns = _read_checks(connection, params, raw, fetch)
    _read_columns(connection, params, raw, collations, json_columns, fetch)
    _read_indexes(connection, params, raw, fetch)
    _read_foreign_keys(connection, params, raw, fetch)
    return raw


def _read_columns(
    connection: sa.Connection,
    params: dict[str, Any],
    raw: RawSchema,
    collations: dict[str, str | None],
    json_columns: set[tuple[str, str]],
    fetch: Fetch,
) -> None:
    """Fill `raw.columns` (views' columns are left out: `raw.columns` lists base tables only)."""
    dialect = connection.dialect
    mariadb = bool(getattr(dialect, "is_mariadb", False))
    types: dict[str, Any] = {}
    for row in fetch(connection, _COLUMNS, params):
        columns = raw.columns.get(row[0])
        if columns is None:
            continue
        column = _column(row, dialect, mariadb, collations[row[0]], types)
        if json_columns and (row[0], row[1]) in json_columns:
            column["type"] = sa.JSON()
        columns.append(column)


def _column(
    row: Sequence[Any], dialect: Any, mariadb: bool, table_collation: str | None, types: dict[str, Any]
) -> Reflected:
    """One column in SQLAlchemy's shape; its type parsed by SQLAlchemy's MySQL parser.

    Columns with a plain name (which cannot change the parse) share the type
    parsed for the first column declared alike, from `types`.
    """
    _, name, column_type, nullable, default, charset, collation, extra, comment, generated = row
    definition = str(column_type)
    if collation and collation != table_collation:
        definition += f" CHARACTER SET {charset} COLLATE {collation}"
    def parse() -> Any:
        return _parse_type(dialect, f"  {dialect.identifier_preparer.quote_identifier(name)} {definition}")

    satype = remember_quiet(types, definition, parse) if _PLAIN_NAME.fullmatch(name) is not None else parse()
    extra = extra.upper() if extra else ""
    column: Reflected = {
        "name": name,
        "type": satype,
        "nullable": nullable == "YES",
        "default": _default(default, extra, mariadb),
        "autoincrement": "AUTO_INCREMENT" in extra,
        "comment": comment or None,
    }
    if generated and "GENERATED" in extra and "DEFAULT_GENERATED" not in extra:
        column["default"] = None
        persisted = "STORED" in extra or "PERSISTENT" in extra
        column["computed"] = {"sqltext": generated, "persisted": persisted}
    return column


def _parse_type(dialect: Any, line: str) -> Any:
    """The type SQLAlchemy's ``SHOW CREATE TABLE`` parser reads from a column line; ``TINYINT(1)`` a boolean."""
    state = ReflectedState()
    mysql_parse_column(dialect, line, state)
    satype = state.columns[0]["type"] if state.columns else sa.types.NULLTYPE
    if isinstance(satype, mysql.TINYINT) and satype.display_width == 1:
        satype = sa.Boolean()
    return satype


def parse_column_type(sql: str) -> Any:
    """The SQLAlchemy type the MySQL reflection reads from a column declared with type `sql` (DDL text)."""
    text = re.sub(r"^\s*[A-Za-z]+", lambda m: m.group().strip().lower(), sql)  # SHOW CREATE TABLE's spelling
    return _parse_type(_OFFLINE, f"  `c` {text}")


_OFFLINE = mysql.dialect()


def _default(value: str | None, extra: str, mariadb: bool) -> str | None:
    """The default as SQL text: MariaDB reports it so (``NULL`` for none); MySQL quotes nothing."""
    if value is None:
        return None
    if mariadb:
        return None if value == "NULL" else value
    if "DEFAULT_GENERATED" in extra:
        return value
    return "'" + value.replace("'", "''") + "'"


def _read_checks(
    connection: sa.Connection, params: dict[str, Any], raw: RawSchema, fetch: Fetch
) -> set[tuple[str, str]]:
    """Fill `raw.checks`; return the (table, column) pairs MariaDB marks as JSON with ``json_valid``."""
    dialect = connection.dialect
    version = dialect.server_version_info or ()
    mariadb = bool(getattr(dialect, "is_mariadb", False))
    if version < ((10, 2, 22) if mariadb else (8, 0, 16)):  # no CHECK_CONSTRAINTS table before
        return set()
    json_columns: set[tuple[str, str]] = set()
    rows = fetch(connection, _CHECKS_MARIADB, params) if mariadb else connection.execute(sa.text(_CHECKS_MYSQL), params)
    for table, name, level, clause in rows:
        if table not in raw.columns:
            continue
        if level == "Column" and clause.replace(" ", "").lower() == f"json_valid(`{name}`)".lower():
            json_columns.add((table, name))
            continue
        raw.checks.setdefault(table, []).append({"name": name, "sqltext": clause})
    return json_columns


def _read_indexes(connection: sa.Connection, params: dict[str, Any], raw: RawSchema, fetch: Fetch) -> None:
    dialect = connection.dialect
    old_mariadb = getattr(dialect, "is_mariadb", False) and (dialect.server_version_info or ()) < (10, 8)
    indexes: dict[tuple[str, str], Reflected] = {}
    prefix = dialect.name  # SQLAlchemy keys options by the dialect's name (``mysql_length``, ``mariadb_length``)
    for table, name, non_unique, column, collation, sub_part, index_type in fetch(
        connection, _INDEXES_NO_COLLATION if old_mariadb else _INDEXES, params
    ):
        if table not in raw.columns:
            continue
        if name == "PRIMARY":
            raw.primary_keys.setdefault(table, {"name": None, "constrained_columns": []})
            raw.primary_keys[table]["constrained_columns"].append(column)
            continue
        index = indexes.get((table, name))
        if index is None:
            index = indexes[(table, name)] = {"name": name, "column_names": [], "unique": not int(non_unique)}
            target = raw.uniques if index["unique"] else raw.indexes
            target.setdefault(table, []).append(index)
            if index_type in ("FULLTEXT", "SPATIAL"):
                index.setdefault("dialect_options", {})[f"{prefix}_prefix"] = index_type
        index["column_names"].append(column)
        if sub_part is not None:  # a key-part length
            lengths = index.setdefault("dialect_options", {}).setdefault(f"{prefix}_length", {})
            lengths[column] = int(sub_part)
        if collation == "D":  # a descending key part
            index.setdefault("column_sorting", {})[column] = ("desc",)


def _read_foreign_keys(connection: sa.Connection, params: dict[str, Any], raw: RawSchema, fetch: Fetch) -> None:
    rules = {(t, n): (update, delete) for t, n, update, delete in fetch(connection, _FOREIGN_KEY_RULES, params)}
    keys: dict[tuple[str, str], Reflected] = {}
    for table, name, column, ref_schema, ref_table, ref_column in fetch(connection, _FOREIGN_KEYS, params):
        if table not in raw.columns or (table, name) not in rules:
            continue
        fk = keys.get((table, name))
        if fk is None:
            update, delete = rules[(table, name)]
            options = {"ondelete": delete, "onupdate": update}
            fk = keys[(table, name)] = {
                "name": name,
                "constrained_columns": [],
                "referred_schema": ref_schema,
                "referred_table": ref_table,
                "referred_columns": [],
                "options": {key: value for key, value in options.items() if value},
            }
            raw.foreign_keys.setdefault(table, []).append(fk)
        fk["constrained_columns"].append(column)
        fk["referred_columns"].append(ref_column)


_SEQUENCE_NAMES = """
SELECT TABLE_NAME FROM information_schema.TABLES
WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_NAME
"""


def read_sequences(connection: sa.Connection, schema: str | None, key_schema: str | None) -> list[neutral.Sequence]:
    """MariaDB's standalone sequences of `schema`, keyed under `key_schema` (MySQL has none).

    The tables of type ``SEQUENCE``, their options read in one ``UNION ALL`` query.
    """
    if not connection.dialect.supports_sequences:
        return []
    names = connection.execute(sa.text(_SEQUENCE_NAMES), {"schema": schema}).scalars().all()
    if not names:
        return []
    quote = connection.dialect.identifier_preparer.quote
    prefix = f"{quote(schema)}." if schema else ""
    selects = [
        f"SELECT :n{i}, start_value, increment, minimum_value, maximum_value, cycle_option FROM {prefix}{quote(name)}"
        for i, name in enumerate(names)
    ]
    params = {f"n{i}": name for i, name in enumerate(names)}
    rows = connection.execute(sa.text(" UNION ALL ".join(selects)), params)
    return sequences_of((tuple(row) for row in rows), key_schema)


def current_database(connection: sa.Connection) -> str | None:
    """The database unqualified names resolve to."""
    return str(connection.exec_driver_sql("SELECT DATABASE()").scalar())
