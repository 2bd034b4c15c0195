"""Bulk reflection for PostgreSQL: a schema's catalogue in a few ``pg_catalog`` queries without IN-lists.

SQLAlchemy's ``get_multi_*`` read primary keys, unique constraints and indexes
with ``IN (...)`` lists holding every table's oid — thousands of parameters the
driver splits client-side and the server plans per query. Here those three are
read with the tables filtered by schema instead (``pg_table_is_visible`` for the
default schema, as SQLAlchemy does), and shaped as SQLAlchemy shapes them.
Columns, foreign keys and check constraints come from SQLAlchemy's own queries,
which filter the same way; column rows are fetched at once and parsed by
SQLAlchemy's own parsing (`schemashift.sacompat.pg_columns_info`), each distinct type once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine.reflection import ObjectKind, ObjectScope

from schemashift.model import schema as neutral
from schemashift.reflection.core import RawSchema, Reflected, remember_quiet
from schemashift.reflection.sequences import sequences_of
from schemashift.sacompat import pg_columns_info, pg_columns_query, pg_non_default_opclasses, pg_parse_type

_SCOPE, _KIND = ObjectScope.DEFAULT, ObjectKind.TABLE

#: The tables SQLAlchemy reflects for ObjectKind.TABLE, ObjectScope.DEFAULT (``c``), with their schema (``n``).
_FROM = "FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
_WHERE = "c.relkind IN ('r', 'p', 'f') AND c.relpersistence <> 't' AND {schema}"
_DEFAULT_SCHEMA = "pg_catalog.pg_table_is_visible(c.oid) AND n.nspname <> 'pg_catalog'"
_NAMED_SCHEMA = "n.nspname = :schema"

_COMMENTS = """
SELECT c.relname, d.description {from_}
LEFT JOIN pg_catalog.pg_description AS d
  ON d.objoid = c.oid AND d.objsubid = 0 AND d.classoid = 'pg_catalog.pg_class'::regclass
WHERE {where}
"""
#: Primary keys and unique constraints: columns in key order, then INCLUDE columns.
_CONSTRAINTS = """
SELECT c.relname, con.contype::text AS contype, con.conname, e.cols, d.description, {keys} AS keys,
       {nulls} AS nulls_not_distinct
{from_}
JOIN pg_catalog.pg_constraint AS con ON con.conrelid = c.oid AND con.contype IN ('p', 'u')
JOIN pg_catalog.pg_index AS i ON i.indexrelid = con.conindid
CROSS JOIN LATERAL (
  SELECT array_agg((SELECT a.attname::text FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = con.conrelid AND a.attnum = k.attnum) ORDER BY k.ord) AS cols
  FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
) AS e
LEFT JOIN pg_catalog.pg_description AS d
  ON d.objoid = con.oid AND d.classoid = 'pg_catalog.pg_constraint'::regclass AND d.objsubid = 0
