"""The SQLAlchemy names schemashift reaches beyond the documented API, in one place, with a version check.

Every private SQLAlchemy attribute, method or class that schemashift uses is
named here and nowhere else, behind a small documented function. When SQLAlchemy
moves one, this module is the only place to change; importing it with a version
outside `SUPPORTED` (pyproject's ``sqlalchemy>=2.0,<2.2``) fails with a one-line
error. The per-database uses are grouped: models (`MetaData`, constraints,
types), PostgreSQL reflection, MySQL reflection, SQLite reflection.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from types import FunctionType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import sqltypes

from schemashift.errors import ConfigError

#: The SQLAlchemy versions (major, minor) schemashift supports: pyproject's ``sqlalchemy>=2.0,<2.2``.
SUPPORTED = ((2, 0), (2, 1))


class UnsupportedSQLAlchemy(ConfigError):
    """The installed SQLAlchemy is outside the supported range."""


def check_version(version: str) -> tuple[int, int]:
    """(major, minor) of SQLAlchemy `version`; `UnsupportedSQLAlchemy` outside `SUPPORTED`."""
    try:
        found = (int(version.split(".")[0]), int(version.split(".")[1]))
    except (IndexError, ValueError):
        found = (0, 0)
    if found not in SUPPORTED:
        raise UnsupportedSQLAlchemy(f"schemashift needs SQLAlchemy >=2.0,<2.2, not {version}")
    return found


VERSION = check_version(sa.__version__)


# -- async bridges ---------------------------------------------------------------


def greenlet_spawn(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    """SQLAlchemy's bridge running sync code whose async-driver calls are awaited by the running loop."""
    from sqlalchemy.util import greenlet_spawn as spawn

    return spawn(function, *args, **kwargs)


def driver_in_transaction(dbapi_connection: object) -> bool:
    """Whether a DB-API connection (or SQLAlchemy's adapter around an async driver's) has a transaction open."""
    flag = getattr(dbapi_connection, "in_transaction", None)
    if flag is None:  # the asyncio adapters keep the driver's connection in `_connection`
        flag = getattr(getattr(dbapi_connection, "_connection", None), "in_transaction", False)
    return bool(flag)


# -- models: MetaData, constraints, columns, types ----------------------------------

#: The base of `sa.Interval` and the dialects' INTERVAL types.
AbstractInterval: type = sqltypes._AbstractInterval
#: The base of `sa.LargeBinary` and the dialects' BINARY/VARBINARY types.
AbstractBinary: type = sqltypes._Binary


def metadata_sequences(metadata: sa.MetaData) -> list[sa.Sequence]:
    """Every `sa.Sequence` known to `metadata` (standalone or a column's), in the order they were added."""
    return list(metadata._sequences.values())


def creation_order(item: object) -> int:
    """The position of a schema item among those made in the process (``create_all`` emits constraints so)."""
    return int(getattr(item, "_creation_order", 0))


def ddl_if_condition(item: object) -> Any:
    """The condition set by the public ``item.ddl_if(...)`` (its ``dialect``, ``callable_``), or None."""
    return getattr(item, "_ddl_if", None)


def type_check_rule(constraint: sa.CheckConstraint) -> tuple[bool, Callable[[Any], bool] | None]:
    """(whether `constraint` is a type's own CHECK — ``Boolean``/``Enum`` with ``create_constraint`` —, the rule
    deciding per compiler whether it is emitted, or None when it always is)."""
    if not getattr(constraint, "_type_bound", False):
        return False, None
    return True, getattr(constraint, "_create_rule", None)


def primary_key_columns(key: sa.PrimaryKeyConstraint) -> Iterable[sa.Column[Any]]:
    """The columns of `key`, without the read-only copy ``key.columns`` memoises per table."""
    return getattr(key, "_columns", None) or key.columns


def has_variants(satype: sa.types.TypeEngine[Any]) -> bool:
    """Whether `satype` carries ``with_variant()`` types for some dialects."""
    return bool(getattr(satype, "_variant_mapping", None))


def binds_to_table(satype: sa.types.TypeEngine[Any]) -> bool:
    """True when `satype` attaches itself to the table or column it is used in (a schema event target:
    enums, booleans, arrays of them), so one instance must not serve several columns."""
    from sqlalchemy.sql.base import SchemaEventTarget

    return isinstance(satype, SchemaEventTarget)


def copy_column(column: sa.Column[Any]) -> sa.Column[Any]:
    """An unattached copy of `column` (what ``Table.to_metadata`` makes of each column)."""
    return column._copy()


# -- PostgreSQL reflection ------------------------------------------------------------


def pg_non_default_opclasses(dialect: Any, connection: sa.Connection) -> Any:
    """The PostgreSQL dialect's map of operator classes that are not their type's default."""
    return dialect._load_pg_opclass_notdefault_dict(connection)


