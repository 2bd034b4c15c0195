"""Bulk reflection for SQLite: the whole catalogue in four to six queries, read as SQLAlchemy reads it.

SQLAlchemy's SQLite reflection runs PRAGMAs per table (and per index). Here the
same PRAGMA rows are fetched for all tables at once through the table-valued
pragma functions (``pragma_table_xinfo(name)`` … joined to ``sqlite_master``);
index lists come from ``sqlite_master`` itself when that gives the same (see
`_fetch`). Partial-index predicates and the elements of expression indexes
(which SQLAlchemy skips) are read from the stored ``CREATE INDEX`` text. Needs
SQLite >= 3.26.

Each table is then read one of two ways, with the same result:

* the fast path (`_parse`, `_read_plain_table`): a CREATE TABLE text in the plain
  forms SQLAlchemy's DDL compiler writes (and SQLite's ``ADD COLUMN``/``RENAME``
  rewrites of them) is checked against a strict grammar in one regex match, its
  constraint clauses are read once, and SQLAlchemy's reflected shapes are built
  straight from them and the PRAGMA rows. The grammar only takes texts on which
  SQLAlchemy's own regexes find exactly those clauses (see the comment above
  `_KEYWORDS`): no comments, no ``[...]``/backtick quoting, elements on one line,
  constraint keywords only as keywords, no column-level ``UNIQUE`` or
  ``REFERENCES``, no generated columns, foreign keys naming their referred
  columns. Column types still go through SQLAlchemy's ``_resolve_type_affinity``.
* anything else goes to SQLAlchemy's own per-table methods, run against a
  stand-in dialect (`_Prefetched`) that answers their catalogue reads from the
  prefetched rows, so types, defaults, computed columns, constraint names and FK
  options are parsed exactly as SQLAlchemy parses them, with no further query.
  ``read(..., fast=False)`` sends every table this way (tests compare the two).

On that path, for speed and with the same results: each declared type is
resolved once, each table's columns are read once, and SQLAlchemy's slow
``UNIQUE`` parse runs on the CREATE TABLE lines that mention ``UNIQUE`` (see
`_unique_lines`), only for tables with an automatic unique index.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine.cursor import CursorFetchStrategy

from schemashift.reflection.core import RawSchema, Reflected, remember_quiet
from schemashift.sacompat import SQLiteStandIn, sqlite_fk_names_quoted, sqlite_resolve_type

_PARTIAL_WHERE = re.compile(r"\)\s*WHERE\s+(?P<predicate>.+)$", re.IGNORECASE | re.DOTALL)
_DESC = re.compile("DESC", re.IGNORECASE)  # needed for _DESCENDING to match
_DESCENDING = re.compile(r"(.+?)\s+DESC", re.IGNORECASE | re.DOTALL)
_GENERATED = re.compile(r"\bAS\s*\(", re.IGNORECASE)
_UNIQUE = re.compile("UNIQUE", re.IGNORECASE)  # as SQLAlchemy's case-insensitive patterns match it
_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}

#: Rows as the pragma functions give them, with the table (or index) name appended.
Row = tuple[Any, ...]
_BY_NAME = itemgetter(1)  # of an index_list row
_COLUMN_NAME = itemgetter(2)  # of an index_info row


@dataclass
class _Catalogue:
    """Everything fetched: CREATE statements by name and PRAGMA rows by pragma, then table (or index) name.

    Each row is the pragma's own row with the table (or index) name appended:
    SQLAlchemy's methods read the leading fields by position and ignore the rest.
    """

    table_sql: dict[str, str] = field(default_factory=dict)
    index_sql: dict[str, str] = field(default_factory=dict)
    rows: dict[str, dict[str, list[Row]]] = field(default_factory=lambda: defaultdict(dict))
    #: Tables with an index on an expression (None: not known, look at every table).
    with_expressions: set[str] | None = None

    @property
    def tables(self) -> list[str]:
        """Names of the tables, sorted."""
        return sorted(self.rows["table_xinfo"])

    def get(self, pragma: str, name: str) -> list[Row]:
        """The rows of `pragma` for table (or index) `name`."""
        return self.rows[pragma].get(name, [])

    def release(self, table: str) -> None:
        """Drop the rows of `table` and its indexes once it is read: their memory serves the next tables."""
        index_info = self.rows["index_info"]
        for row in self.rows["index_list"].get(table, ()):
            index_info.pop(row[1], None)
        for pragma in ("table_xinfo", "foreign_key_list", "index_list"):
            self.rows[pragma].pop(table, None)


def read(connection: sa.Connection, schema: str | None, *, fast: bool = True) -> RawSchema:
    """The catalogue of the attached database `schema` (``main`` when None).

    With `fast` False every table goes through SQLAlchemy's own methods (the
    reference the fast path is tested against).
    """
    catalogue = _fetch(connection, schema or "main")
    stand_in = _Prefetched(connection.dialect, catalogue)
    uniques_in = _Prefetched(connection.dialect, catalogue, unique_lines=True)
    try:
        fast = fast and _parses_as_expected(connection.dialect)
        return _convert(catalogue, stand_in, uniques_in, connection, schema, fast)
    finally:
        stand_in.close()  # the stand-ins hold methods bound to themselves: free them now, not at the next GC
        uniques_in.close()


def _parses_as_expected(dialect: sa.engine.Dialect) -> bool:
    """True when SQLAlchemy reads these PRAGMAs as the fast path assumes (hidden columns known, FK names unquoted)."""
    version = dialect.server_version_info or ()
    return tuple(version) >= (3, 31) and not sqlite_fk_names_quoted(dialect)


def _convert(catalogue: _Catalogue, stand_in: _Prefetched, uniques_in: _Prefetched, connection: sa.Connection,
             schema: str | None, fast: bool) -> RawSchema:
    """SQLAlchemy's reflected shapes of every table in `catalogue`: fast path where it applies, else the stand-ins."""
    raw = RawSchema()
    lines_seen: dict[str, Any] = {}  # for `_parse`
    with_expressions = catalogue.with_expressions
    for table in catalogue.tables:
        expression_indexes = (  # taken before SQLAlchemy sees (and skips) them
            [] if with_expressions is not None and table not in with_expressions
            else _take_expression_indexes(catalogue, table)
        )
        if fast and _read_plain_table(raw, catalogue, stand_in, table, schema, lines_seen):
            indexes = raw.indexes[table]
        else:
            raw.columns[table] = _with_generated(stand_in.get_columns(connection, table, schema), catalogue, table)
            raw.primary_keys[table] = stand_in.get_pk_constraint(connection, table, schema)
            fk_rows = catalogue.rows["foreign_key_list"].get(table, ())
            parsed_keys = _parsed_foreign_keys(catalogue, table, schema, lines_seen) if _alike_keys(fk_rows) else None
            raw.foreign_keys[table] = parsed_keys if parsed_keys is not None else _all_foreign_keys(
                stand_in, connection, table, schema, fk_rows
            )
            raw.uniques[table] = _unique_constraints(uniques_in, connection, table, schema)
            raw.checks[table] = stand_in.get_check_constraints(connection, table, schema)
            indexes = raw.indexes[table] = stand_in.get_indexes(connection, table, schema)
        sql = catalogue.table_sql.get(table)
        if sql and "collate" in sql.lower():
            raw.columns[table] = _with_collations(raw.columns[table], sql)
        if expression_indexes:
            indexes += expression_indexes
        if indexes:
            _read_index_texts(indexes, catalogue.index_sql)
        catalogue.release(table)
    return raw


