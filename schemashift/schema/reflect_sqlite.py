"""Bulk reflection for SQLite: the whole catalogue in five queries, parsed by SQLAlchemy.

SQLAlchemy's SQLite reflection runs PRAGMAs per table (and per index). Here the
same PRAGMA rows are fetched for all tables at once through the table-valued
pragma functions (``pragma_table_xinfo(name)`` … joined to ``sqlite_master``),
then SQLAlchemy's own per-table methods run against a stand-in dialect that
answers their catalogue reads from those rows — so column types, defaults,
computed columns, constraint names and FK options are parsed exactly as
SQLAlchemy parses them, with no further query. Partial-index predicates and the
elements of expression indexes (which SQLAlchemy skips) are read from the stored
``CREATE INDEX`` text. Needs SQLite >= 3.26.

For speed, and with the same results: each declared type is resolved once,
each table's columns are read once, and SQLAlchemy's slow ``UNIQUE`` parse runs
on the CREATE TABLE lines that mention ``UNIQUE`` (see `_unique_lines`), only
for tables with an automatic unique index.
"""

from __future__ import annotations

import inspect
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from types import FunctionType
from typing import Any

import sqlalchemy as sa

from .reflect import RawSchema, Reflected, remember_quiet

#: Per-table pragmas fetched in bulk, with the order SQLAlchemy expects their rows in.
_PRAGMAS = {"table_xinfo": "p.cid", "foreign_key_list": "p.id, p.seq", "index_list": "p.seq"}
_PARTIAL_WHERE = re.compile(r"\)\s*WHERE\s+(?P<predicate>.+)$", re.IGNORECASE | re.DOTALL)
_DESC = re.compile("DESC", re.IGNORECASE)  # needed for _DESCENDING to match
_DESCENDING = re.compile(r"(.+?)\s+DESC", re.IGNORECASE | re.DOTALL)
_GENERATED = re.compile(r"\bAS\s*\(", re.IGNORECASE)
_UNIQUE = re.compile("UNIQUE", re.IGNORECASE)  # as SQLAlchemy's case-insensitive patterns match it
_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}

Row = tuple[Any, ...]


@dataclass
class _Catalogue:
    """Everything fetched: CREATE statements by name and PRAGMA rows by (pragma, table or index)."""

    table_sql: dict[str, str] = field(default_factory=dict)
    index_sql: dict[str, str] = field(default_factory=dict)
    rows: dict[tuple[str, str], list[Row]] = field(default_factory=lambda: defaultdict(list))

    @property
    def tables(self) -> list[str]:
        """Names of the tables, sorted."""
        return sorted({name for (pragma, name) in self.rows if pragma == "table_xinfo"})


def read(connection: sa.Connection, schema: str | None) -> RawSchema:
    """The catalogue of the attached database `schema` (``main`` when None)."""
    catalogue = _fetch(connection, schema or "main")
    stand_in = _Prefetched(connection.dialect, catalogue)
    unique_lines = {name: _unique_lines(sql) for name, sql in catalogue.table_sql.items()}
    uniques_in = _Prefetched(connection.dialect, replace(catalogue, table_sql=unique_lines))
    try:
        return _convert(catalogue, stand_in, uniques_in, connection, schema)
    finally:
        stand_in.close()  # the stand-ins hold methods bound to themselves: free them now, not at the next GC
        uniques_in.close()


def _convert(catalogue: _Catalogue, stand_in: _Prefetched, uniques_in: _Prefetched, connection: sa.Connection,
             schema: str | None) -> RawSchema:
    """SQLAlchemy's reflected shapes of every table in `catalogue`, read through the stand-ins."""
    raw = RawSchema()
    for table in catalogue.tables:
        expression_indexes = _take_expression_indexes(catalogue, table)  # before SQLAlchemy sees (and skips) them
        raw.columns[table] = _with_generated(stand_in.get_columns(connection, table, schema), catalogue, table)
        raw.primary_keys[table] = stand_in.get_pk_constraint(connection, table, schema)
        raw.foreign_keys[table] = stand_in.get_foreign_keys(connection, table, schema)
        raw.uniques[table] = _unique_constraints(uniques_in, connection, table, schema)
        raw.checks[table] = stand_in.get_check_constraints(connection, table, schema)
        indexes = stand_in.get_indexes(connection, table, schema) + expression_indexes
        for index in indexes:
            match = _PARTIAL_WHERE.search(catalogue.index_sql.get(index["name"], ""))
            if match:
                index.setdefault("dialect_options", {})["sqlite_where"] = match.group("predicate").strip()
            _read_sorting(index, catalogue.index_sql.get(index["name"], ""))
        raw.indexes[table] = indexes
    return raw


