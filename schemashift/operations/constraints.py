"""Constraint operations: add and drop primary keys, uniques, foreign keys and checks."""

from __future__ import annotations

from dataclasses import dataclass, replace

from schemashift.errors import MigrationError
from schemashift.model.schema import (
    CONSTRAINT_FIELDS,
    CheckConstraint,
    Constraint,
    ForeignKey,
    PrimaryKey,
    Schema,
    Table,
    UniqueConstraint,
)
from schemashift.operations.base import Operation, existing_table, unknown_previous


@dataclass(frozen=True)
class AddConstraint(Operation):
    """Add a primary key, unique, foreign-key or check constraint."""

    table: str
    constraint: Constraint
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        table = existing_table(schema, self.table_key or "")
        if isinstance(self.constraint, PrimaryKey):
            if table.primary_key is not None:
                raise MigrationError(f"{table.key} already has a primary key")
            return schema.with_table(table.evolve(primary_key=self.constraint))
        field = CONSTRAINT_FIELDS[type(self.constraint)]
        return schema.with_table(table.evolve(**{field: (*getattr(table, field), self.constraint)}))

    def inverse(self) -> Operation:
        return DropConstraint(self.table, self.constraint.name, schema=self.schema, definition=self.constraint)

    def describe(self) -> str:
        return f"add {_constraint_label(self.constraint)} on {self.table_key}"


@dataclass(frozen=True)
class DropConstraint(Operation):
    """Drop a constraint by name; `definition` is the constraint as it was.

    An unnamed constraint (SQLite allows them) is found by `definition`.
    """

    table: str
    name: str | None
    schema: str | None = None
    definition: Constraint | None = None

    def apply(self, schema: Schema) -> Schema:
        table = existing_table(schema, self.table_key or "")
        found = self._find(table)
        if isinstance(found, PrimaryKey):
            return schema.with_table(table.evolve(primary_key=None))
        field = CONSTRAINT_FIELDS[type(found)]
        return schema.with_table(table.evolve(**{field: tuple(c for c in getattr(table, field) if c != found)}))

    def _find(self, table: Table) -> Constraint:
        candidates: list[Constraint] = list(table.constraints())
        if table.primary_key is not None:
            candidates.append(table.primary_key)
        for constraint in candidates:
            if self.definition is not None and constraint == self.definition:
                return constraint
            if self.name is not None and constraint.name == self.name:
                return constraint
        raise MigrationError(f"constraint {self.name or self.definition!r} does not exist on {table.key}")

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=self._find(existing_table(schema, self.table_key or "")))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise unknown_previous(f"drop constraint {self.name}")
        return AddConstraint(self.table, self.definition, schema=self.schema)

    def describe(self) -> str:
        label = _constraint_label(self.definition) if self.definition else f"constraint {self.name}"
        return f"drop {label} on {self.table_key}"


def _constraint_label(constraint: Constraint) -> str:
    kinds = {
        PrimaryKey: "primary key",
        UniqueConstraint: "unique",
        ForeignKey: "foreign key",
        CheckConstraint: "check",
    }
    label = kinds[type(constraint)]
    if constraint.name:
        label += f" {constraint.name}"
    if isinstance(constraint, CheckConstraint):
        return f"{label} ({constraint.sql})"
    if isinstance(constraint, ForeignKey):
        return f"{label} ({', '.join(constraint.columns)}) -> {constraint.ref_key}"
    return f"{label} ({', '.join(constraint.columns)})"


@dataclass(frozen=True)
class RenameConstraint(Operation):
    """Rename a constraint (a primary key, unique, foreign key or check) and nothing else about it."""

    table: str
    name: str
    new_name: str
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        table = existing_table(schema, self.table_key or "")
        if table.primary_key is not None and table.primary_key.name == self.name:
            return schema.with_table(table.evolve(primary_key=replace(table.primary_key, name=self.new_name)))
        for constraint in table.constraints():
            if constraint.name == self.name:
                field = CONSTRAINT_FIELDS[type(constraint)]
                renamed = tuple(replace(c, name=self.new_name) if c is constraint else c
                                for c in getattr(table, field))
                return schema.with_table(table.evolve(**{field: renamed}))
        raise MigrationError(f"constraint {self.name} does not exist on {table.key}")

    def inverse(self) -> Operation:
        return RenameConstraint(self.table, self.new_name, self.name, schema=self.schema)

    def describe(self) -> str:
        return f"rename constraint {self.name} to {self.new_name} on {self.table_key}"
