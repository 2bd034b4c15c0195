"""Reflect standalone sequences, and which columns take their default from one.

Each database's query lives in its ``dialects/<name>/reflect.py`` (its
`Dialect.read_sequences`), which hands its rows to `sequences_of`. Databases
without sequences have none.

A column whose default is ``nextval(<standalone sequence>)`` gets that sequence's
key as `Column.sequence` and loses the default, as the models describe it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from schemashift.model.schema import Column, Sequence, Table, qualify

_NEXTVAL = re.compile(r"^\s*nextval\s*\(\s*'?(?P<ref>.+?)'?\s*(?:::\s*regclass)?\s*\)\s*$", re.IGNORECASE | re.DOTALL)
_PART = re.compile(r'"((?:[^"]|"")*)"|`((?:[^`]|``)*)`|([^."`]+)')


def sequences_of(rows: Iterable[tuple[Any, ...]], key_schema: str | None) -> list[Sequence]:
    """`Sequence`s of ``(name, start, increment, minimum, maximum, cycle)`` rows, keyed under `key_schema`."""
    return [
        Sequence(name, key_schema, int(start), int(increment), int(minimum), int(maximum), bool(cycle))
        for name, start, increment, minimum, maximum, cycle in rows
    ]


def sequence_reference(default: str | None) -> tuple[str | None, str] | None:
    """``(schema, name)`` of the sequence a ``nextval(…)`` default reads, else None."""
    if default is None:
        return None
    match = _NEXTVAL.match(default)
    if match is None:
        return None
    parts = [_unquote(m) for m in _PART.finditer(match["ref"].strip())]
    if not parts or len(parts) > 2:
        return None
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _unquote(match: re.Match[str]) -> str:
    double, backtick, plain = match.groups()
    if double is not None:
        return double.replace('""', '"')
    if backtick is not None:
        return backtick.replace("``", "`")
    return plain


def link_columns(
    tables: Iterable[Table], sequences: Iterable[Sequence], default_schema: str | None
) -> list[Table]:
    """`tables` with each ``nextval(<standalone sequence>)`` default turned into `Column.sequence`."""
    known = {sequence.key for sequence in sequences}
    result: list[Table] = []
    for table in tables:
        columns = tuple(_linked(column, table, known, default_schema) for column in table.columns)
        result.append(table if columns == table.columns else table.evolve(columns=columns))
    return result


def _linked(column: Column, table: Table, known: set[str], default_schema: str | None) -> Column:
    reference = sequence_reference(column.default)
    if reference is None:
        return column
    schema, name = reference
    candidates = [qualify(name, None if schema == default_schema else schema)]
    if schema is not None and schema == table.schema:
        candidates.append(name)  # SQLAlchemy qualifies unqualified names with the table's schema
    for key in candidates:
        if key in known:
            return column.evolve(sequence=key, default=None, autoincrement=False)
    return column
