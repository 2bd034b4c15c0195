"""Table operations: create, drop, rename, comment."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from schemashift.errors import MigrationError
from schemashift.model.schema import Schema, Table
from schemashift.operations.base import Operation, existing_table, repoint_foreign_keys, unknown_previous


@dataclass(frozen=True)
class CreateTable(Operation):
    """Create `table` with its columns, keys, indexes and constraints."""

    table: Table

    def apply(self, schema: Schema) -> Schema:
        if self.table.key in schema:
            raise MigrationError(f"table {self.table.key!r} already exists")
        return schema.with_table(self.table)

    def inverse(self) -> Operation:
        return DropTable(self.table.name, schema=self.table.schema, definition=self.table)

    def describe(self) -> str:
        return f"create table {self.table.key}"


@dataclass(frozen=True)
class DropTable(Operation):
    """Drop a table; `definition` is the table as it was (for the inverse)."""

    table: str
    schema: str | None = None
    definition: Table | None = None
    destructive: ClassVar[bool] = True

    def apply(self, schema: Schema) -> Schema:
        existing_table(schema, self.table_key or "")
        return schema.without_table(self.table_key or "")

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=existing_table(schema, self.table_key or ""))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise unknown_previous(f"drop table {self.table_key}")
        return CreateTable(self.definition)

    def describe(self) -> str:
        return f"drop table {self.table_key}"


@dataclass(frozen=True)
class RenameTable(Operation):
    """Rename a table, keeping its data."""

    table: str
    new_name: str
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        old = existing_table(schema, self.table_key or "")
        renamed = old.evolve(name=self.new_name)
        if renamed.key in schema:
            raise MigrationError(f"table {renamed.key!r} already exists")
        schema = schema.with_table(renamed, old_key=old.key)
        return repoint_foreign_keys(schema, old.key, lambda fk: replace(fk, ref_table=self.new_name))

    def inverse(self) -> Operation:
        return RenameTable(self.new_name, self.table, schema=self.schema)

    def describe(self) -> str:
        return f"rename table {self.table_key} to {self.new_name}"


@dataclass(frozen=True)
class AlterTableComment(Operation):
    """Set (or remove, with None) a table's comment; `old` is the previous one."""

    table: str
    comment: str | None
    old: str | None = None
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        return schema.with_table(existing_table(schema, self.table_key or "").evolve(comment=self.comment))

    def resolve(self, schema: Schema) -> Operation:
        return replace(self, old=existing_table(schema, self.table_key or "").comment)

    def inverse(self) -> Operation:
        return AlterTableComment(self.table, self.old, old=self.comment, schema=self.schema)

    def describe(self) -> str:
        return f"set comment of {self.table_key} to {self.comment!r}"
