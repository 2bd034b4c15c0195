"""Bulk reflection for MySQL and MariaDB: ``information_schema`` in six queries.

SQLAlchemy's MySQL reflection parses ``SHOW CREATE TABLE``, one query per table.
Here the catalogue comes from ``information_schema`` for the whole schema at once;
column types are still parsed by SQLAlchemy (its table-definition parser reads
each ``COLUMN_TYPE`` as it would a line of ``SHOW CREATE TABLE``), so they match
what SQLAlchemy itself reflects. Shapes follow SQLAlchemy's reflection dicts.

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

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.mysql.reflection import ReflectedState

from .reflect import RawSchema, Reflected, remember_quiet

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")

_TABLES = """
SELECT TABLE_NAME, TABLE_COLLATION, TABLE_COMMENT FROM information_schema.TABLES
WHERE TABLE_SCHEMA = :schema AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')
"""
_COLUMNS = """
SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_SET_NAME,
       COLLATION_NAME, EXTRA, COLUMN_COMMENT, GENERATION_EXPRESSION
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :schema
ORDER BY TABLE_NAME, ORDINAL_POSITION
"""
_INDEXES = """
SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, COLLATION FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = :schema ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX
"""
# Two queries joined here: MariaDB joins these two views by reading every database's tables.
_FOREIGN_KEYS = """
SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME,
       REFERENCED_COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = :schema AND REFERENCED_TABLE_NAME IS NOT NULL
ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION
"""
_FOREIGN_KEY_RULES = """
SELECT TABLE_NAME, CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = :schema
"""
# MariaDB lists checks with their table and level; MySQL needs TABLE_CONSTRAINTS for the table.
_CHECKS_MARIADB = """
SELECT TABLE_NAME, CONSTRAINT_NAME, LEVEL, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = :schema ORDER BY TABLE_NAME, CONSTRAINT_NAME
"""
_CHECKS_MYSQL = """
SELECT t.TABLE_NAME, c.CONSTRAINT_NAME, 'Table', c.CHECK_CLAUSE
FROM information_schema.TABLE_CONSTRAINTS AS t
JOIN information_schema.CHECK_CONSTRAINTS AS c
  ON c.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA AND c.CONSTRAINT_NAME = t.CONSTRAINT_NAME