def _unique_constraints(stand_in: _Prefetched, connection: sa.Connection, table: str, schema: str | None) -> list[Reflected]:
    """SQLAlchemy's unique constraints of `table`; none without a ``sqlite_autoindex`` index, as SQLAlchemy finds.

    SQLAlchemy pairs each ``UNIQUE`` it parses from the CREATE TABLE text with an
    automatic index, so a table without one has none, and the parse is skipped.
    """
    if not any(row[1].startswith("sqlite_autoindex") for row in stand_in.rows("index_list", table)):
        return []
    return stand_in.get_unique_constraints(connection, table, schema)  # type: ignore[no-any-return]


def _unique_lines(sql: str | None) -> str | None:
    """The lines of a CREATE TABLE that mention ``UNIQUE``, when SQLAlchemy's unique parse finds the same in them.

    SQLAlchemy's patterns for ``UNIQUE`` clauses try a match at every character of
    the text, slowly. Every match holds the word UNIQUE, and can only reach past its
    line through whitespace around it: ``CONSTRAINT name`` ending the line before,
    or the column list starting on the next. So when each ``UNIQUE`` has at least
    two words (no quotes) before it and something after it on its line, its lines
    alone give the same matches; otherwise the whole text is kept.
    """
    if sql is None:
        return None
    kept: list[str] = []
    for line in sql.split("\n"):  # only a newline ends the patterns' "."
        found = list(_UNIQUE.finditer(line))
        for match in found:
            before, after = line[: match.start()], line[match.end() :]
            if '"' in before or len(before.split()) < 2 or not after.strip():
                return sql
        if found:
            kept.append(line)
    return "\n".join(kept)


def _read_sorting(index: Reflected, sql: str) -> None:
    """Set ``column_sorting`` for the columns the ``CREATE INDEX`` text sorts ``DESC`` (SQLAlchemy does not read it)."""
    names = index.get("column_names") or []
    if not _DESC.search(sql):
        return
    elements = _paren_elements(sql)
    if len(elements) != len(names):
        return
    for name, element in zip(names, elements):
        match = _DESCENDING.fullmatch(element)
        if name is not None and match and match.group(1).strip("\"`[]") == name:
            index.setdefault("column_sorting", {})[name] = ("desc",)


def _with_generated(columns: list[Reflected], catalogue: _Catalogue, table: str) -> list[Reflected]:
    """Generated-column expressions re-read with balanced parentheses.

    SQLAlchemy's pattern needs one column per line and misreads a CREATE TABLE
    written on a single line.
    """
    if any("computed" in column for column in columns):
        expressions = _generated_expressions(catalogue.table_sql.get(table) or "")
        for column in columns:
            if "computed" in column and column["name"].lower() in expressions:
                column["computed"]["sqltext"] = expressions[column["name"].lower()]
    return columns


def _fetch(connection: sa.Connection, database: str) -> _Catalogue:
    """Five queries: ``sqlite_master`` and four pragmas joined over every table."""
    master = f"{connection.dialect.identifier_preparer.quote_identifier(database)}.sqlite_master"
    tables_only = "m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    params = {"db": database}
    catalogue = _Catalogue()
    for kind, name, text in connection.execute(sa.text(f"SELECT m.type, m.name, m.sql FROM {master} AS m")):
        if kind == "table":
            catalogue.table_sql[name] = text
        elif kind == "index" and text:
            catalogue.index_sql[name] = text
    for pragma, order in _PRAGMAS.items():
        query = (
            f"SELECT m.name, p.* FROM {master} AS m JOIN pragma_{pragma}(m.name, :db) AS p "
            f"WHERE {tables_only} ORDER BY m.name, {order}"
        )
        for row in connection.execute(sa.text(query), params).all():
            catalogue.rows[(pragma, row[0])].append(row[1:])
    query = (
        f"SELECT i.name, p.* FROM {master} AS m JOIN pragma_index_list(m.name, :db) AS i "
        f"JOIN pragma_index_info(i.name, :db) AS p WHERE {tables_only} ORDER BY i.name, p.seqno"
    )
    for row in connection.execute(sa.text(query), params).all():
        catalogue.rows[("index_info", row[0])].append(row[1:])
    for table in catalogue.tables:
        catalogue.rows[("table_info", table)] = catalogue.rows[("table_xinfo", table)]
        # index_list rows: seq, name, unique, origin, partial. Predicates come from `index_sql`,
        # so the partial flag is cleared: SQLAlchemy would otherwise query each one.
        catalogue.rows[("index_list", table)] = [(*r[:4], 0, *r[5:]) for r in catalogue.rows[("index_list", table)]]
    return catalogue


