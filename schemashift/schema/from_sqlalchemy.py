"""Convert SQLAlchemy `MetaData` (the ORM models) into the neutral `Schema`.

Also reads the rename hints users declare on models:
``Column(..., info={"renamed_from": "old"})`` and
``__table_args__ = {"info": {"renamed_from": "old_table"}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.sql.elements import ClauseElement, TextClause

from .model import (
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
    qualify,
)
from .normalize import canonical_default
from .satypes import model_type
from .types import Type


@dataclass
class RenameHints:
    """Renames declared by the user: table key -> old name, (table key, column) -> old name."""

    tables: dict[str, str] = field(default_factory=dict)
    columns: dict[tuple[str, str], str] = field(default_factory=dict)


def _name(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def sql_text(value: object) -> str:
    """SQL text of a model default, expression or literal."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, TextClause):
        return value.text
    if isinstance(value, ClauseElement):
        # columns unqualified, as DDL renders them (``lower(name)``, not ``lower(users.name)``)
        return str(value.compile(compile_kwargs={"literal_binds": True, "include_table": False}))
    return str(value)


def _defaults(column: sa.Column) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """The server default as SQL text, and ``(dialect, SQL)`` where a database renders it differently.

    An expression default (``sa.false()``, a ``FunctionElement`` with ``@compiles``
    per database) is rendered by each database's DDL compiler, as `create_all`
    renders it; the generic text is SQLAlchemy's default rendering, or, for an
    element only databases can render, PostgreSQL's (else the first database's).
    """
    server_default = column.server_default
    if server_default is None or not hasattr(server_default, "arg"):
        return None, ()
    arg = server_default.arg
    if isinstance(arg, (str, TextClause)) or not isinstance(arg, ClauseElement):
        return sql_text(arg), ()
    try:
        generic: str | None = sql_text(arg)
    except sa.exc.CompileError:  # only the databases' compilers render it (@compiles per dialect)
        generic = None
    key = (type(arg), generic)
    found = _RENDERED.get(key) if generic is not None else None
    if found is None:
        found = _rendered(column, generic)
        if generic is not None and len(_RENDERED) < 10_000:
            _RENDERED[key] = found  # `func.now()` in every table: rendered once
    return found


def _rendered(column: sa.Column, generic: str | None) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """`_defaults` of an expression default, rendered by each database's DDL compiler."""
    from ..dialects import targets

    rendered: dict[str, str] = {}
    for name, dialect in targets():
        try:
            rendered[name] = _ddl_compiler(dialect).get_column_default_string(column)
        except sa.exc.CompileError:
            continue
    if generic is None:
        if not rendered:
            sql_text(column.server_default.arg)  # raises SQLAlchemy's own error
        generic = rendered.get("postgresql") or next(iter(rendered.values()))
    plain = canonical_default(generic, _ANY)
    return generic, tuple((name, sql) for name, sql in rendered.items() if canonical_default(sql, _ANY) != plain)


_RENDERED: dict[tuple[type, str | None], tuple[str | None, tuple[tuple[str, str], ...]]] = {}


#: A type that keeps default literals as written (`canonical_default` then compares spelling only).
_ANY = Type("other")
_DDL_COMPILERS: dict[int, Any] = {}


def _ddl_compiler(dialect: sa.engine.Dialect) -> Any:
    """A DDL compiler of `dialect`, one per dialect instance."""
    compiler = _DDL_COMPILERS.get(id(dialect))
    if compiler is None:
        compiler = _DDL_COMPILERS[id(dialect)] = dialect.ddl_compiler(dialect, None)
    return compiler


def _computed(column: sa.Column) -> Computed | None:
    computed = column.computed
    if computed is None:
        return None
    return Computed(sql_text(computed.sqltext), persisted=computed.persisted)


def _identity(column: sa.Column) -> Identity | None:
    identity = column.identity
    if identity is None:
        return None
    return Identity(always=bool(identity.always), start=identity.start, increment=identity.increment)


