"""Build SQLAlchemy `Table` objects from the neutral model, for DDL compilation only."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from schemashift.model.schema import ONLY_ON, Column, ForeignKey, Index, Schema, Table
from schemashift.sqla.types import TypeMemo, shared_sa_type, to_sa_type


def sa_column(column: Column, dialect_name: str | None = None, types: TypeMemo | None = None) -> sa.Column[Any]:
    """A detached `sa.Column` for `column` (its type shared through `types` when given: `shared_sa_type`)."""
    kwargs: dict[str, object] = {"nullable": column.nullable, "comment": column.comment}
    args: list[object] = []
    if column.default is not None:
        kwargs["server_default"] = sa.text(column.default)
    if column.computed is not None:
        args.append(sa.Computed(sa.text(column.computed.sql), persisted=column.computed.persisted))
    if column.identity is not None:
        ident = column.identity
        args.append(sa.Identity(always=ident.always, start=ident.start, increment=ident.increment))
    kwargs["autoincrement"] = bool(column.autoincrement)
    typ = column.type
    sa_type = to_sa_type(typ, dialect_name) if types is None else shared_sa_type(typ, dialect_name, types)
    return sa.Column(column.name, sa_type, *args, **kwargs)  # type: ignore[arg-type]


def _stub_for(fk: ForeignKey, metadata: sa.MetaData, schema: Schema | None) -> None:
    """Make sure the table `fk` points at exists in `metadata` with its columns."""
    key = fk.ref_key
    existing = metadata.tables.get(key)
    known = schema.tables.get(key) if schema is not None else None
    wanted = set(fk.ref_columns)
    if existing is not None:
        for name in wanted - set(existing.c.keys()):
            existing.append_column(sa.Column(name, sa.Integer))
        return
    columns = []
    for name in fk.ref_columns:
        typ = known.column(name).type if known is not None and known.has_column(name) else None
        columns.append(sa.Column(name, to_sa_type(typ) if typ else sa.Integer))
    sa.Table(fk.ref_table, metadata, *columns, schema=fk.ref_schema)


def sa_foreign_key(fk: ForeignKey) -> sa.ForeignKeyConstraint:
    """A `sa.ForeignKeyConstraint` for `fk` (its target must be in the same MetaData)."""
    prefix = f"{fk.ref_schema}.{fk.ref_table}" if fk.ref_schema else fk.ref_table
    return sa.ForeignKeyConstraint(
        list(fk.columns),
        [f"{prefix}.{c}" for c in fk.ref_columns],
        name=fk.name,
        ondelete=fk.ondelete,
        onupdate=fk.onupdate,
        deferrable=fk.deferrable,
        initially=fk.initially,
    )


def sa_index(index: Index, table: sa.Table) -> sa.Index:
    """A `sa.Index` on `table`."""
    elements: list[Any] = [table.c[name] for name in index.columns]
    elements.extend(sa.text(expr) for expr in index.expressions)
    kwargs: dict[str, Any] = {}
    if index.where:
        kwargs["postgresql_where"] = sa.text(index.where)
        kwargs["sqlite_where"] = sa.text(index.where)
    for key, value in index.options:
        if key != ONLY_ON:
            kwargs[key] = sa_option(key, value)
    # `_table` binds indexes made only of expressions, which SQLAlchemy cannot tie to a table itself
    return sa.Index(index.name, *elements, unique=index.unique, _table=table, **kwargs)


def sa_option(key: str, value: object) -> object:
    """A dialect option's value as SQLAlchemy takes it (see `model.option_value`): predicates as SQL text,
    tuples of pairs as mappings, other tuples as lists."""
    if key.endswith("_where") and isinstance(value, str):
        return sa.text(value)
    if isinstance(value, tuple):
        if value and all(isinstance(item, tuple) and len(item) == 2 for item in value):
            return {item[0]: sa_option("", item[1]) for item in value}
        return [sa_option("", item) for item in value]
    return value


def sa_table(
    table: Table,
    metadata: sa.MetaData | None = None,
    *,
    schema: Schema | None = None,
    dialect_name: str | None = None,
    name: str | None = None,
    include_foreign_keys: bool = True,
    include_indexes: bool = True,
    types: TypeMemo | None = None,
) -> sa.Table:
    """A `sa.Table` for `table` in `metadata` (a new one by default).

    `schema` supplies column types for stub tables that foreign keys point at;
    `name` overrides the table name (used by table rebuilds); `types` shares
    column types between tables (`shared_sa_type`).
    """
    metadata = metadata if metadata is not None else sa.MetaData()
    items: list[Any] = [sa_column(c, dialect_name, types) for c in table.columns]
    if table.primary_key is not None:
        items.append(sa.PrimaryKeyConstraint(*table.primary_key.columns, name=table.primary_key.name))
    for unique in table.uniques:
        items.append(sa.UniqueConstraint(*unique.columns, name=unique.name))
    for check in table.checks:
        items.append(sa.CheckConstraint(sa.text(check.sql), name=check.name))
    if include_foreign_keys:
        for fk in table.foreign_keys:
            if fk.ref_key != table.key or name is not None:
                _stub_for(fk, metadata, schema)
            items.append(sa_foreign_key(fk))
    options: dict[str, Any] = {key: sa_option(key, value) for key, value in table.options}
    result = sa.Table(name or table.name, metadata, *items, schema=table.schema, comment=table.comment, **options)
    if include_indexes:
        for index in table.indexes:
            sa_index(index, result)
    return result