_COLLATE = re.compile(r"\bcollate\s+(\"[^\"]+\"|'[^']+'|`[^`]+`|\[[^\]]+\]|[a-z_][a-z0-9_$]*)", re.IGNORECASE)


def _with_collations(columns: list[Reflected], sql: str) -> list[Reflected]:
    """`columns` with the ``COLLATE`` each declares in the CREATE TABLE text `sql` (PRAGMAs do not give it).

    A column's type object may be shared with other columns (types are resolved once
    per declared text), so a collated column gets a copy.
    """
    declared: dict[str, str] = {}
    for element in _paren_elements(sql):
        name = _leading_name(element)
        found = _COLLATE.search(element) if name is not None else None
        if found is not None and name is not None:
            text = found.group(1)
            declared[name.lower()] = text[1:-1] if text[0] in _QUOTES else text
    result = []
    for column in columns:
        collation = declared.get(str(column["name"]).lower())
        typ = column.get("type")
        if collation is not None and hasattr(typ, "collation") and not getattr(typ, "collation", None):
            typ = copy.copy(typ)
            typ.collation = collation  # type: ignore[union-attr]
            result.append({**column, "type": typ})
        else:
            result.append(column)
    return result


def _leading_name(element: str) -> str | None:
    """The column name an element of a CREATE TABLE starts with (None for a table constraint)."""
    element = element.lstrip()
    if element[:1] in _QUOTES:
        end = element.find(_QUOTES[element[0]], 1)
        return element[1:end] if end > 0 else None
    word = element.split(None, 1)[0] if element else ""
    if word.lower() in ("constraint", "primary", "unique", "check", "foreign"):
        return None
    return word or None


def _read_index_texts(indexes: list[Reflected], index_sql: dict[str, str]) -> None:
    """Partial-index predicates and ``DESC`` columns, from the ``CREATE INDEX`` texts."""
    for index in indexes:
        sql = index_sql.get(index["name"])
        if not sql:
            continue
        if sql.isascii():  # else case-insensitive patterns may match letters that lower() does not give
            lower = sql.lower()
            if "where" not in lower and "desc" not in lower:
                continue
        match = _PARTIAL_WHERE.search(sql)
        if match:
            index.setdefault("dialect_options", {})["sqlite_where"] = match.group("predicate").strip()
        _read_sorting(index, sql)