def convert_sequence(sequence: sa.Sequence) -> Sequence:
    """The neutral form of a `sa.Sequence`."""
    return Sequence(
        name=sequence.name,
        schema=sequence.schema,
        start=sequence.start,
        increment=sequence.increment,
        minvalue=sequence.minvalue,
        maxvalue=sequence.maxvalue,
        cycle=bool(sequence.cycle),
    )


def _sequence_key(column: sa.Column) -> str | None:
    """The key of the `sa.Sequence` given as the column's default (``Column(..., sa.Sequence(...))``)."""
    default = column.default
    if isinstance(default, sa.Sequence) and not default.optional:
        return qualify(default.name, default.schema)
    return None


def convert_column(column: sa.Column, table: sa.Table) -> Column:
    """The neutral form of one model column."""
    return Column(*_column_fields(column, table.autoincrement_column))


ColumnFields = tuple[object, ...]  # the `Column` fields in declaration order


def _column_fields(column: sa.Column, autoincrement_column: sa.Column | None) -> ColumnFields:
    """`Column(*fields)` is the neutral form of `column`; `autoincrement_column` is its table's."""
    default, defaults = _defaults(column)
    return (
        column.name,
        model_type(column.type),
        bool(column.nullable),  # nullable
        default,
        autoincrement_column is column or column.identity is not None,  # autoincrement
        column.comment,
        _computed(column),
        _identity(column),
        _sequence_key(column),
        defaults,
    )


def _index(index: sa.Index) -> Index:
    columns: list[str] = []
    expressions: list[str] = []
    for element in index.expressions:
        if isinstance(element, sa.Column):
            columns.append(element.name)
        elif isinstance(element, str):
            columns.append(element)
        else:
            expressions.append(sql_text(element))
    where = None
    for dialect in ("postgresql", "sqlite"):
        predicate = _dialect_option(index, dialect, "where")
        if predicate is not None:
            where = sql_text(predicate)
    return Index(
        name=str(index.name),
        columns=tuple(columns),
        unique=bool(index.unique),
        expressions=tuple(expressions),
        where=where,
    )


def _dialect_option(item: sa.Index, dialect: str, name: str) -> Any:
    """The ``<dialect>_<name>`` keyword `item` was given, or None.

    Reads SQLAlchemy's option store without filling it: looking an option up
    through ``item.kwargs`` creates an empty entry per dialect and object (several
    MiB for thousands of indexes). The store exists only once options were given.
    """
    options = item.__dict__.get("dialect_options")
    if options is None or dialect not in options:
        return None
    return options[dialect].get(name)


def _foreign_key(constraint: sa.ForeignKeyConstraint) -> ForeignKey:
    elements = constraint.elements
    target = elements[0].column.table
    return ForeignKey(
        columns=tuple(c.name for c in constraint.columns),
        ref_table=target.name,
        ref_columns=tuple(e.column.name for e in elements),
        name=_name(constraint.name),
        ref_schema=target.schema,
        ondelete=constraint.ondelete.upper() if constraint.ondelete else None,
        onupdate=constraint.onupdate.upper() if constraint.onupdate else None,
        deferrable=constraint.deferrable,
        initially=constraint.initially.upper() if constraint.initially else None,
    )


def _check(constraint: sa.CheckConstraint) -> CheckConstraint | None:
    """The neutral form of a CHECK, limited to the databases `create_all` creates it on; None for none.

    Written CHECKs exist everywhere. Those a ``Boolean``/``Enum(create_constraint=True)``
    adds exist where the type is not native (SQLAlchemy's own rule for the
    constraint decides, database by database); they follow the enum's values.
    """
    only_on: tuple[str, ...] = ()
    rule = getattr(constraint, "_create_rule", None) if getattr(constraint, "_type_bound", False) else None
    if rule is not None:
        from ..dialects import TARGETS, targets

        only_on = tuple(name for name, dialect in targets() if rule(SimpleNamespace(dialect=dialect)))
        if not only_on:
            return None
        if len(only_on) == len(TARGETS):
            only_on = ()
    return CheckConstraint(sql_text(constraint.sqltext), _name(constraint.name), only_on)


