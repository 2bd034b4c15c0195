"""Refuse models no database could build as written, before a migration is written.

`generate` has no database, so it checks the models against the databases the
project's environments use (see `api.target_dialects`):

* identifiers longer than a database allows (PostgreSQL 63 characters, MySQL 64;
  each dialect declares ``max_identifier_length``). PostgreSQL would silently
  cut the name (and then show drift forever); SQLAlchemy would shorten a
  convention-made name with a hash of its own per database. A name that does not
  fit is refused instead: the user picks one that fits everywhere.
* what ``create_all`` itself cannot build: an index with no columns or
  expressions, a foreign key to columns of a model table that are neither its
  primary key nor unique.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from schemashift.errors import ModelsError
from schemashift.model.schema import Schema, Table


def check_buildable(schema: Schema, limits: Mapping[str, tuple[int | None, bool]]) -> None:
    """Raise `ModelsError` (one line) for the first object of `schema` no database could build.

    `limits` maps each target database's name to its identifier length limit (None:
    no limit) and whether it counts UTF-8 bytes (PostgreSQL) rather than characters.
    """
    for table in schema.sorted_tables():
        for index in table.indexes:
            if not index.columns and not index.expressions:
                raise ModelsError(
                    f"index {index.name!r} on table {table.key!r} has no columns: no database can build it")
        for fk in table.foreign_keys:
            _check_reference(schema, table, fk.columns, fk.ref_key, fk.ref_columns)
    bounded = sorted((limit, database, in_bytes) for database, (limit, in_bytes) in limits.items() if limit is not None)
    if not bounded:
        return
    for kind, name, where in _identifiers(schema):
        for limit, database, in_bytes in bounded:
            length = len(name.encode()) if in_bytes else len(name)
            if length > limit:
                unit = "bytes" if in_bytes and not name.isascii() else "characters"
                raise ModelsError(
                    f"{kind} name {name!r}{where} is {length} {unit}; {database} allows at most {limit}: "
                    "give it a shorter name"
                )


def _check_reference(schema: Schema, table: Table, columns: tuple[str, ...], ref_key: str,
                     ref: tuple[str, ...]) -> None:
    """A foreign key must point at the primary key or a unique set of columns of a model table."""
    target = schema.tables.get(ref_key)
    if target is None:
        return  # a table the models do not manage: the database decides
    wanted = set(ref)
    keys = [set(target.primary_key.columns)] if target.primary_key is not None else []
    keys += [set(unique.columns) for unique in target.uniques]
    keys += [set(index.columns) for index in target.indexes
             if index.unique and not index.expressions and not index.where]
    if wanted not in keys:
        raise ModelsError(
            f"foreign key {table.key}({', '.join(columns)}) -> {ref_key}({', '.join(ref)}): the referenced columns "
            "are neither a primary key nor unique, so the database cannot build it"
        )


def _identifiers(schema: Schema) -> Iterator[tuple[str, str, str]]:
    """(kind, name, where) of every name the models give."""
    for table in schema.sorted_tables():
        if table.schema:
            yield "schema", table.schema, ""
        yield "table", table.name, ""
        on = f" (table {table.key!r})"
        for column in table.columns:
            yield "column", column.name, on
        for index in table.indexes:
            yield "index", index.name, on
        if table.primary_key is not None and table.primary_key.name:
            yield "primary key", table.primary_key.name, on
        for constraint in table.constraints():
            if constraint.name:
                yield "constraint", constraint.name, on
    for sequence in schema.sequences.values():
        yield "sequence", sequence.name, ""