def _unique_constraints(stand_in: _Prefetched, connection: sa.Connection, table: str,
                        schema: str | None) -> list[Reflected]:
    """SQLAlchemy's unique constraints of `table`; none without a ``sqlite_autoindex`` index, as SQLAlchemy finds.

    SQLAlchemy pairs each ``UNIQUE`` it parses from the CREATE TABLE text with an
    automatic index, so a table without one has none, and the parse is skipped.
    """
    if not any(row[1].startswith("sqlite_autoindex") for row in stand_in.prefetched.get("index_list", table)):
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
    for name, element in zip(names, elements, strict=False):
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
    """``sqlite_master`` and three pragmas joined over every table (or index): four queries, up to six.

    The big queries are not sorted: a pragma function gives its rows in its own
    order (the one SQLAlchemy reads), all rows of one table (or index) together.
    Index columns are read through ``sqlite_master`` (cheaper than through each
    table's index list), and each table's index list is made from
    ``sqlite_master`` too (`_listed_in_master`), unless a table may be WITHOUT
    ROWID (its primary-key index is in no catalogue table) or has an index on an
    expression (their order in the list shows): then ``pragma_index_list`` is read,
    and the columns of the indexes ``sqlite_master`` lacks.
    """
    master = f"{connection.dialect.identifier_preparer.quote_identifier(database)}.sqlite_master"
    tables_only = "m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    catalogue = _Catalogue()
    entries = _tuples(connection, f"SELECT m.type, m.name, m.tbl_name, m.sql FROM {master} AS m", ())
    for kind, name, _, text in entries:
        if kind == "table":
            catalogue.table_sql[name] = text
        elif kind == "index" and text:
            catalogue.index_sql[name] = text
    info_columns = "p.seqno, p.cid, p.name"

    def pragma_rows(pragma: str, columns: str, where: str) -> list[Row]:
        query = f"SELECT {columns}, m.name FROM {master} AS m JOIN pragma_{pragma}(m.name, ?) AS p WHERE {where}"
        rows = _tuples(connection, query, (database,))
        _group(catalogue.rows[pragma], rows)
        return rows

    pragma_rows("table_xinfo", 'p.cid, p.name, p.type, p."notnull", p.dflt_value, p.pk, p.hidden', tables_only)
    pragma_rows(
        "foreign_key_list",
        'p.id, p.seq, p."table", p."from", p."to", p.on_update, p.on_delete, p."match"',
        f"{tables_only} ORDER BY m.name, p.id, p.seq",
    )
    index_info = pragma_rows("index_info", info_columns, "m.type = 'index'")
    catalogue.with_expressions = set()
    if not _needs_index_list(catalogue, index_info):
        _group(catalogue.rows["index_list"], _listed_in_master(entries))
        return catalogue
    index_list = pragma_rows("index_list", 'p.seq, p.name, p."unique", p.origin, p.partial', tables_only)
    if {row[1] for row in index_list} - {row[-1] for row in index_info}:
        query = (
            f"SELECT {info_columns}, i.name FROM {master} AS m JOIN pragma_index_list(m.name, ?) AS i "
            f"JOIN pragma_index_info(i.name, ?) AS p WHERE {tables_only} "
            f"AND i.name NOT IN (SELECT name FROM {master} WHERE type = 'index')"
        )
        unlisted = _tuples(connection, query, (database, database))
        index_info += unlisted
        _group(catalogue.rows["index_info"], unlisted)
    on_expressions = {row[-1] for row in index_info if row[2] is None}
    catalogue.with_expressions = {row[-1] for row in index_list if row[1] in on_expressions}
    return catalogue


def _needs_index_list(catalogue: _Catalogue, index_info: list[Row]) -> bool:
    """True when ``pragma_index_list`` must be read: a table may be WITHOUT ROWID, or an index has an expression."""
    if None in map(_COLUMN_NAME, index_info):
        return True
    return any("rowid" in sql.lower() for sql in catalogue.table_sql.values() if sql)


def _listed_in_master(master: list[Row]) -> list[Row]:
    """``pragma_index_list`` rows (with the table name appended) made from ``sqlite_master`` rows.

    The same indexes (no table is WITHOUT ROWID), in another order (none is on an
    expression: only names are sorted then). ``unique`` is read from the statement,
    which SQLite stores as ``CREATE [UNIQUE] INDEX`` whatever was written; automatic
    indexes (no statement) are unique. Neither SQLAlchemy nor this module reads the
    other fields: ``seq`` and ``origin`` are None, ``partial`` 0 (as `_Prefetched` gives it).
    """
    return [
        (None, name, 1 if text is None or text.startswith("CREATE UNIQUE") else 0, None, 0, table)
        for kind, name, table, text in master
        if kind == "index"
    ]


def _group(rows: dict[str, list[Row]], fetched: list[Row]) -> None:
    """Add `fetched` rows (each ending with its table or index name) to `rows`, by that name."""
    for name, group in groupby(fetched, itemgetter(-1)):
        found = rows.get(name)
        if found is None:
            rows[name] = list(group)
        else:
            found.extend(group)


def _tuples(connection: sa.Connection, sql: str, parameters: tuple[Any, ...]) -> list[Row]:
    """The rows of `sql`, run through SQLAlchemy (events, transaction), as the driver's plain tuples.

    Making SQLAlchemy ``Row`` objects of the ~20 rows per table adds a sixth to the
    queries' time: the driver's cursor is read directly when SQLAlchemy does not
    buffer it.
    """
    result = connection.exec_driver_sql(sql, parameters)
    try:
        cursor = getattr(result, "cursor", None)
        if cursor is not None and type(getattr(result, "cursor_strategy", None)) is CursorFetchStrategy:
            return cursor.fetchall()  # type: ignore[no-any-return]
        return [tuple(row) for row in result.all()]
    finally:
        result.close()


def _take_expression_indexes(catalogue: _Catalogue, table: str) -> list[Reflected]:
    """Remove the expression indexes of `table` from the pragma rows and return them reflected."""
    plain: list[Row] = []
    found: list[Reflected] = []
    for row in catalogue.get("index_list", table):
        name = row[1]
        names = [info[2] for info in catalogue.get("index_info", name)]
        elements = _paren_elements(catalogue.index_sql.get(name, "")) if None in names else []
        if None not in names or len(elements) != len(names):
            plain.append(row)
            continue
        found.append({"name": name, "unique": bool(row[2]), "column_names": names, "expressions": elements})
    if found:
        catalogue.rows["index_list"][table] = plain
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
                return [*elements, sql[start:position].strip()]
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


