"""Index operations: create, drop, rename."""

from __future__ import annotations

from dataclasses import dataclass, replace

from schemashift.errors import MigrationError
from schemashift.model.schema import Index, Schema, Table
from schemashift.operations.base import Operation, existing_table, unknown_previous


def index_details(index: Index) -> str:
    """What an index is besides its columns, for descriptions: `` WHERE …`` and ``[option=value …]``."""
    details = f" WHERE {index.where}" if index.where else ""
    options = [f"{key}={_option_text(value)}" for key, value in index.options]
    return details + (f" [{', '.join(options)}]" if options else "")


def _option_text(value: object) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_option_text(item) for item in value) + ")"
    return str(value)


@dataclass(frozen=True)
class CreateIndex(Operation):
    """Create `index` on a table."""

    table: str
    index: Index
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        table = existing_table(schema, self.table_key or "")
        if any(i.name == self.index.name for i in table.indexes):
            raise MigrationError(f"index {self.index.name!r} already exists on {table.key}")
        return schema.with_table(table.evolve(indexes=(*table.indexes, self.index)))

    def inverse(self) -> Operation:
        return DropIndex(self.table, self.index.name, schema=self.schema, definition=self.index)

    def describe(self) -> str:
        unique = "unique " if self.index.unique else ""
        columns = ", ".join(self.index.columns + self.index.expressions)
        return f"create {unique}index {self.index.name} on {self.table_key} ({columns}){index_details(self.index)}"


@dataclass(frozen=True)
class DropIndex(Operation):
    """Drop an index; `definition` is the index as it was."""

    table: str
    name: str
    schema: str | None = None
    definition: Index | None = None

    def apply(self, schema: Schema) -> Schema:
        table = existing_table(schema, self.table_key or "")
        self._find(table)
        return schema.with_table(table.evolve(indexes=tuple(i for i in table.indexes if i.name != self.name)))

    def _find(self, table: Table) -> Index:
        for index in table.indexes:
            if index.name == self.name:
                return index
        raise MigrationError(f"index {self.name!r} does not exist on {table.key}")

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=self._find(existing_table(schema, self.table_key or "")))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise unknown_previous(f"drop index {self.name}")
        return CreateIndex(self.table, self.definition, schema=self.schema)

    def describe(self) -> str:
        details = index_details(self.definition) if self.definition is not None else ""
        return f"drop index {self.name} on {self.table_key}{details}"


@dataclass(frozen=True)
class RenameIndex(Operation):
    """Rename an index."""

    table: str
    name: str
    new_name: str
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        table = existing_table(schema, self.table_key or "")
        indexes = tuple(replace(i, name=self.new_name) if i.name == self.name else i for i in table.indexes)
        return schema.with_table(table.evolve(indexes=indexes))

    def inverse(self) -> Operation:
        return RenameIndex(self.table, self.new_name, self.name, schema=self.schema)

    def describe(self) -> str:
        return f"rename index {self.name} to {self.new_name} on {self.table_key}"
