"""The neutral schema model: tables, columns, keys, indexes and constraints.

Plain frozen data, independent of the ORM and of any database. Three converters
produce it: from SQLAlchemy `MetaData` (`schemashift.sqla.from_metadata`), from
a live database (`Dialect.reflect`, over `schemashift.reflection.core`) and from
replaying migration operations (`schemashift.operations.base.replay`). The differ compares two of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, cast

from schemashift.model.types import Type, evolve

if TYPE_CHECKING:
    from schemashift.model.objects import SchemaObject


def qualify(name: str, schema: str | None = None) -> str:
    """The key of a table: ``schema.name`` or just ``name``."""
    return f"{schema}.{name}" if schema else name


@dataclass(frozen=True)
class Computed:
    """A generated column: its SQL expression and whether it is stored."""

    sql: str
    persisted: bool | None = None


@dataclass(frozen=True)
class Identity:
    """An identity column (``GENERATED … AS IDENTITY``)."""

    always: bool = False
    start: int | None = None
    increment: int | None = None


@dataclass(frozen=True)
class Column:
    """One column. `default` is the server default as SQL text, or None.

    `sequence` is the key (``schema.name`` or ``name``) of a standalone `Sequence`
    whose next value is the column's default, where the database has sequences.
    `defaults` holds ``(dialect name, SQL)`` pairs where a database renders the
    default differently from `default` (an expression compiled per database).
    """

    name: str
    type: Type
    nullable: bool = True
    default: str | None = None
    autoincrement: bool = False
    comment: str | None = None
    computed: Computed | None = None
    identity: Identity | None = None
    sequence: str | None = None
    defaults: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.defaults, tuple):
            object.__setattr__(self, "defaults", tuple(tuple(pair) for pair in self.defaults))

    def evolve(self, **changes: object) -> Column:
        """Return a copy with `changes` applied (`self` when nothing changes)."""
        return evolve(self, changes)

    def default_on(self, dialect: str | None) -> str | None:
        """The server default as database `dialect` renders it."""
        for name, sql in self.defaults:
            if name == dialect:
                return sql
        return self.default

    def on(self, dialect: str | None) -> Column:
        """This column as database `dialect` has it: its type and default there, without per-database forms."""
        if not self.defaults and not self.type.dialects:
            return self
        return self.evolve(type=self.type.on(dialect), default=self.default_on(dialect), defaults=())


@dataclass(frozen=True)
class PrimaryKey:
    """The primary key: ordered column names, optionally named."""

    columns: tuple[str, ...]
    name: str | None = None


#: A dialect option's value in hashable form: a scalar, SQL text, or tuples of them
#: (a mapping becomes a tuple of ``(key, value)`` pairs); see `option_value`.
OptionValue = object

#: Index options that say how to build an index, not what it is: never compared.
BUILD_OPTIONS = frozenset({"postgresql_concurrently", "mysql_algorithm", "mysql_lock"})


@dataclass(frozen=True)
class Index:
    """An index over columns and expressions, optionally unique or partial.

    `expressions` holds SQL text for functional elements; `where` is a partial
    index predicate for every database that has partial indexes (both
    ``postgresql_where`` and ``sqlite_where`` given alike). `options` holds the
    model's dialect options as ``(key, value)`` pairs, keyed as SQLAlchemy keys
    them (``postgresql_using``, ``mysql_length``, ``sqlite_where`` …), values as
    `option_value` makes them; each database uses its own, as ``create_all`` does.
    """

    name: str
    columns: tuple[str, ...] = ()
    unique: bool = False
    expressions: tuple[str, ...] = ()
    where: str | None = None
    options: tuple[tuple[str, OptionValue], ...] = ()

    def option(self, key: str) -> OptionValue | None:
        """The value of option `key` (None when not given)."""
        return next((value for name, value in self.options if name == key), None)


#: The `Index.options` key naming the databases an index exists on (from ``Index.ddl_if(dialect=…)``):
#: ``create_all`` builds it there only. Not a SQLAlchemy keyword: kept out of the DDL.
ONLY_ON = "only_on"


def built_on(item: Index | CheckConstraint, names: Iterable[str]) -> bool:
    """True when `item` exists on a database called any of `names` (see `ONLY_ON`, `CheckConstraint.only_on`)."""
    only = item.option(ONLY_ON) if isinstance(item, Index) else item.only_on or None
    if only is None:
        return True
    wanted = {only} if isinstance(only, str) else set(cast("Iterable[str]", only))
    return bool(wanted & set(names))


def option_value(value: object, sql: Callable[[object], str] = str) -> OptionValue:
    """`value` of a dialect option in hashable, renderable form.

    Mappings become tuples of ``(key, value)`` pairs, sequences tuples; columns
    their names; other objects (SQL expressions) the text `sql` makes of them.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return tuple((_option_key(key), option_value(item, sql)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(option_value(item, sql) for item in value)
    name = getattr(value, "name", None)
    if isinstance(name, str) and hasattr(value, "table"):  # a column
        return name
    return sql(value)


def _option_key(key: object) -> str:
    name = getattr(key, "name", None)
    return name if isinstance(name, str) else str(key)


@dataclass(frozen=True)
class UniqueConstraint:
    """A UNIQUE constraint over columns."""

    columns: tuple[str, ...]
    name: str | None = None


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key from `columns` to `ref_columns` of `ref_table`."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    name: str | None = None
    ref_schema: str | None = None
    ondelete: str | None = None
    onupdate: str | None = None
    deferrable: bool | None = None
    initially: str | None = None

    @property
    def ref_key(self) -> str:
        """The key of the referenced table."""
        return qualify(self.ref_table, self.ref_schema)


@dataclass(frozen=True)
class CheckConstraint:
    """A CHECK constraint: its SQL expression.

    `only_on` names the databases it exists on when not all: a type's own CHECK
    (``Boolean(create_constraint=True)`` where booleans are not native,
    ``Enum(create_constraint=True)`` where enums are not), as ``create_all`` makes it.
    """

    sql: str
    name: str | None = None
    only_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.only_on, tuple):
            object.__setattr__(self, "only_on", tuple(self.only_on))

    def applies_to(self, dialect: str | None) -> bool:
        """True when database `dialect` has this check."""
        return not self.only_on or dialect is None or dialect in self.only_on


Constraint = PrimaryKey | UniqueConstraint | ForeignKey | CheckConstraint


@dataclass(frozen=True)
class Sequence:
    """A standalone sequence (``CREATE SEQUENCE``); None means the database's default.

    Sequences a database makes for SERIAL or identity columns are not standalone.
    """

    name: str
    schema: str | None = None
    start: int | None = None
    increment: int | None = None
    minvalue: int | None = None
    maxvalue: int | None = None
    cycle: bool = False

    @property
    def key(self) -> str:
        """``schema.name`` or ``name``."""
        return qualify(self.name, self.schema)

#: Which `Table` field holds each constraint class.
CONSTRAINT_FIELDS: dict[type, str] = {
    UniqueConstraint: "uniques",
    ForeignKey: "foreign_keys",
    CheckConstraint: "checks",
}


@dataclass(frozen=True)
class Table:
    """A table with everything that belongs to it."""

    name: str
    columns: tuple[Column, ...]
    primary_key: PrimaryKey | None = None
    indexes: tuple[Index, ...] = ()
    uniques: tuple[UniqueConstraint, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    checks: tuple[CheckConstraint, ...] = ()
    schema: str | None = None
    comment: str | None = None
    #: The model's dialect options (``mysql_engine``, ``sqlite_autoincrement`` …), as `Index.options`.
    options: tuple[tuple[str, OptionValue], ...] = ()

    @property
    def key(self) -> str:
        """``schema.name`` or ``name``."""
        return qualify(self.name, self.schema)

    @cached_property
    def _columns_by_name(self) -> dict[str, Column]:
        """Columns by name (the first one of a duplicated name); cached beside the fields."""
        by_name: dict[str, Column] = {}
        for column in self.columns:
            by_name.setdefault(column.name, column)
        return by_name

    def __getstate__(self) -> dict[str, object]:
        """The fields only: pickles (cached states) leave the column map out."""
        state = dict(self.__dict__)
        state.pop("_columns_by_name", None)
        return state

    def column(self, name: str) -> Column:
        """The column called `name` (KeyError when missing)."""
        try:
            return self._columns_by_name[name]
        except KeyError:
            raise KeyError(f"{self.key} has no column {name!r}") from None

    def has_column(self, name: str) -> bool:
        """True when a column called `name` exists."""
        return name in self._columns_by_name

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in order."""
        return tuple(column.name for column in self.columns)

    def constraints(self) -> Iterator[Constraint]:
        """Every named-or-not constraint except the primary key."""
        yield from self.uniques
        yield from self.foreign_keys
        yield from self.checks

    def evolve(self, **changes: object) -> Table:
        """Return a copy with `changes` applied (sequences become tuples; `self` when nothing changes)."""
        for key, value in changes.items():
            if isinstance(value, list):
                changes[key] = tuple(value)
        return evolve(self, changes)


@dataclass(frozen=True)
class Schema:
    """A whole database schema: tables and standalone sequences by key (``schema.name`` or ``name``),
    views, functions, triggers, extensions and policies by `schemashift.model.objects.object_key`."""

    tables: Mapping[str, Table] = field(default_factory=dict)
    sequences: Mapping[str, Sequence] = field(default_factory=dict)
    objects: Mapping[str, SchemaObject] = field(default_factory=dict)

    @classmethod
    def of(cls, tables: Iterable[Table], sequences: Iterable[Sequence] = (),
           objects: Mapping[str, SchemaObject] | None = None) -> Schema:
        """Build a schema from tables (and sequences, and objects by key)."""
        return cls({table.key: table for table in tables}, {sequence.key: sequence for sequence in sequences},
                   dict(objects or {}))

    def __contains__(self, key: str) -> bool:
        return key in self.tables

    def table(self, key: str) -> Table:
        """The table with `key` (a clear KeyError when missing)."""
        try:
            return self.tables[key]
        except KeyError:
            raise KeyError(f"no table {key!r}") from None

    def with_table(self, table: Table, *, old_key: str | None = None) -> Schema:
        """A copy where `table` is added or replaces the table at `old_key`/its key."""
        tables = dict(self.tables)
        if old_key is not None and old_key != table.key:
            tables = {(table.key if k == old_key else k): (table if k == old_key else t) for k, t in tables.items()}
        tables[table.key] = table
        return replace(self, tables=tables)

    def without_table(self, key: str) -> Schema:
        """A copy without the table at `key`."""
        tables = dict(self.tables)
        tables.pop(key, None)
        return replace(self, tables=tables)

    def with_sequence(self, sequence: Sequence) -> Schema:
        """A copy where `sequence` is added or replaces the one with its key."""
        return replace(self, sequences={**self.sequences, sequence.key: sequence})

    def without_sequence(self, key: str) -> Schema:
        """A copy without the sequence at `key`."""
        return replace(self, sequences={k: s for k, s in self.sequences.items() if k != key})

    def with_object(self, key: str, obj: SchemaObject) -> Schema:
        """A copy where `obj` is added under `key` or replaces the object there."""
        return replace(self, objects={**self.objects, key: obj})

    def without_object(self, key: str) -> Schema:
        """A copy without the object at `key`."""
        return replace(self, objects={k: o for k, o in self.objects.items() if k != key})

    @property
    def schema_names(self) -> set[str | None]:
        """The database schemas its tables, sequences and views and functions live in (None: the default one)."""
        objects = {getattr(o, "schema", None) for o in self.objects.values() if o.kind in ("view", "function")}
        return {t.schema for t in self.tables.values()} | {s.schema for s in self.sequences.values()} | objects

    def sorted_tables(self) -> list[Table]:
        """Tables in key order."""
        return [self.tables[key] for key in sorted(self.tables)]

    def enum_users(self, enum_name: str) -> list[tuple[str, str]]:
        """(table key, column) pairs whose type is the named enum (on some database: its forms count)."""
        found: list[tuple[str, str]] = []
        for table in self.tables.values():
            for column in table.columns:
                for typ in (column.type, *(form for _, form in column.type.dialects)):
                    kind = typ.item if typ.kind == "array" and typ.item else typ
                    if kind.kind == "enum" and kind.name == enum_name:
                        found.append((table.key, column.name))
                        break
        return found