# -- the fast path: plain CREATE TABLE texts ------------------------------------------------
#
# SQLAlchemy reads constraint names, CHECK texts, FK options and UNIQUE clauses with
# regexes over the whole CREATE TABLE text; they have quirks (no word boundaries,
# lazy ``"(.+?)"`` names that run on along the line, ``INITIALLY`` lost without
# ``DEFERRABLE`` …). `_TABLE` accepts only texts where those regexes find exactly
# the clauses a parser sees, so reading the clauses gives SQLAlchemy's result:
#
# * every element on one line, elements split by commas (newlines only around them);
# * the keywords SQLAlchemy looks for (`_KEYWORDS`) only as keywords: never inside a
#   name, string or expression; no word starting with UNIQUE or ending with
#   CONSTRAINT, UNIQUE or FOREIGN (its patterns have no word boundary there);
# * no column-level UNIQUE or REFERENCES (SQLAlchemy misreads or skips them), FKs
#   always naming their referred columns, INITIALLY only after DEFERRABLE;
# * no quoted constraint name followed on its line by a quoted name before
#   PRIMARY/FOREIGN/UNIQUE (SQLAlchemy's lazy name pattern would run on to it: `_RUN_ON`);
# * ASCII, no comments, no ``[...]`` or backtick quoting, no ``""`` inside names.
#
# The patterns run on the lower-cased text (case-insensitive matching is several
# times slower); names and texts are then cut from the original at the same places.

_KEYWORDS = "constraint|primary|foreign|references|unique|check"
#: A word, not one of `_KEYWORDS`, not starting with UNIQUE, not ending with CONSTRAINT, UNIQUE or FOREIGN.
_WORD = (
    rf"(?!(?:{_KEYWORDS})\b|unique)[a-z_][a-z0-9_]*+(?<!constraint)(?<!unique)(?<!foreign)"
)
_ODD = r"\x00-\x08\x0b-\x1f\x7f\[\]`"  # control characters, other quotes
_QUOTED = rf'"(?:(?!{_KEYWORDS})[^"\n(){_ODD}])++"'
_IDENT = rf"(?:{_WORD}|{_QUOTED})"
_STRING = rf"'(?:(?!{_KEYWORDS})[^'\n{_ODD}]|'')*+'"
_NUMBER = r"[0-9]++(?:\.[0-9]*+)?(?:e[-+]?[0-9]++)?"
_ATOM = rf"(?:[ \t]++|{_WORD}|{_NUMBER}|{_QUOTED}|{_STRING}|[^a-z0-9_'\"()\s{_ODD}])"


def _parenthesised(depth: int) -> str:
    """A balanced ``( … )`` of expression atoms, nested up to `depth` levels (deeper: not plain)."""
    inner = rf"\((?:{_ATOM})*+\)"
    for _ in range(depth - 1):
        inner = rf"\((?:{_ATOM}|{inner})*+\)"
    return inner


_PAREN = _parenthesised(5)
_TYPE_WORD = rf"(?!(?:not|null|default|collate|generated|as)\b){_WORD}"
_TYPE_ARGUMENTS = rf"\([ \t]*+[-+]?{_NUMBER}(?:[ \t]*+,[ \t]*+[-+]?{_NUMBER})?[ \t]*+\)"
_TYPE = rf"{_TYPE_WORD}(?:[ \t]++{_TYPE_WORD})*+(?:[ \t]*+{_TYPE_ARGUMENTS})?"
_COLUMNS = rf"{_IDENT}(?:[ \t]*+,[ \t]*+{_IDENT})*+"
_ACTION = r"on[ \t]++(?:delete|update)[ \t]++(?:set[ \t]++null|set[ \t]++default|cascade|restrict|no[ \t]++action)\b"


def _clause(named: bool) -> str:
    """A table constraint; with `named`, groups say which kind it is and hold its parts."""

    def group(name: str, pattern: str) -> str:
        return f"(?P<{name}>{pattern})" if named else f"(?:{pattern})"

    constraint = rf"(?:constraint[ \t]++{group('name', _IDENT)}[ \t]++)?"
    actions = group("actions", rf"(?:[ \t]++{_ACTION})*+")
    deferrable = group("deferrable", r"(?:not[ \t]++)?deferrable")
    initially = group("initially", "deferred|immediate")
    return (
        rf"{constraint}(?:{group('pk', 'primary')}[ \t]++key[ \t]*+\([ \t]*+{_COLUMNS}[ \t]*+\)"
        rf"|unique[ \t]*+\([ \t]*+{group('unique', _COLUMNS)}[ \t]*+\)"
        rf"|check[ \t]*+{group('check', _PAREN)}"
        rf"|foreign[ \t]++key[ \t]*+\([ \t]*+{group('columns', _COLUMNS)}[ \t]*+\)"
        rf"[ \t]++references[ \t]++{group('referred', _IDENT)}"
        rf"[ \t]*+\([ \t]*+{group('referred_columns', _COLUMNS)}[ \t]*+\)"
        rf"{actions}(?:[ \t]++{deferrable}\b(?:[ \t]++initially[ \t]++{initially}\b)?)?)"
    )


