"""Reflect a live database into the neutral `Schema`, with a bounded number of queries.

A *reader* fetches one database schema's catalogue in bulk, in SQLAlchemy's
reflection shapes (`ReflectedColumn`, `ReflectedForeignKeyConstraint` … keyed by
table name); `reflect` turns that into neutral `Table`s. The number of queries
never depends on the number of tables:

* any other dialect: the Inspector's ``get_multi_*`` calls (`read_with_inspector`),
  which SQLAlchemy implements with one catalogue query each.
* SQLite and MySQL/MariaDB: SQLAlchemy's ``get_multi_*`` fall back to queries per
  table there, so their ``dialects/<name>/reflect.py`` read the catalogue in a few
  bulk queries and hand back the same shapes.
* PostgreSQL: its reader avoids the Inspector's IN-lists of every table's oid,
  with SQLAlchemy's shapes.

The database's `Dialect` is the `LiveCatalogue` that `reflect` reads through
(``dialect.reflect(connection)``): its reader, its standalone sequences and the
schema unqualified names resolve to.

Bulk readers may share one SQLAlchemy type object between columns typed alike;
each distinct object is converted once. tests/test_reflect_equivalence.py checks
every bulk reader against `read_with_inspector`.

The result is raw: compare it only after ``dialect.normalize``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine.reflection import ObjectKind, ObjectScope

from schemashift.errors import ExecutionError
from schemashift.model.schema import (
    CheckConstraint,
    Column,
    Computed,
    ForeignKey,
    Identity,
    Index,
    PrimaryKey,
    Schema,
    Sequence,
    Table,
    UniqueConstraint,
    option_value,
    qualify,
)
from schemashift.model.types import Type
from schemashift.reflection.sequences import link_columns
from schemashift.sqla.types import from_sa_type

#: Prefix of schemashift's own work tables, never reflected.
INTERNAL_PREFIX = "_schemashift_"

Reflected = dict[str, Any]
_T = TypeVar("_T")


@dataclass
class RawSchema:
    """One database schema's catalogue in SQLAlchemy's reflection shapes, keyed by table name.

    `columns` lists every table; the other mappings may omit tables that have none.
    """

    columns: dict[str, list[Reflected]] = field(default_factory=dict)
    primary_keys: dict[str, Reflected] = field(default_factory=dict)
    foreign_keys: dict[str, list[Reflected]] = field(default_factory=dict)
    indexes: dict[str, list[Reflected]] = field(default_factory=dict)
    uniques: dict[str, list[Reflected]] = field(default_factory=dict)
    checks: dict[str, list[Reflected]] = field(default_factory=dict)
    comments: dict[str, str | None] = field(default_factory=dict)


Reader = Callable[[sa.Connection, "str | None"], RawSchema]



class LiveCatalogue(Protocol):
    """What `reflect` needs of a database (its `Dialect` provides it)."""

    def read_tables(self, connection: sa.Connection, schema: str | None) -> RawSchema:
        """The catalogue of database schema `schema` (None: the default one)."""

    def read_sequences(self, connection: sa.Connection, schema: str | None, key_schema: str | None) -> list[Sequence]:
        """The standalone sequences of `schema`, keyed under `key_schema`."""

    def current_database(self, connection: sa.Connection, default_schema: str | None) -> str | None:
        """The schema unqualified names resolve to."""


def reflect(
    connection: sa.Connection,
    catalogue: LiveCatalogue,
    *,
    schemas: list[str | None] | None = None,
    exclude: Collection[str] = frozenset(),
    reader: Reader | None = None,
) -> Schema:
    """The neutral schema of every table in `schemas` (default: the default schema).

    Tables named in `exclude` (by name or ``schema.name``) and tables whose name
    starts with ``_schemashift_`` are left out. Database errors become
    `ExecutionError` with a one-line message. `reader` replaces the catalogue's
    ``read_tables`` (e.g. `read_with_inspector`, to compare with it).
    """
    default_schema = connection.dialect.default_schema_name
    reader = reader or catalogue.read_tables
    tables: list[Table] = []
    sequences: list[Sequence] = []
    for schema in schemas or [None]:
        key_schema = None if schema == default_schema else schema
        try:
            raw = reader(connection, schema)
            sequences += catalogue.read_sequences(connection, schema, key_schema)
        except sa.exc.DBAPIError as exc:
            where = f" schema {schema!r}" if schema else ""
            raise ExecutionError(f"could not read the database{where}: {_first_line(exc)}") from exc
        shared = _Shared()
        for name in raw.columns:
            if name.startswith(INTERNAL_PREFIX) or name in exclude or qualify(name, key_schema) in exclude:
                continue
            tables.append(_table(raw, name, key_schema, default_schema, shared))
    if sequences:
        tables = link_columns(tables, sequences, catalogue.current_database(connection, default_schema))
    return Schema.of(tables, sequences)


def _first_line(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def remember_quiet(memo: dict[Any, _T], key: Any, compute: Callable[[], _T]) -> _T:
    """``memo[key]`` when there (not None), else `compute()`, stored under `key` unless it warned.

    A computation that warns is not remembered and is run once more with its
    warnings let through, so each caller still sees them, as without the memo.
    """
    found = memo.get(key)
    if found is not None:
        return found
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = compute()
    if caught:
        return compute()
    memo[key] = value
    return value


def read_with_inspector(connection: sa.Connection, schema: str | None) -> RawSchema:
    """A schema's catalogue through the Inspector's bulk ``get_multi_*`` calls."""
    inspector = sa.inspect(connection)
    kwargs = {"schema": schema, "kind": ObjectKind.TABLE, "scope": ObjectScope.DEFAULT}

    def multi(method: str) -> dict[str, Any]:
        try:
            found = getattr(inspector, method)(**kwargs)
        except NotImplementedError:
            return {}
        return {name: value for (_, name), value in found.items()}

    comments = multi("get_multi_table_comment")
    return RawSchema(
        columns=multi("get_multi_columns"),
        primary_keys=multi("get_multi_pk_constraint"),
        foreign_keys=multi("get_multi_foreign_keys"),
        indexes=multi("get_multi_indexes"),
        uniques=multi("get_multi_unique_constraints"),
        checks=multi("get_multi_check_constraints"),
        comments={name: (value or {}).get("text") for name, value in comments.items()},
    )


# -- SQLAlchemy reflection shapes -> neutral model ------------------------------


class _Shared:
    """One object for equal pieces of a reflected schema.

    `type` converts each SQLAlchemy type object once (bulk readers share one object
    between columns typed alike; the objects are kept alive here, so their ids stay
    unique while in use). `column` returns one `Column` for equal fields: schemas
    repeat columns a lot (``id``, ``created_at`` …), so this saves memory and makes
    the differ's comparisons identity checks.
    """

    def __init__(self) -> None:
        self._types: dict[int, tuple[sa.types.TypeEngine[Any], Type]] = {}
        self._columns: dict[tuple[object, ...], Column] = {}

    def type(self, satype: sa.types.TypeEngine[Any]) -> Type:
        """The neutral form of `satype`."""
        found = self._types.get(id(satype))
        if found is None:
            found = self._types[id(satype)] = (satype, from_sa_type(satype))
        return found[1]

    def column(self, fields: tuple[object, ...]) -> Column:
        """`Column(*fields)`, the same object for equal fields (the type, from `type`, compared by identity)."""
        key = (fields[0], id(fields[1]), *fields[2:])
        found = self._columns.get(key)
        if found is None:
            found = self._columns[key] = Column(*fields)  # type: ignore[arg-type]  # the fields, in order
        return found


def _table(raw: RawSchema, name: str, schema: str | None, default_schema: str | None, shared: _Shared) -> Table:
    pk = raw.primary_keys.get(name) or {}
    pk_columns = tuple(pk.get("constrained_columns") or ())
    return Table(
        name=name,
        columns=tuple(_column(c, shared) for c in raw.columns[name]),
        primary_key=PrimaryKey(pk_columns, pk.get("name") or None) if pk_columns else None,
        indexes=tuple(_index(i) for i in raw.indexes.get(name, ()) if not i.get("duplicates_constraint")),
        uniques=tuple(
            UniqueConstraint(tuple(u["column_names"]), u.get("name") or None) for u in raw.uniques.get(name, ())
        ),
        foreign_keys=tuple(_foreign_key(fk, default_schema) for fk in raw.foreign_keys.get(name, ())),
        checks=tuple(CheckConstraint(str(c["sqltext"]), c.get("name") or None) for c in raw.checks.get(name, ())),
        schema=schema,
        comment=raw.comments.get(name) or None,
    )


def _column(column: Reflected, shared: _Shared) -> Column:
    computed = column.get("computed")
    identity = column.get("identity")
    default = column.get("default")
    return shared.column((  # the fields of `Column`, in order
        column["name"],
        shared.type(column["type"]),
        bool(column.get("nullable", True)),
        None if default is None else str(default),
        column.get("autoincrement") is True,
        column.get("comment") or None,
        Computed(str(computed["sqltext"]), computed.get("persisted")) if computed else None,
        Identity(bool(identity.get("always")), identity.get("start"), identity.get("increment")) if identity else None,
    ))


def _index(index: Reflected) -> Index:
    """A reflected index; a sorted column (``DESC``, ``NULLS FIRST``) is an expression, as in the models."""
    names: list[str | None] = list(index.get("column_names") or ())
    elements: Iterable[str] = index.get("expressions") or [None] * len(names)
    sorting = index.get("column_sorting") or {}
    columns = [name for name in names if name is not None and name not in sorting]
    expressions = tuple(
        str(expr) if name is None else f"{_identifier(name)} {' '.join(s.replace('_', ' ') for s in sorting[name])}"
        for name, expr in zip(names, elements, strict=False)
        if (name is None and expr is not None) or name in sorting
    )
    options = index.get("dialect_options") or {}
    where = options.get("postgresql_where") or options.get("sqlite_where")
    return Index(
        name=str(index["name"]),
        columns=tuple(columns),
        unique=bool(index.get("unique")),
        expressions=expressions,
        where=None if where is None else str(where),
        options=tuple(
            sorted((key, option_value(value)) for key, value in options.items()
                   if not key.endswith("_where") and value not in (None, (), [], {}))  # an empty INCLUDE is none
        ),
    )


def _identifier(name: str) -> str:
    """`name` as written in SQL: bare when a lower-case word, else double-quoted."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def _foreign_key(fk: Reflected, default_schema: str | None) -> ForeignKey:
    options = fk.get("options") or {}
    ref_schema = fk.get("referred_schema")
    return ForeignKey(
        columns=tuple(fk["constrained_columns"]),
        ref_table=fk["referred_table"],
        ref_columns=tuple(fk["referred_columns"]),
        name=fk.get("name") or None,
        ref_schema=None if ref_schema == default_schema else ref_schema,
        ondelete=_upper(options.get("ondelete")),
        onupdate=_upper(options.get("onupdate")),
        deferrable=options.get("deferrable"),
        initially=_upper(options.get("initially")),
    )


def _upper(value: object) -> str | None:
    return str(value).upper() if value else None
