"""Reflect standalone sequences, and which columns take their default from one.

PostgreSQL: the ``pg_sequence`` catalogue (not the ``pg_sequences`` view, which
is six times slower with thousands of SERIAL sequences), leaving out the sequences a SERIAL or identity
column owns (``pg_depend`` kinds ``a`` and ``i``): those belong to their column.
MariaDB: the tables of type ``SEQUENCE``, their options read in one ``UNION ALL``
query. Databases without sequences (SQLite, MySQL) have none.

A column whose default is ``nextval(<standalone sequence>)`` gets that sequence's
key as `Column.sequence` and loses the default, as the models describe it.
"""

from __future__ import annotations

import re
from typing import Iterable

import sqlalchemy as sa

from schemashift.model.schema import Column, Sequence, Table, qualify

_POSTGRESQL = """
SELECT c.relname, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle
FROM pg_catalog.pg_sequence AS s
JOIN pg_catalog.pg_class AS c ON c.oid = s.seqrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = COALESCE(:schema, current_schema())
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend AS d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  )
ORDER BY c.relname
"""
_MARIADB_NAMES = """
SELECT TABLE_NAME FROM information_schema.TABLES
WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_NAME
"""
_NEXTVAL = re.compile(r"^\s*nextval\s*\(\s*'?(?P<ref>.+?)'?\s*(?:::\s*regclass)?\s*\)\s*$", re.IGNORECASE | re.DOTALL)
_PART = re.compile(r'"((?:[^"]|"")*)"|`((?:[^`]|``)*)`|([^."`]+)')


def read_sequences(connection: sa.Connection, schema: str | None, key_schema: str | None) -> list[Sequence]:
    """The standalone sequences of database schema `schema` (None: the default), keyed under `key_schema`."""
    dialect = connection.dialect
    if not getattr(dialect, "supports_sequences", False):
        return []
    if dialect.name == "postgresql":
        rows = connection.execute(sa.text(_POSTGRESQL), {"schema": schema}).all()
    elif dialect.name in ("mysql", "mariadb"):
        rows = _mariadb_rows(connection, schema)
    else:
        return []
    return [
        Sequence(name, key_schema, int(start), int(increment), int(minimum), int(maximum), bool(cycle))
        for name, start, increment, minimum, maximum, cycle in rows
    ]


def _mariadb_rows(connection: sa.Connection, schema: str | None) -> list[tuple[object, ...]]:
    names = connection.execute(sa.text(_MARIADB_NAMES), {"schema": schema}).scalars().all()
    if not names:
        return []
    quote = connection.dialect.identifier_preparer.quote
    prefix = f"{quote(schema)}." if schema else ""
    selects = [
        f"SELECT :n{i}, start_value, increment, minimum_value, maximum_value, cycle_option FROM {prefix}{quote(name)}"
        for i, name in enumerate(names)
    ]
    params = {f"n{i}": name for i, name in enumerate(names)}
    return [tuple(row) for row in connection.execute(sa.text(" UNION ALL ".join(selects)), params)]


def sequence_reference(default: str | None) -> tuple[str | None, str] | None:
    """``(schema, name)`` of the sequence a ``nextval(…)`` default reads, else None."""
    if default is None:
        return None
    match = _NEXTVAL.match(default)
    if match is None:
        return None
    parts = [_unquote(m) for m in _PART.finditer(match["ref"].strip())]
    if not parts or len(parts) > 2:
        return None
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _unquote(match: re.Match[str]) -> str:
    double, backtick, plain = match.groups()
    if double is not None:
        return double.replace('""', '"')
    if backtick is not None:
        return backtick.replace("``", "`")
    return plain


def link_columns(
    tables: Iterable[Table], sequences: Iterable[Sequence], default_schema: str | None
) -> list[Table]:
    """`tables` with each ``nextval(<standalone sequence>)`` default turned into `Column.sequence`."""
    known = {sequence.key for sequence in sequences}
    result: list[Table] = []
    for table in tables:
        columns = tuple(_linked(column, table, known, default_schema) for column in table.columns)
        result.append(table if columns == table.columns else table.evolve(columns=columns))
    return result


def _linked(column: Column, table: Table, known: set[str], default_schema: str | None) -> Column:
    reference = sequence_reference(column.default)
    if reference is None:
        return column
    schema, name = reference
    candidates = [qualify(name, None if schema == default_schema else schema)]
    if schema is not None and schema == table.schema:
        candidates.append(name)  # SQLAlchemy qualifies unqualified names with the table's schema
    for key in candidates:
        if key in known:
            return column.evolve(sequence=key, default=None, autoincrement=False)
    return column