_COLUMN_CONSTRAINT = (
    r"(?:not[ \t]++null\b|null\b"
    rf"|default[ \t]*+(?:x{_STRING}|{_STRING}|[-+]?{_NUMBER}|{_WORD})"
    rf"|(?:default[ \t]*+(?=\()|(?:constraint[ \t]++{_IDENT}[ \t]++)?check[ \t]*+){_PAREN}"
    r"|primary[ \t]++key\b(?:[ \t]++(?:asc|desc)\b)?(?:[ \t]++autoincrement\b)?"
    rf"|collate[ \t]++{_IDENT})"
)
_COLUMN = rf"{_IDENT}[ \t]++{_TYPE}(?:[ \t]++{_COLUMN_CONSTRAINT})*+"
#: An element followed by its comma (not before the closing parenthesis), or by the closing parenthesis:
#: the same as ``element (, element)*`` with one copy of the (long) element pattern.
_ELEMENTS = rf"(?:(?:{_clause(named=False)}|{_COLUMN})[ \t\n]*+(?:,[ \t\n]*+(?!\))|(?=\))))++"
#: A whole plain CREATE TABLE text (lower-cased).
_TABLE = re.compile(
    rf"create[ \t]++table[ \t]++{_IDENT}[ \t\n]*+\([ \t\n]*+{_ELEMENTS}\)"
    r"(?:[ \t\n]*+,?[ \t\n]*+(?:without[ \t]++rowid|strict)\b)*+[ \t\n]*+"
)
#: The first and last lines of a CREATE TABLE laid out as SQLAlchemy writes it, the lines between (see `_line_clauses`).
_HEAD = re.compile(rf"create[ \t]++table[ \t]++{_IDENT}[ \t]*+\([ \t]*+")
_TAIL = re.compile(r"[ \t]*+\)(?:[ \t]*+,?[ \t]*+(?:without[ \t]++rowid|strict)\b)*+[ \t]*+")
_COLUMN_LINE = re.compile(rf"(?:[ \t]*+{_COLUMN}[ \t]*+(?:,(?!\Z)|\Z))++")  # columns, split by commas
#: A constraint clause (table or column level) of a text `_TABLE` accepted, which has its keywords nowhere else;
#: it starts at one of `_CLAUSE_WORDS` (finding those first is faster than scanning with it).
_CLAUSE = re.compile(rf"(?<![a-z0-9_]){_clause(named=True)}")
_CLAUSE_WORDS = ("constraint", "primary", "unique", "check", "foreign")
#: Group numbers of `_CLAUSE` (match.regs is read by number, faster than by name).
_G_NAME, _G_PK, _G_UNIQUE, _G_CHECK, _G_COLUMNS, _G_REFERRED, _G_REFERRED_COLUMNS, _G_ACTIONS, _G_DEFERRABLE = (
    _CLAUSE.groupindex[group]
    for group in ("name", "pk", "unique", "check", "columns", "referred", "referred_columns", "actions", "deferrable")
)
_ACTIONS = re.compile(
    r"on[ \t]++(delete|update)[ \t]++(set[ \t]++null|set[ \t]++default|cascade|restrict|no[ \t]++action)"
)
#: A quoted constraint name whose line goes on to a quoted name before a constraint keyword.
_RUN_ON = re.compile(r'constraint[ \t]++"[^"\n]*+"[^\n]*"[ \t]++(?:primary|foreign|unique)')
_NAMES = re.compile(r'"([^"]*)"|([A-Za-z0-9_]+)')


class _Parsed:
    """The constraint clauses of a plain CREATE TABLE text, as SQLAlchemy's regexes find them."""

    __slots__ = ("checks", "foreign_keys", "pk_name", "uniques")

    def __init__(self) -> None:
        self.pk_name: str | None = None
        #: (name, columns) of each UNIQUE clause
        self.uniques: list[tuple[str | None, list[str]]] = []
        self.checks: list[Reflected] = []
        #: (name, columns, referred table, referred columns, options) of each FOREIGN KEY clause
        self.foreign_keys: list[tuple[str | None, list[str], str, list[str], dict[str, Any]]] = []


def _parse(sql: str, lines_seen: dict[str, Any] | None = None) -> _Parsed | None:
    """The constraint clauses of `sql`; None when it is not plain (SQLAlchemy's methods must read it).

    `lines_seen` keeps what `_line_clauses` found in each line, across the tables of one read.
    """
    if not sql.isascii() or "--" in sql or "/*" in sql:
        return None
    lower = sql.lower()  # ASCII: the same length, so positions carry over to `sql`
    if _RUN_ON.search(lower):
        return None
    clauses = _line_clauses(sql, {} if lines_seen is None else lines_seen)
    if clauses is None:
        if not _TABLE.fullmatch(lower):
            return None
        clauses = _clauses(sql, lower)
    found = _Parsed()
    for text, match in clauses:
        _read_clause(text, match, found)
    if len(found.checks) > 1:
        found.checks.sort(key=lambda check: check["name"] or "~")  # SQLAlchemy's order: by name, unnamed last
    return found


def _line_clauses(sql: str, lines_seen: dict[str, Any]) -> list[tuple[str, re.Match[str]]] | None:
    """The clauses of `sql` laid out as SQLAlchemy writes it, each with its line; None if laid out otherwise.

    That layout is ``CREATE TABLE name (``, then the elements one a line, each but
    the last followed by ``", "`` (``ADD COLUMN`` puts columns on the last column's
    line), then ``)``. A text read so is one `_TABLE` accepts, and the clauses are
    those found in the whole text (a test checks both): this way is faster, as lines
    repeat (``id INTEGER NOT NULL``, ``PRIMARY KEY (id)``) and each is read once
    (`lines_seen`: line -> its clause and match, or whether it holds plain columns).
    """
    head, _, rest = sql.partition("\n")
    body, _, tail = rest.rpartition("\n")
    if not body or not _HEAD.fullmatch(head.lower()) or (tail != ")" and not _TAIL.fullmatch(tail.lower())):
        return None
    clauses = []
    get = lines_seen.get
    for line in body.split(", \n"):  # a line left with a newline in it is no plain line
        seen = get(line)
        if seen is None:
            seen = lines_seen[line] = _read_line(line)
        if seen is True:
            continue
        if seen is False:
            return None
        clauses.append(seen)
    return clauses