def _take_expression_indexes(catalogue: _Catalogue, table: str) -> list[Reflected]:
    """Remove the expression indexes of `table` from the pragma rows and return them reflected."""
    plain: list[Row] = []
    found: list[Reflected] = []
    for row in catalogue.rows[("index_list", table)]:
        name = row[1]
        names = [info[2] for info in catalogue.rows.get(("index_info", name), ())]
        elements = _paren_elements(catalogue.index_sql.get(name, "")) if None in names else []
        if None not in names or len(elements) != len(names):
            plain.append(row)
            continue
        found.append({"name": name, "unique": bool(row[2]), "column_names": names, "expressions": elements})
    catalogue.rows[("index_list", table)] = plain
    return found


def _paren_elements(sql: str) -> list[str]:
    """The top-level comma-separated elements inside the first parentheses of `sql` (``[]`` if none)."""
    elements: list[str] = []
    depth, start, quote = 0, 0, ""
    for position, char in enumerate(sql):
        if quote:
            quote = "" if char == _QUOTES[quote] else quote
        elif char in _QUOTES:
            quote = char
        elif char == "(":
            depth += 1
            start = position + 1 if depth == 1 else start
        elif char == ")":
            depth -= 1
            if depth == 0:
                return elements + [sql[start:position].strip()]
        elif char == "," and depth == 1:
            elements.append(sql[start:position].strip())
            start = position + 1
    return []


def _generated_expressions(table_sql: str) -> dict[str, str]:
    """Column name (lower case) -> expression of each ``AS (expr)`` generated column in a CREATE TABLE."""
    found: dict[str, str] = {}
    for element in _paren_elements(table_sql):
        match = _GENERATED.search(element)
        if match is None:
            continue
        name = element.split(None, 1)[0].strip("\"`[]'")
        expression = _paren_elements(element[match.end() - 1 :])
        if len(expression) >= 1:
            found[name.lower()] = ", ".join(expression)
    return found


class _Prefetched:
    """Stands in for the SQLite dialect: its methods run unchanged, catalogue reads hit prefetched rows.

    Methods of the real dialect's class are bound to this object, so their calls to
    ``self._get_table_sql`` / ``self._get_table_pragma`` land here; every other
    attribute comes from the real dialect.
    """

    def __init__(self, dialect: sa.engine.Dialect, catalogue: _Catalogue) -> None:
        self._dialect = dialect
        self._catalogue = catalogue
        self._types: dict[str, Any] = {}
        self._columns: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        """The real dialect's attribute (its methods bound here), kept in the instance for the next look-up."""
        attribute = inspect.getattr_static(type(self._dialect), name, None)
        value = attribute.__get__(self) if isinstance(attribute, FunctionType) else getattr(self._dialect, name)
        self.__dict__[name] = value
        return value

    def _resolve_type_affinity(self, type_: str) -> Any:
        """SQLAlchemy's type for a declared type, once per distinct declaration.

        Columns declared alike share one type object: the reflected shapes are only
        read afterwards. A declaration SQLAlchemy warns about is not remembered, so it
        warns for every column as it would.
        """
        found = self._types.get(type_)
        if found is None:
            resolve = type(self._dialect)._resolve_type_affinity  # type: ignore[attr-defined]
            found = remember_quiet(self._types, type_, lambda: resolve(self, type_))
        return found

    def close(self) -> None:
        """Drop the looked-up attributes and memos (bound methods refer back to this object)."""
        self.__dict__.clear()

    def rows(self, pragma: str, name: str) -> list[Row]:
        """The prefetched rows of `pragma` for table or index `name`."""
        return self._catalogue.rows.get((pragma, name), [])

    def get_columns(self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any) -> Any:
        """SQLAlchemy's columns of `table_name`, read once (its primary-key reflection reads them again)."""
        found = self._columns.get(table_name)
        if found is None:
            found = self._columns[table_name] = type(self._dialect).get_columns(  # type: ignore[attr-defined]
                self, connection, table_name, schema, **kw
            )
        return found

    def _get_table_sql(self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any) -> Any:
        return self._catalogue.table_sql.get(table_name)

    def _get_table_pragma(self, connection: sa.Connection, pragma: str, table_name: str, schema: Any = None) -> Any:
        return list(self._catalogue.rows.get((pragma, table_name), ()))
