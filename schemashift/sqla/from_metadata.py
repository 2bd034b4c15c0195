"""Convert SQLAlchemy `MetaData` (the ORM models) into the neutral `Schema`.

Also reads the rename hints users declare on models:
``Column(..., info={"renamed_from": "old"})`` and
``__table_args__ = {"info": {"renamed_from": "old_table"}}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ClauseElement, TextClause

from schemashift.errors import ModelsError
from schemashift.model.normalize import canonical_default
from schemashift.model.schema import (
    ONLY_ON,
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
from schemashift.sacompat import (
    creation_order,
    ddl_if_condition,
    metadata_sequences,
    primary_key_columns,
    type_check_rule,
)
from schemashift.sqla.objects import declared_objects
from schemashift.sqla.types import model_type


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


def _defaults(column: sa.Column[Any]) -> tuple[str | None, tuple[tuple[str, str], ...]]:
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


def _rendered(column: sa.Column[Any], generic: str | None) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """`_defaults` of an expression default, rendered by each database's DDL compiler."""
    from schemashift.dialects import REFERENCE_TARGET, targets

    rendered: dict[str, str] = {}
    for name, dialect in targets():
        try:
            rendered[name] = _ddl_compiler(dialect).get_column_default_string(column)
        except sa.exc.CompileError:
            continue
    if generic is None:
        if not rendered:
            sql_text(getattr(column.server_default, "arg", None))  # raises SQLAlchemy's own error
        generic = rendered.get(REFERENCE_TARGET) or next(iter(rendered.values()))
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
        compiler = _DDL_COMPILERS[id(dialect)] = dialect.ddl_compiler(dialect, None)  # type: ignore[arg-type]
    return compiler


def _computed(column: sa.Column[Any]) -> Computed | None:
    computed = column.computed
    if computed is None:
        return None
    return Computed(sql_text(computed.sqltext), persisted=computed.persisted)


def _identity(column: sa.Column[Any]) -> Identity | None:
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


def _sequence_key(column: sa.Column[Any]) -> str | None:
    """The key of the `sa.Sequence` given as the column's default (``Column(..., sa.Sequence(...))``)."""
    default = column.default
    if isinstance(default, sa.Sequence) and not default.optional:
        return qualify(default.name, default.schema)
    return None


def convert_column(column: sa.Column[Any], table: sa.Table) -> Column:
    """The neutral form of one model column."""
    return Column(*_column_fields(column, table.autoincrement_column))  # type: ignore[arg-type]  # the fields, in order


ColumnFields = tuple[object, ...]  # the `Column` fields in declaration order


def _column_fields(column: sa.Column[Any], autoincrement_column: sa.Column[Any] | None) -> ColumnFields:
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
    options = dict(dialect_options(index))
    only_on = _ddl_if_dialects(index)
    if only_on is not None:
        options[ONLY_ON] = only_on
    where = None
    if options.get("postgresql_where") is not None and options.get("postgresql_where") == options.get("sqlite_where"):
        where = options.pop("postgresql_where")  # partial on every database that can: the neutral form
        del options["sqlite_where"]
    return Index(
        name=str(index.name),
        columns=tuple(columns),
        unique=bool(index.unique),
        expressions=tuple(expressions),
        where=where,  # type: ignore[arg-type]
        options=tuple(options.items()),
    )


def _ddl_if_dialects(item: sa.Index | sa.Constraint) -> tuple[str, ...] | None:
    """The databases ``item.ddl_if(...)`` limits it to (None: every database; empty: none).

    A ``callable_`` condition is asked for each database schemashift knows, as
    ``create_all`` asks it (``ddl, target, bind`` with ``bind=None``, ``state``,
    ``dialect``): one that needs a live connection cannot be judged without a
    database and is refused with a message naming the item.
    """
    condition = ddl_if_condition(item)
    if condition is None:
        return None
    ddl = sa.schema.CreateIndex(item) if isinstance(item, sa.Index) else sa.schema.AddConstraint(item)
    what = f"{getattr(item, 'name', None) or type(item).__name__}: its ddl_if(callable_=...) condition"
    names = sa_dialects()
    allowed = [name for name, dialect in names.items() if ddl_condition_holds(
        condition, ddl, item, dialect, what, hint="; limit it with ddl_if(dialect=...) instead")]
    return None if len(allowed) == len(names) else tuple(allowed)