def _read_line(line: str) -> tuple[str, re.Match[str]] | bool:
    """The one table constraint in `line` (cut of blanks) and its match, else whether it holds plain columns.

    Columns with a CHECK are read in the whole text (False).
    """
    lower = line.lower()
    if any(word in lower for word in _CLAUSE_WORDS):
        clause = line.strip(" \t")
        match = _CLAUSE.fullmatch(clause.lower())
        if match is not None:
            return clause, match
        if "check" in lower or "constraint" in lower:
            return False
    return _COLUMN_LINE.fullmatch(lower) is not None


def _clauses(sql: str, lower: str) -> list[tuple[str, re.Match[str]]]:
    """The clauses of `sql`, a text `_TABLE` accepted (`lower` lower-cased), each with `sql`."""
    clauses = []
    end = 0
    match_clause = _CLAUSE.match
    for start in _clause_starts(lower):
        match = None if start < end else match_clause(lower, start)
        if match is not None:  # else inside the clause before, or a column's PRIMARY KEY
            end = match.end()
            clauses.append((sql, match))
    return clauses


def _read_clause(sql: str, match: re.Match[str], found: _Parsed) -> None:
    """Add the clause `match` found in `sql` (lower-cased) to `found`, with names cut from `sql`."""
    spans = match.regs  # (start, end) of each group, (-1, -1) when it did not take part
    name = None if spans[_G_NAME][0] < 0 else _identifier(sql, spans[_G_NAME])
    if spans[_G_PK][0] >= 0:
        if found.pk_name is None:  # SQLAlchemy takes the first name (SQLite allows one PRIMARY KEY)
            found.pk_name = name
    elif spans[_G_UNIQUE][0] >= 0:
        found.uniques.append((name, _names(sql, spans[_G_UNIQUE])))
    elif spans[_G_CHECK][0] >= 0:
        first, last = spans[_G_CHECK]
        found.checks.append({"sqltext": sql[first + 1 : last - 1].strip(), "name": name})
    else:
        referred = _identifier(sql, spans[_G_REFERRED])
        has_options = spans[_G_ACTIONS][1] > spans[_G_ACTIONS][0] or spans[_G_DEFERRABLE][0] >= 0
        options = _fk_options(match) if has_options else {}
        found.foreign_keys.append(
            (name, _names(sql, spans[_G_COLUMNS]), referred, _names(sql, spans[_G_REFERRED_COLUMNS]), options)
        )


def _identifier(sql: str, span: tuple[int, int]) -> str:
    """The name at `span` of `sql`, without its double quotes (the grammar allows none inside)."""
    first, last = span
    return sql[first + 1 : last - 1] if sql[first] == '"' else sql[first:last]


def _clause_starts(lower: str) -> list[int]:
    """Where the words a constraint clause starts with are in `lower`, in order (``str.find`` beats a regex scan)."""
    starts = []
    for word in _CLAUSE_WORDS:
        found = lower.find(word)
        while found >= 0:
            starts.append(found)
            found = lower.find(word, found + 1)
    starts.sort()
    return starts


def _names(sql: str, span: tuple[int, int]) -> list[str]:
    """The column names of the plain column list at `span` of `sql`, unquoted."""
    columns = sql[span[0] : span[1]]
    if columns.isidentifier():  # one bare name (ASCII here)
        return [columns]
    return [quoted or bare for quoted, bare in _NAMES.findall(columns)]


def _fk_options(match: re.Match[str]) -> dict[str, Any]:
    """SQLAlchemy's ``options`` of a foreign key clause (lower-cased): ON DELETE/UPDATE but NO ACTION, deferral."""
    options: dict[str, Any] = {}
    for kind, written in _ACTIONS.findall(match["actions"]):
        action = " ".join(written.upper().split())
        if action != "NO ACTION":
            options["ondelete" if kind == "delete" else "onupdate"] = action
    deferrable, initially = match["deferrable"], match["initially"]
    if deferrable:
        options["deferrable"] = "not" not in deferrable
    if initially:
        options["initially"] = initially.upper()
    return options


def _alike_keys(fk_rows: Any) -> bool:
    """True when two foreign keys in the PRAGMA rows have the same columns and target (SQLAlchemy merges them)."""
    keys: dict[int, list[Any]] = {}
    for row in fk_rows:
        keys.setdefault(row[0], []).append((row[2], row[3], row[4]))
    signatures = [tuple(rows) for rows in keys.values()]
    return len(set(signatures)) < len(signatures)


def _parsed_foreign_keys(
    catalogue: _Catalogue, table: str, schema: str | None, lines_seen: dict[str, Any]
) -> list[Reflected] | None:
    """The foreign keys of a table the fast path cannot read whole (e.g. generated columns), from its clauses;
    None when its text does not parse."""
    sql = catalogue.table_sql.get(table)
    parsed = None if sql is None else _parse(sql, lines_seen)
    if parsed is None:
        return None
    return _foreign_keys(catalogue.rows["foreign_key_list"].get(table, ()), parsed.foreign_keys, schema)