WHERE {where}
ORDER BY c.relname, con.conname
"""
#: Indexes other than primary keys; an expression element is read with pg_get_indexdef. Each column name
#: is an index look-up (a join to pg_attribute makes the planner hash every column of the table per index).
_INDEXES = """
SELECT c.relname AS table_name, ic.relname AS name, i.indisunique, i.indisvalid,
       EXISTS (
         SELECT 1 FROM pg_catalog.pg_constraint AS con
         WHERE con.conrelid = i.indrelid AND con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')
       ) AS has_constraint,
       i.indoption::int2[] AS indoption, ic.reloptions, am.amname,
       CASE WHEN i.indpred IS NOT NULL THEN pg_catalog.pg_get_expr(i.indpred, i.indrelid) END AS filter_definition,
       {keys} AS keys, {nulls} AS nulls_not_distinct,
       e.elements, e.is_expr, e.opclasses
{from_}
JOIN pg_catalog.pg_index AS i ON i.indrelid = c.oid AND NOT i.indisprimary
JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am AS am ON am.oid = ic.relam
CROSS JOIN LATERAL (
  SELECT array_agg(
           CASE WHEN k.attnum = 0 THEN pg_catalog.pg_get_indexdef(i.indexrelid, k.ord::int, true)
                ELSE (SELECT a.attname::text FROM pg_catalog.pg_attribute AS a
                      WHERE a.attrelid = i.indrelid AND a.attnum = k.attnum) END ORDER BY k.ord) AS elements,
         array_agg(k.attnum = 0 ORDER BY k.ord) AS is_expr,
         array_agg(k.opclass::bigint ORDER BY k.ord) AS opclasses
  FROM unnest(i.indkey::int2[], i.indclass::oid[]) WITH ORDINALITY AS k(attnum, opclass, ord)
) AS e
WHERE {where}
ORDER BY c.relname, ic.relname
"""


def read(connection: sa.Connection, schema: str | None) -> RawSchema:
    """The catalogue of `schema` (the tables visible on the search path when None)."""
    dialect = connection.dialect
    assert isinstance(dialect, PGDialect)
    params = {} if schema is None else {"schema": schema}
    parts = {"from_": _FROM, "where": _WHERE.format(schema=_DEFAULT_SCHEMA if schema is None else _NAMED_SCHEMA)}
    version = dialect.server_version_info or ()
    keys = "i.indnkeyatts" if version >= (11,) else "i.indnatts"
    nulls = "i.indnullsnotdistinct" if version >= (15,) else "false"

    raw = RawSchema(columns=_columns(connection, dialect, schema))
    for name, comment in connection.execute(sa.text(_COMMENTS.format(**parts)), params).all():
        raw.comments[name] = comment
    query = _CONSTRAINTS.format(**parts, keys=keys, nulls=nulls)
    _constraints(connection.execute(sa.text(query), params).all(), raw, version)
    query = _INDEXES.format(**parts, keys=keys, nulls=nulls)
    opclasses = pg_non_default_opclasses(dialect, connection)
    for row in connection.execute(sa.text(query), params).mappings().all():
        raw.indexes.setdefault(row["table_name"], []).append(_index(row, opclasses, version))
    raw.foreign_keys = _multi(dialect.get_multi_foreign_keys(  # type: ignore[no-untyped-call]
        connection, schema, None, _SCOPE, _KIND))
    raw.checks = _multi(dialect.get_multi_check_constraints(  # type: ignore[no-untyped-call]
        connection, schema, None, _SCOPE, _KIND))
    return raw


def _multi(found: Any) -> dict[str, Any]:
    """A dialect ``get_multi_*`` answer keyed by table name."""
    return {name: value for (_, name), value in found}


def _columns(connection: sa.Connection, dialect: PGDialect, schema: str | None) -> dict[str, list[Reflected]]:
    """SQLAlchemy's ``get_multi_columns``: its query, its parsing, with each distinct type parsed once."""
    rows = connection.execute(pg_columns_query(dialect, schema, _SCOPE, _KIND)).mappings().all()
    memo: dict[tuple[Any, ...], Any] = {}

    def once(parse: Callable[[], Any], key: tuple[Any, ...]) -> Any:
        """Each distinct type parsed once: columns typed alike share one type object (the shapes are only read
        afterwards); a type whose parsing warns is parsed again for every column, so the warnings name each one."""
        return remember_quiet(memo, key, parse)

    return _multi(pg_columns_info(dialect, connection, rows, schema, once).items())


def _constraints(rows: Sequence[Any], raw: RawSchema, version: tuple[int, ...]) -> None:
    """Primary keys and unique constraints in SQLAlchemy's shapes (INCLUDE columns as a dialect option)."""
    for table, kind, name, columns, comment, keys, nulls_not_distinct in rows:
        options: dict[str, Any] = {}
        if version >= (11,):
            options["postgresql_include"] = columns[keys:]
        if kind == "p":
            raw.primary_keys[table] = {"constrained_columns": columns[:keys], "name": name, "comment": comment}
            if options:
                raw.primary_keys[table]["dialect_options"] = options
            continue
        options["postgresql_nulls_not_distinct"] = nulls_not_distinct
        unique = {"column_names": columns[:keys], "name": name, "comment": comment, "dialect_options": options}
        raw.uniques.setdefault(table, []).append(unique)


