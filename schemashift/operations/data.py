"""Batched data changes: `Backfill` sets columns of an existing table in short transactions.

A `Backfill` changes no schema. It is compiled to one ``UPDATE`` (what ``--sql``
prints, with a comment saying how it runs online), but the executor runs it as a
loop of short transactions over ranges of the table's primary key
(`schemashift.runtime.backfill`), recording after each batch where it stands, so a
run that is killed resumes after the last finished batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from schemashift.errors import MigrationError
from schemashift.model.schema import Schema, Table
from schemashift.operations.base import Operation, existing_table
from schemashift.operations.columns import Fill

#: A value a backfill writes: a Python literal (typed by the column) or None for NULL.
Value = Fill | None


@dataclass(frozen=True)
class Backfill(Operation):
    """Set `values` (column -> Python value) and `expressions` (column -> SQL expression) on the rows of `table`
    that `where` (SQL, optional) selects, `batch_size` rows of the primary key's order per transaction, sleeping
    `pause` seconds between batches.

    The table needs a single-column primary key (any orderable type); a composite
    or missing one is refused. A backfill is a data operation: its inverse does
    nothing unless `reverse_values` is given, then it sets those values on the rows
    `reverse_where` selects (the same `where` when not given), in the same batches.
    `key` is filled in from the table (its primary key column).
    """

    table: str
    values: dict[str, Value] = field(default_factory=dict)
    where: str | None = None
    batch_size: int = 1000
    pause: float = 0.0
    expressions: dict[str, str] = field(default_factory=dict)
    reverse_values: dict[str, Value] | None = None
    reverse_where: str | None = None
    schema: str | None = None
    key: str | None = None
    data_only: ClassVar[bool] = True
    batched: ClassVar[bool] = True

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.table, self.schema, tuple(self.values), tuple(self.expressions)))

    @property
    def empty(self) -> bool:
        """True when it sets nothing (the inverse of a backfill without `reverse_values`)."""
        return not self.values and not self.expressions

    def apply(self, schema: Schema) -> Schema:
        self.check(existing_table(schema, self.table_key or ""))
        return schema

    def check(self, table: Table) -> str:
        """The key column of `table` to batch by; MigrationError for unknown columns or an unusable primary key."""
        if self.batch_size < 1 or self.pause < 0:
            raise MigrationError(f"backfill of {table.key}: batch_size must be at least 1 and pause not negative")
        names = [*self.values, *self.expressions]
        if len(set(names)) != len(names):
            raise MigrationError(f"backfill of {table.key}: a column is both in values and expressions")
        unknown = [name for name in names if not table.has_column(name)]
        if unknown:
            raise MigrationError(f"backfill of {table.key}: no column {', '.join(map(repr, unknown))} in the table")
        key = table.primary_key.columns if table.primary_key is not None else ()
        if len(key) != 1:
            what = "has no primary key" if not key else f"has a composite primary key ({', '.join(key)})"
            raise MigrationError(f"backfill of {table.key}: the table {what}; batches need a single-column one")
        if self.key is not None and self.key != key[0]:
            raise MigrationError(f"backfill of {table.key}: key {self.key!r} is not its primary key {key[0]!r}")
        return key[0]

    def resolve(self, schema: Schema) -> Operation:
        table = existing_table(schema, self.table_key or "")
        key = self.check(table)
        if key == self.key:
            return self
        return Backfill(self.table, dict(self.values), self.where, self.batch_size, self.pause, dict(self.expressions),
                        self.reverse_values, self.reverse_where, self.schema, key)

    def inverse(self) -> Operation:
        """`reverse_values` on the rows `reverse_where` (else `where`) selects; nothing without them. Expressions
        have no inverse."""
        where = self.reverse_where if self.reverse_where is not None else self.where
        return Backfill(self.table, dict(self.reverse_values or {}), where, self.batch_size, self.pause,
                        reverse_values=dict(self.values) if self.values else None,
                        reverse_where=self.where if self.reverse_where is not None else None, schema=self.schema,
                        key=self.key)

    def describe(self) -> str:
        if self.empty:
            return f"backfill of {self.table_key}: nothing to undo (no reverse_values)"
        sets = ", ".join([*(f"{k} = {v!r}" for k, v in self.values.items()),
                          *(f"{k} = {v}" for k, v in self.expressions.items())])
        where = f" where {self.where}" if self.where else ""
        by = f" by {self.key}" if self.key else ""
        return f"backfill {self.table_key}: set {sets}{where} (batches of {self.batch_size}{by})"[:200]