def _all_foreign_keys(stand_in: Any, connection: sa.Connection, table: str, schema: str | None,
                      fk_rows: Any) -> list[Reflected]:
    """SQLAlchemy's foreign keys of `table`, plus the keys it merges away.

    SQLAlchemy matches keys to their clauses by columns and target, so of two keys
    alike (a column's REFERENCES beside a named FOREIGN KEY clause over the same
    column) it reports one, and warns. The other one is added back from the PRAGMA
    rows, unnamed, with its actions.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not be located in PRAGMA foreign_keys")
        found: list[Reflected] = stand_in.get_foreign_keys(connection, table, schema)
    keys: dict[int, Reflected] = {}
    for row in fk_rows:
        key = keys.setdefault(row[0], {
            "name": None, "constrained_columns": [], "referred_schema": schema, "referred_table": row[2],
            "referred_columns": [], "options": _pragma_actions(row[5], row[6]),
        })
        key["constrained_columns"].append(row[3])
        key["referred_columns"].append(row[4])
    if len(keys) <= len(found):
        return found
    def signature(key: Reflected) -> tuple[Any, ...]:
        return (*key["constrained_columns"], key["referred_table"], *key["referred_columns"])
    def actions(key: Reflected) -> dict[str, str]:
        return {k: str(v).upper() for k, v in key["options"].items() if k in ("ondelete", "onupdate")}
    unmatched = list(found)
    missing: list[Reflected] = []
    for exact in (True, False):  # a twin with the same actions first, then any with the same columns
        missing = []
        for key in keys.values():
            twin = next((f for f in unmatched if signature(f) == signature(key)
                         and (not exact or actions(f) == key["options"])), None)
            if twin is None:
                missing.append(key)
            else:
                unmatched.remove(twin)
        keys = dict(enumerate(missing))
    return found + missing


def _pragma_actions(on_update: str, on_delete: str) -> dict[str, str]:
    """A key's ON UPDATE/ON DELETE from the PRAGMA, in SQLAlchemy's ``options`` shape (NO ACTION left out)."""
    options = {"onupdate": str(on_update).upper(), "ondelete": str(on_delete).upper()}
    return {key: value for key, value in options.items() if value != "NO ACTION"}


def _read_plain_table(raw: RawSchema, catalogue: _Catalogue, stand_in: _Prefetched, table: str,
                      schema: str | None, lines_seen: dict[str, Any]) -> bool:
    """Fill `raw` for `table` from its parsed text and pragma rows; False (nothing set) when it is not plain."""
    sql = catalogue.table_sql.get(table)
    parsed = None if sql is None else _parse(sql, lines_seen)
    if parsed is None:
        return False
    columns = _plain_columns(catalogue, stand_in, table)
    if columns is None:
        return False
    foreign_keys = _foreign_keys(catalogue.rows["foreign_key_list"].get(table, ()), parsed.foreign_keys, schema)
    listed = _listed_indexes(catalogue, table)
    if foreign_keys is None or listed is None:
        return False
    raw.columns[table], keys = columns
    indexes, automatic = listed
    raw.primary_keys[table] = (
        {"constrained_columns": [name for _, name in (sorted(keys) if len(keys) > 1 else keys)], "name": parsed.pk_name}
        if keys else {"name": None, "constrained_columns": []}
    )
    raw.foreign_keys[table] = foreign_keys
    raw.uniques[table] = _paired_uniques(parsed.uniques, automatic) if automatic else []
    raw.checks[table] = parsed.checks
    raw.indexes[table] = indexes
    return True


def _plain_columns(
    catalogue: _Catalogue, stand_in: _Prefetched, table: str
) -> tuple[list[Reflected], list[tuple[int, str]]] | None:
    """The columns of `table` and (position, name) of its key's; None when one is hidden or generated.

    Columns SQLAlchemy read already (for another table's foreign key without referred
    columns) are taken as they are, as on SQLAlchemy's path; columns read here are
    left for such look-ups (so types that warn warn as often as there).
    """
    column_rows = catalogue.rows["table_xinfo"][table]
    known = stand_in.columns_read.get(table)
    if known is None:
        found = _columns(column_rows, stand_in)
        if found is not None:
            stand_in.columns_read[table] = found[0]
        return found
    if any(row[6] for row in column_rows):
        return None
    return known, [(row[5], row[1]) for row in column_rows if row[5] > 0]


def _columns(column_rows: list[Row], stand_in: _Prefetched) -> tuple[list[Reflected], list[tuple[int, str]]] | None:
    """SQLAlchemy's columns from ``table_xinfo`` rows, and (position, name) of the key's; None if one is hidden.

    Types are resolved by SQLAlchemy, once per declaration (`_Prefetched.resolve_type`).
    """
    declared_types = stand_in.declared_types
    columns = []
    keys = []
    for _, name, declared, notnull, default, key, hidden, _ in column_rows:
        if hidden:  # hidden or generated: SQLAlchemy reads these from the text
            return None
        found = declared_types.get(declared)
        columns.append({
            "name": name,
            "type": stand_in.declared_type(declared) if found is None else found,
            "nullable": not notnull,
            "default": None if default is None else str(default),
            "primary_key": key,
        })
        if key > 0:
            keys.append((key, name))
    return columns, keys


def _foreign_keys(fk_rows: Any, parsed: list[tuple[Any, ...]], schema: str | None) -> list[Reflected] | None:
    """SQLAlchemy's foreign keys: the pragma's, named and given options by the clauses that match them.

    None when a key lacks its referred columns or a clause matches no key (SQLAlchemy
    reads the referred table's key, or warns, then).
    """
    keys: dict[int, Reflected] = {}
    actions: dict[int, tuple[str, str]] = {}
    for row in fk_rows:
        number, referred_table, column, referred_column = row[0], row[2], row[3], row[4]
        if not referred_column:
            return None
        key = keys.get(number)
        if key is None:
            actions[number] = (str(row[5]).lower(), str(row[6]).lower())  # ON UPDATE, ON DELETE
            key = keys[number] = {
                "name": None, "constrained_columns": [], "referred_schema": schema,
                "referred_table": referred_table, "referred_columns": [], "options": {},
            }
        key["constrained_columns"].append(column)
        key["referred_columns"].append(referred_column)
    # keys alike (a column's REFERENCES beside a named FOREIGN KEY clause over it) are each matched once, in order
    by_signature: dict[tuple[Any, ...], list[tuple[tuple[str, str], Reflected]]] = {}
    for number, key in keys.items():
        signature = (*key["constrained_columns"], key["referred_table"], *key["referred_columns"])
        by_signature.setdefault(signature, []).append((actions[number], key))
    found = []
    for name, columns, referred, referred_columns, options in parsed:
        alike = by_signature.get((*columns, referred, *referred_columns))
        if not alike:
            return None
        wanted = (str(options.get("onupdate", "no action")).lower(), str(options.get("ondelete", "no action")).lower())
        _, key = alike.pop(next((i for i, (acts, _) in enumerate(alike) if acts == wanted), 0))
        key["name"] = name
        key["options"] = options
        found.append(key)
    return found + [key for alike in by_signature.values() for _, key in alike]


def _listed_indexes(catalogue: _Catalogue, table: str) -> tuple[list[Reflected], set[tuple[str, ...]]] | None:
    """SQLAlchemy's indexes of `table` (sorted by name) and the column tuples of its automatic ones.

    None when an index has an expression SQLAlchemy skips (and warns about).
    """
    listed = catalogue.rows["index_list"].get(table)
    indexes: list[Reflected] = []
    automatic: set[tuple[str, ...]] = set()
    if not listed:
        return indexes, automatic
    info = catalogue.rows["index_info"]
    for row in sorted(listed, key=_BY_NAME) if len(listed) > 1 else listed:
        name = row[1]
        names = [column[2] for column in info.get(name, ())]
        if None in names:
            return None
        if name.startswith("sqlite_autoindex"):
            automatic.add(tuple(names))
        else:
            indexes.append({"name": name, "column_names": names, "unique": row[2], "dialect_options": {}})
    return indexes, automatic


def _paired_uniques(uniques: list[tuple[str | None, list[str]]], automatic: set[tuple[str, ...]]) -> list[Reflected]:
    """The ``UNIQUE`` clauses that SQLAlchemy pairs with an automatic index, each index once, in text order."""
    found = []
    for name, columns in uniques:
        if tuple(columns) in automatic:
            automatic.remove(tuple(columns))
            found.append({"name": name, "column_names": columns})
    return found


class _Prefetched(SQLiteStandIn):
    """Stands in for the SQLite dialect: its methods run unchanged, catalogue reads hit prefetched rows.

    SQLAlchemy's methods read the CREATE TABLE texts and PRAGMA rows through
    `table_sql` / `table_pragma` here (see `SQLiteStandIn`). With `unique_lines`,
    the CREATE TABLE texts are cut to `_unique_lines` (for ``get_unique_constraints`` only).
    """

    def __init__(self, dialect: sa.engine.Dialect, catalogue: _Catalogue, unique_lines: bool = False) -> None:
        super().__init__(dialect)
        self.prefetched = catalogue
        self.unique_lines = unique_lines
        self.sql_texts: dict[str, str | None] = {}
        self.type_memo: dict[str, Any] = {}
        #: Table name -> SQLAlchemy's columns, read once.
        self.columns_read: dict[str, Any] = {}
        #: Declared type (as in the pragma, not upper-cased) -> SQLAlchemy's type, for `declared_type`.
        self.declared_types: dict[str, Any] = {}

    def resolve_type(self, declared: str) -> Any:
        """SQLAlchemy's type for a declared type, once per distinct declaration.

        Columns declared alike share one type object: the reflected shapes are only
        read afterwards. A declaration SQLAlchemy warns about is not remembered, so it
        warns for every column as it would.
        """
        return remember_quiet(self.type_memo, declared, lambda: super(_Prefetched, self).resolve_type(declared))

    def declared_type(self, declared: str) -> Any:
        """SQLAlchemy's type for a column declared `declared`, as its ``get_columns`` resolves it (upper-cased)."""
        upper = declared.upper()
        found = self.resolve_type(upper)
        if upper in self.type_memo:  # remembered: it did not warn
            self.declared_types[declared] = found
        return found

    def get_columns(self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any) -> Any:
        """SQLAlchemy's columns of `table_name`, read once (its primary-key reflection reads them again)."""
        found = self.columns_read.get(table_name)
        if found is None:
            found = self.columns_read[table_name] = self.dialect_method("get_columns")(
                self, connection, table_name, schema, **kw
            )
        return found

    def table_sql(self, table: str) -> str | None:
        """The prefetched CREATE TABLE text (cut to its UNIQUE lines with `unique_lines`)."""
        sql = self.prefetched.table_sql.get(table)
        if not self.unique_lines:
            return sql
        if table not in self.sql_texts:
            self.sql_texts[table] = _unique_lines(sql)
        return self.sql_texts[table]

    def table_pragma(self, pragma: str, table: str) -> list[Any]:
        """The prefetched PRAGMA rows."""
        if pragma == "table_info":  # the same rows: SQLAlchemy reads table_xinfo from SQLite 3.31 on
            pragma = "table_xinfo"
        rows = self.prefetched.get(pragma, table)
        if pragma == "index_list":
            # Predicates come from `index_sql`, so the partial flag is cleared: SQLAlchemy would query each one.
            return [(*row[:4], 0, *row[5:]) for row in rows]
        return list(rows)


def parse_declared_type(sql: str) -> Any:
    """The SQLAlchemy type SQLite's reflection reads from a column declared with type `sql` (DDL text)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        return sqlite_resolve_type(sqlite.dialect(), sql.upper())