def _index(row: Any, opclasses: dict[int, str], version: tuple[int, ...]) -> Reflected:
    """One index in SQLAlchemy's shape."""
    keys = row["keys"]
    elements, included = row["elements"][:keys], row["elements"][keys:]
    is_expr = row["is_expr"][:keys]
    index: Reflected = {"name": row["name"], "unique": row["indisunique"]}
    if any(is_expr):
        index["column_names"] = [None if expr else element for element, expr in zip(elements, is_expr, strict=False)]
        index["expressions"] = elements
    else:
        index["column_names"] = elements
    sorting = {elements[i]: order for i, order in enumerate(map(_sorting, row["indoption"])) if order}
    if sorting:
        index["column_sorting"] = sorting
    if row["has_constraint"]:
        index["duplicates_constraint"] = row["name"]
    options = _index_options(row, elements, opclasses, included, version)
    if options:
        index["dialect_options"] = options
    return index


def _sorting(flags: int) -> tuple[str, ...]:
    """``indoption`` bits as SQLAlchemy names them, where they differ from the default order."""
    if flags & 0x01:
        return ("desc",) if flags & 0x02 else ("desc", "nulls_last")
    return ("nulls_first",) if flags & 0x02 else ()


def _index_options(
    row: Any, elements: list[str], opclasses: dict[int, str], included: list[str], version: tuple[int, ...]
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    ops = {e: opclasses[o] for e, o in zip(elements, row["opclasses"][: len(elements)], strict=False) if o in opclasses}
    if ops:
        options["postgresql_ops"] = ops
    if row["reloptions"]:
        options["postgresql_with"] = dict(option.split("=", 1) for option in row["reloptions"])
    if row["amname"] != "btree":
        options["postgresql_using"] = row["amname"]
    if row["filter_definition"]:
        options["postgresql_where"] = row["filter_definition"]
    if version >= (11,):
        options["postgresql_include"] = included
    if row["nulls_not_distinct"]:
        options["postgresql_nulls_not_distinct"] = row["nulls_not_distinct"]
    if not row["indisvalid"]:
        options["postgresql_invalid"] = True
    return options


class _NoNamedTypes:
    """A named-type loader that knows no enums or domains (DDL text of built-in types only)."""

    enums: ClassVar[dict[Any, Any]] = {}
    domains: ClassVar[dict[Any, Any]] = {}


def parse_type_text(sql: str) -> Any:
    """The SQLAlchemy type PostgreSQL's reflection reads from a column of DDL type `sql`; None when unknown."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        text = re.sub(r"^varchar\b", "character varying", re.sub(r"^char\b", "character", sql.strip().lower()))
        found = pg_parse_type(_OFFLINE, text, _NoNamedTypes())
    return None if isinstance(found, sa.types.NullType) else found


_OFFLINE = PGDialect()  # type: ignore[no-untyped-call]


_SEQUENCES = """
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


def read_sequences(connection: sa.Connection, schema: str | None, key_schema: str | None) -> list[neutral.Sequence]:
    """The standalone sequences of `schema`, keyed under `key_schema`.

    Read from the ``pg_sequence`` catalogue (not the ``pg_sequences`` view, which is
    six times slower with thousands of SERIAL sequences), leaving out the sequences
    a SERIAL or identity column owns (``pg_depend`` kinds ``a`` and ``i``): those
    belong to their column.
    """
    if not connection.dialect.supports_sequences:
        return []
    rows = connection.execute(sa.text(_SEQUENCES), {"schema": schema}).all()
    return sequences_of((tuple(row) for row in rows), key_schema)