def ddl_condition_holds(condition: Any, ddl: Any, target: Any, dialect: sa.engine.Dialect, what: str, *,
                        hint: str = "") -> bool:
    """Whether a ``ddl_if``/``execute_if`` `condition` (None: none) lets `ddl` on `target` run on `dialect`, asked
    as offline ``create_all`` asks it (``bind=None``); a ``callable_`` that fails is a one-line ModelsError
    starting with `what`."""
    if condition is None:
        return True
    wanted = getattr(condition, "dialect", None)
    if wanted and not (dialect.name == wanted if isinstance(wanted, str) else dialect.name in wanted):
        return False
    check = getattr(condition, "callable_", None)
    if check is None:
        return True
    try:
        return bool(check(ddl, target, None, state=getattr(condition, "state", None), dialect=dialect, compiler=None,
                          tables=None))
    except Exception as error:
        raise ModelsError(f"{what} failed without a database on {dialect.name} ({type(error).__name__}: "
                          f"{error}){hint}") from error


def dialect_options(item: sa.Index | sa.Table) -> list[tuple[str, object]]:
    """The dialect options `item` was given (``postgresql_using``, ``mysql_length`` …), as `option_value`s.

    Only options given are read, without filling SQLAlchemy's option store: looking
    options up creates an empty entry per dialect and object (several MiB for
    thousands of indexes). The store exists only once options were given.
    """
    if item.__dict__.get("dialect_options") is None:
        return []
    return sorted((key, option_value(value, sql_text)) for key, value in item.dialect_kwargs.items())


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
    """The neutral form of a CHECK, or None when ``create_all`` makes it on no database.

    A type's own CHECK (``Boolean``/``Enum`` with ``create_constraint=True``) exists
    where the type asks for it: its rule is asked for each database schemashift knows.
    """
    names = sa_dialects()
    only_on = tuple(names)
    type_bound, rule = type_check_rule(constraint)
    if type_bound:
        only_on = tuple(name for name, dialect in names.items()
                        if rule is None or rule(SimpleNamespace(dialect=dialect)))
    limited = _ddl_if_dialects(constraint)  # CheckConstraint(...).ddl_if(dialect=...)
    if limited is not None:
        only_on = tuple(name for name in only_on if name in limited)
    if not only_on:
        return None
    only = () if only_on == tuple(names) else only_on
    return CheckConstraint(sql_text(constraint.sqltext), _name(constraint.name), only)


@lru_cache(maxsize=1)
def sa_dialects() -> dict[str, sa.engine.Dialect]:
    """SQLAlchemy's dialect for each database name schemashift supports."""
    from schemashift.dialects import REGISTRY

    return {name: sa.make_url(f"{name}://").get_dialect()() for name in sorted(REGISTRY)}


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
    for constraint in _in_creation_order(table.constraints):
        if isinstance(constraint, sa.UniqueConstraint):
            uniques.append(UniqueConstraint(tuple(c.name for c in constraint.columns), _name(constraint.name)))
        elif isinstance(constraint, sa.ForeignKeyConstraint):
            foreign_keys.append(_foreign_key(constraint))
        elif isinstance(constraint, sa.CheckConstraint) and (check := _check(constraint)) is not None:
            checks.append(check)
    for column in table.columns:  # column-level CHECKs live on the column, not in table.constraints
        for constraint in _in_creation_order(column.constraints):
            if isinstance(constraint, sa.CheckConstraint) and (check := _check(constraint)) is not None:
                checks.append(check)
    pk = table.primary_key
    pk_columns = primary_key_columns(pk)
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
        options=tuple(dialect_options(table)),
    )


def _in_creation_order(constraints: Iterable[sa.Constraint]) -> list[sa.Constraint]:
    """`constraints` (a set) in the order ``create_all`` emits them: the order they were made in."""
    return sorted(constraints, key=creation_order)


def _once(fields: ColumnFields, seen: dict[ColumnFields, Column]) -> Column:
    """`Column(*fields)`, the same object for equal fields."""
    column = seen.get(fields)
    if column is None:
        column = seen[fields] = Column(*fields)  # type: ignore[arg-type]  # the fields, in order
    return column


def from_metadata(metadatas: sa.MetaData | Iterable[sa.MetaData]) -> Schema:
    """The neutral schema of one or more `MetaData` objects."""
    metadatas = [metadatas] if isinstance(metadatas, sa.MetaData) else list(metadatas)
    tables: list[Table] = []
    sequences: list[Sequence] = []
    seen: dict[ColumnFields, Column] = {}
    for metadata in metadatas:
        tables.extend(convert_table(t, seen) for t in metadata.tables.values())  # sorted_tables warns on FK cycles
        sequences.extend(convert_sequence(s) for s in metadata_sequences(metadata) if not s.optional)
    return Schema.of(tables, sequences, declared_objects(metadatas))


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