def convert_table(table: sa.Table, seen: dict[ColumnFields, Column] | None = None) -> Table:
    """The neutral form of one model table.

    `seen` collects the columns converted so far: a column equal to one of them
    reuses that object (models repeat columns a lot; fewer objects, faster compares).
    """
    seen = {} if seen is None else seen
    autoincrement_column = table.autoincrement_column
    uniques: list[UniqueConstraint] = []
    foreign_keys: list[ForeignKey] = []
    checks: list[CheckConstraint] = []
    table_checks: list[tuple[int, CheckConstraint]] = []  # in creation order, as create_all emits them
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            uniques.append(UniqueConstraint(tuple(c.name for c in constraint.columns), _name(constraint.name)))
        elif isinstance(constraint, sa.ForeignKeyConstraint):
            foreign_keys.append(_foreign_key(constraint))
        elif isinstance(constraint, sa.CheckConstraint) and (check := _check(constraint)) is not None:
            table_checks.append((getattr(constraint, "_creation_order", 0), check))
    checks.extend(check for _, check in sorted(table_checks, key=lambda pair: pair[0]))
    for column in table.columns:  # column-level CHECKs live on the column, not in table.constraints
        for constraint in column.constraints:
            if isinstance(constraint, sa.CheckConstraint) and (check := _check(constraint)) is not None:
                checks.append(check)
    pk = table.primary_key
    pk_columns = getattr(pk, "_columns", None) or pk.columns  # `columns` memoises a read-only copy per table
    primary_key = PrimaryKey(tuple(c.name for c in pk_columns), _name(pk.name)) if pk_columns else None
    return Table(
        name=table.name,
        columns=tuple(_once(_column_fields(c, autoincrement_column), seen) for c in table.columns),
        primary_key=primary_key,
        indexes=tuple(sorted((_index(i) for i in table.indexes), key=lambda i: i.name)),
        uniques=tuple(uniques),
        foreign_keys=tuple(foreign_keys),
        checks=tuple(checks),
        schema=table.schema,
        comment=table.comment,
    )


def _once(fields: ColumnFields, seen: dict[ColumnFields, Column]) -> Column:
    """`Column(*fields)`, the same object for equal fields."""
    column = seen.get(fields)
    if column is None:
        column = seen[fields] = Column(*fields)
    return column


def from_metadata(metadatas: sa.MetaData | Iterable[sa.MetaData]) -> Schema:
    """The neutral schema of one or more `MetaData` objects."""
    if isinstance(metadatas, sa.MetaData):
        metadatas = [metadatas]
    tables: list[Table] = []
    sequences: list[Sequence] = []
    seen: dict[ColumnFields, Column] = {}
    for metadata in metadatas:
        tables.extend(convert_table(t, seen) for t in metadata.tables.values())  # sorted_tables warns on FK cycles
        sequences.extend(convert_sequence(s) for s in metadata._sequences.values() if not s.optional)
    return Schema.of(tables, sequences)


def rename_hints(metadatas: sa.MetaData | Iterable[sa.MetaData]) -> RenameHints:
    """The ``renamed_from`` hints declared in `info` on tables and columns."""
    if isinstance(metadatas, sa.MetaData):
        metadatas = [metadatas]
    hints = RenameHints()
    for metadata in metadatas:
        for table in metadata.tables.values():
            key = qualify(table.name, table.schema)
            old = table.info.get("renamed_from")
            if old:
                hints.tables[key] = str(old)
            for column in table.columns:
                old_column = column.info.get("renamed_from")
                if old_column:
                    hints.columns[(key, column.name)] = str(old_column)
    return hints