WHERE t.TABLE_SCHEMA = :schema AND t.CONSTRAINT_TYPE = 'CHECK' ORDER BY t.TABLE_NAME, c.CONSTRAINT_NAME
"""


def read(connection: sa.Connection, schema: str | None) -> RawSchema:
    """The catalogue of database `schema` (the connection's current database when None)."""
    dialect = connection.dialect
    name = schema or connection.exec_driver_sql("SELECT DATABASE()").scalar()
    params = {"schema": name}
    raw = RawSchema()
    collations: dict[str, str | None] = {}
    for table, collation, comment in connection.execute(sa.text(_TABLES), params):
        raw.columns[table] = []
        collations[table] = collation
        raw.comments[table] = comment or None

    json_columns = _read_checks(connection, params, raw)
    types: dict[str, Any] = {}
    for row in connection.execute(sa.text(_COLUMNS), params).all():
        if row.TABLE_NAME in raw.columns:
            column = _column(row, dialect, collations[row.TABLE_NAME], types)
            if (row.TABLE_NAME, row.COLUMN_NAME) in json_columns:
                column["type"] = sa.JSON()
            raw.columns[row.TABLE_NAME].append(column)

    _read_indexes(connection, params, raw)
    _read_foreign_keys(connection, params, raw)
    return raw


def _column(row: Any, dialect: Any, table_collation: str | None, types: dict[str, Any]) -> Reflected:
    """One column in SQLAlchemy's shape; its type parsed by SQLAlchemy's MySQL parser.

    Columns with a plain name (which cannot change the parse) share the type
    parsed for the first column declared alike, from `types`.
    """
    definition = str(row.COLUMN_TYPE)
    if row.COLLATION_NAME and row.COLLATION_NAME != table_collation:
        definition += f" CHARACTER SET {row.CHARACTER_SET_NAME} COLLATE {row.COLLATION_NAME}"
    plain = _PLAIN_NAME.fullmatch(row.COLUMN_NAME) is not None
    satype = types.get(definition) if plain else None
    if satype is None:
        line = f"  {dialect.identifier_preparer.quote_identifier(row.COLUMN_NAME)} {definition}"
        satype = remember_quiet(types, definition, lambda: _parse_type(dialect, line)) if plain else None
        satype = satype if satype is not None else _parse_type(dialect, line)
    extra = (row.EXTRA or "").upper()
    column: Reflected = {
        "name": row.COLUMN_NAME,
        "type": satype,
        "nullable": row.IS_NULLABLE == "YES",
        "default": _default(row.COLUMN_DEFAULT, extra, bool(dialect.is_mariadb)),
        "autoincrement": "AUTO_INCREMENT" in extra,
        "comment": row.COLUMN_COMMENT or None,
    }
    if "GENERATED" in extra and "DEFAULT_GENERATED" not in extra and row.GENERATION_EXPRESSION:
        column["default"] = None
        persisted = "STORED" in extra or "PERSISTENT" in extra
        column["computed"] = {"sqltext": row.GENERATION_EXPRESSION, "persisted": persisted}
    return column


def _parse_type(dialect: Any, line: str) -> Any:
    """The type SQLAlchemy's ``SHOW CREATE TABLE`` parser reads from a column line; ``TINYINT(1)`` a boolean."""
    state = ReflectedState()
    dialect._tabledef_parser._parse_column(line, state)
    satype = state.columns[0]["type"] if state.columns else sa.types.NULLTYPE
    if isinstance(satype, mysql.TINYINT) and satype.display_width == 1:
        satype = sa.Boolean()
    return satype


def _default(value: str | None, extra: str, mariadb: bool) -> str | None:
    """The default as SQL text: MariaDB reports it so (``NULL`` for none); MySQL quotes nothing."""
    if value is None:
        return None
    if mariadb:
        return None if value == "NULL" else value
    if "DEFAULT_GENERATED" in extra:
        return value
    return "'" + value.replace("'", "''") + "'"


def _read_checks(connection: sa.Connection, params: dict[str, Any], raw: RawSchema) -> set[tuple[str, str]]:
    """Fill `raw.checks`; return the (table, column) pairs MariaDB marks as JSON with ``json_valid``."""
    dialect = connection.dialect
    version = dialect.server_version_info or ()
    mariadb = bool(dialect.is_mariadb)  # type: ignore[attr-defined]
    if version < ((10, 2, 22) if mariadb else (8, 0, 16)):  # no CHECK_CONSTRAINTS table before
        return set()
    json_columns: set[tuple[str, str]] = set()
    query = sa.text(_CHECKS_MARIADB if mariadb else _CHECKS_MYSQL)
    for table, name, level, clause in connection.execute(query, params):
        if table not in raw.columns:
            continue
        if level == "Column" and clause.replace(" ", "").lower() == f"json_valid(`{name}`)".lower():
            json_columns.add((table, name))
            continue
        raw.checks.setdefault(table, []).append({"name": name, "sqltext": clause})
    return json_columns


def _read_indexes(connection: sa.Connection, params: dict[str, Any], raw: RawSchema) -> None:
    indexes: dict[tuple[str, str], Reflected] = {}
    for table, name, non_unique, column, collation in connection.execute(sa.text(_INDEXES), params):
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
        index["column_names"].append(column)
        if collation == "D":  # a descending key part
            index.setdefault("column_sorting", {})[column] = ("desc",)


def _read_foreign_keys(connection: sa.Connection, params: dict[str, Any], raw: RawSchema) -> None:
    keys: dict[tuple[str, str], Reflected] = {}
    rules = {(t, n): (update, delete) for t, n, update, delete in connection.execute(sa.text(_FOREIGN_KEY_RULES), params)}
    for row in connection.execute(sa.text(_FOREIGN_KEYS), params):
        if row.TABLE_NAME not in raw.columns or (row.TABLE_NAME, row.CONSTRAINT_NAME) not in rules:
            continue
        fk = keys.get((row.TABLE_NAME, row.CONSTRAINT_NAME))
        if fk is None:
            update, delete = rules[(row.TABLE_NAME, row.CONSTRAINT_NAME)]
            options = {"ondelete": delete, "onupdate": update}
            fk = keys[(row.TABLE_NAME, row.CONSTRAINT_NAME)] = {
                "name": row.CONSTRAINT_NAME,
                "constrained_columns": [],
                "referred_schema": row.REFERENCED_TABLE_SCHEMA,
                "referred_table": row.REFERENCED_TABLE_NAME,
                "referred_columns": [],
                "options": {key: value for key, value in options.items() if value},
            }
            raw.foreign_keys.setdefault(row.TABLE_NAME, []).append(fk)
        fk["constrained_columns"].append(row.COLUMN_NAME)
        fk["referred_columns"].append(row.REFERENCED_COLUMN_NAME)