def pg_columns_query(dialect: Any, schema: str | None, scope: Any, kind: Any) -> Any:
    """The PostgreSQL dialect's query of the columns of every relation of `schema` (``get_multi_columns``)."""
    return dialect._columns_query(schema, False, scope, kind)


def pg_columns_info(dialect: Any, connection: sa.Connection, rows: Any, schema: str | None,
                    reflect_type: Callable[[Callable[[], Any], tuple[Any, ...]], Any]) -> Any:
    """The PostgreSQL dialect's parsing of column `rows` into reflected columns (``get_multi_columns``).

    Each type parse goes through ``reflect_type(parse, key)``, which may return
    ``parse()`` or a remembered result of it; `key` is ``(format_type, collation,
    collation_schema)``, what the parse depends on.
    """
    from sqlalchemy.dialects.postgresql.base import PGDialect, _NamedTypeLoader

    class Parsing:
        """Stands in for `dialect` in its column parsing, each type parse going through `reflect_type`."""

        def __getattr__(self, name: str) -> Any:
            return getattr(dialect, name)

        def _reflect_type(self, format_type: str | None, loader: Any, type_description: str, collation: str | None,
                          collation_schema: str | None = None) -> Any:
            def parse() -> Any:
                return dialect._reflect_type(format_type, loader, type_description, collation, collation_schema)

            return reflect_type(parse, (format_type, collation, collation_schema))

    parse: Any = PGDialect._get_columns_info
    return parse(Parsing(), rows, _NamedTypeLoader(dialect, connection, {}), schema)


def pg_parse_type(dialect: Any, text: str, loader: object) -> Any:
    """The type the PostgreSQL dialect reflects from ``format_type()`` text `text`, named types from `loader`."""
    return dialect._reflect_type(text, loader, "column", None)


# -- MySQL reflection ---------------------------------------------------------------


def mysql_parse_column(dialect: Any, line: str, state: Any) -> None:
    """Let the MySQL dialect's ``SHOW CREATE TABLE`` parser read column `line` into reflection `state`."""
    dialect._tabledef_parser._parse_column(line, state)


# -- SQLite reflection -----------------------------------------------------------------


def sqlite_resolve_type(dialect: Any, declared: str) -> Any:
    """The type the SQLite dialect reflects from an upper-cased declared type (its affinity rules)."""
    return type(dialect)._resolve_type_affinity(dialect, declared)


def sqlite_fk_names_quoted(dialect: Any) -> bool:
    """Whether this pysqlite's PRAGMA foreign_key_list quotes names (SQLAlchemy then reads them otherwise)."""
    return bool(getattr(dialect, "_broken_fk_pragma_quotes", True))


class SQLiteStandIn:
    """Stands in for a SQLite dialect: its methods run unchanged, bound to this object.

    A subclass serves the catalogue reads SQLAlchemy's methods make through their
    private hooks from its own public methods `table_sql`, `table_pragma` and
    `resolve_type`. Every other attribute comes from the real `dialect`.
    """

    def __init__(self, dialect: sa.engine.Dialect) -> None:
        self._real = dialect

    def __getattr__(self, name: str) -> Any:
        """The real dialect's attribute (its methods bound here), kept in the instance for the next look-up."""
        attribute = inspect.getattr_static(type(self._real), name, None)
        value = attribute.__get__(self) if isinstance(attribute, FunctionType) else getattr(self._real, name)
        self.__dict__[name] = value
        return value

    def close(self) -> None:
        """Drop the looked-up attributes and everything else kept (bound methods refer back to this object)."""
        self.__dict__.clear()

    def dialect_method(self, name: str) -> Callable[..., Any]:
        """The real dialect class's public method `name`, unbound (call it with this stand-in first)."""
        return getattr(type(self._real), name)  # type: ignore[no-any-return]

    def table_sql(self, table: str) -> str | None:
        """The CREATE TABLE text of `table`."""
        raise NotImplementedError

    def table_pragma(self, pragma: str, table: str) -> list[Any]:
        """The rows of ``PRAGMA <pragma>(<table>)``."""
        raise NotImplementedError

    def resolve_type(self, declared: str) -> Any:
        """SQLAlchemy's type for an upper-cased declared type (here: the real dialect's rules)."""
        real: Any = type(self._real)
        return real._resolve_type_affinity(self, declared)

    def _get_table_sql(self, connection: sa.Connection, table_name: str, schema: str | None = None, **kw: Any) -> Any:
        return self.table_sql(table_name)

    def _get_table_pragma(self, connection: sa.Connection, pragma: str, table_name: str, schema: Any = None) -> Any:
        return self.table_pragma(pragma, table_name)

    def _resolve_type_affinity(self, type_: str) -> Any:
        return self.resolve_type(type_)


def event_listeners(target: object, event: str) -> list[Any]:
    """The listeners registered on `target` for a DDL `event` (``after_create`` …), in registration order."""
    dispatch = getattr(target, "dispatch", None)
    return list(getattr(dispatch, event, ()) or ())
