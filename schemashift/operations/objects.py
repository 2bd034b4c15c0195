"""Operations on views, functions, triggers, extensions and policies (`schemashift.model.objects`).

Three generic operations, each carrying its *from* and *to* like the table ones:
`CreateObject(obj)`, `DropObject(kind, key, definition=obj)` and
`ReplaceObject(new, old)`. Inverses are derived: a create is undone by a drop of
the same object, a drop (resolved) by a create of its definition, a replace by
the replace the other way. Each database compiles them (`schemashift.dialects.objects`);
one that lacks a kind compiles them to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from schemashift.errors import IrreversibleError, MigrationError
from schemashift.model.objects import (
    KINDS,
    SchemaObject,
    object_key,
    renamed,
    table_of,
    with_mention_renamed,
)
from schemashift.model.schema import Schema
from schemashift.operations.base import Operation


def _found(schema: Schema, key: str) -> SchemaObject:
    if key not in schema.objects:
        raise MigrationError(f"{key} does not exist at this point of the history")
    return schema.objects[key]


def _check_table(schema: Schema, obj: SchemaObject) -> None:
    table = table_of(obj)
    if table is not None and table not in schema:
        raise MigrationError(f"{obj.label()}: table {table!r} does not exist at this point of the history")


@dataclass(frozen=True)
class CreateObject(Operation):
    """Create a view, function, trigger, extension or policy."""

    object: SchemaObject

    @property
    def table_key(self) -> str | None:
        return table_of(self.object)

    def apply(self, schema: Schema) -> Schema:
        key = object_key(self.object)
        if key in schema.objects:
            raise MigrationError(f"{key} already exists")
        _check_table(schema, self.object)
        return schema.with_object(key, self.object)

    def inverse(self) -> Operation:
        return DropObject(self.object.kind, self.object.key, definition=self.object)

    def describe(self) -> str:
        return f"create {self.object.label()}"


@dataclass(frozen=True)
class DropObject(Operation):
    """Drop the object of `kind` at `key` (see `SchemaObject.key`); `definition` is it as it was."""

    kind: str
    key: str
    definition: SchemaObject | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MigrationError(f"DropObject: unknown kind {self.kind!r} (one of {', '.join(KINDS)})")

    @property
    def object_key(self) -> str:
        """The key in `Schema.objects`."""
        return f"{self.kind} {self.key}"

    @property
    def table_key(self) -> str | None:
        return table_of(self.definition) if self.definition is not None else None

    def apply(self, schema: Schema) -> Schema:
        _found(schema, self.object_key)
        return schema.without_object(self.object_key)

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=_found(schema, self.object_key))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise IrreversibleError(f"cannot reverse: drop {self.object_key} (its previous definition is unknown)")
        return CreateObject(self.definition)

    def describe(self) -> str:
        label = self.definition.label() if self.definition is not None else f"{self.kind} {self.key}"
        return f"drop {label}"


@dataclass(frozen=True)
class ReplaceObject(Operation):
    """Give an object a new definition (same kind and key): `new`, and `old` as it was."""

    new: SchemaObject
    old: SchemaObject | None = None

    @property
    def table_key(self) -> str | None:
        return table_of(self.new)

    def apply(self, schema: Schema) -> Schema:
        key = object_key(self.new)
        _found(schema, key)
        return schema.with_object(key, self.new)

    def resolve(self, schema: Schema) -> Operation:
        if self.old is not None:
            return self
        return replace(self, old=_found(schema, object_key(self.new)))

    def inverse(self) -> Operation:
        if self.old is None:
            key = object_key(self.new)
            raise IrreversibleError(f"cannot reverse: replace {key} (its previous definition is unknown)")
        return ReplaceObject(self.old, self.new)

    def describe(self) -> str:
        return f"replace {self.new.label()}"


@dataclass(frozen=True)
class RenameObject(Operation):
    """Rename the object of `kind` at `key` to `new_name` (a function keeps its argument types); `definition`
    is it as it was (databases that cannot rename it drop and create it). Views, triggers and policies that
    name it follow (`with_mention_renamed`), as PostgreSQL's do."""

    kind: str
    key: str
    new_name: str
    definition: SchemaObject | None = None

    @property
    def object_key(self) -> str:
        """The key in `Schema.objects` before the rename."""
        return f"{self.kind} {self.key}"

    @property
    def table_key(self) -> str | None:
        return table_of(self.definition) if self.definition is not None else None

    @property
    def renamed(self) -> SchemaObject | None:
        """The object after the rename (None before resolving)."""
        return renamed(self.definition, self.new_name) if self.definition is not None else None

    def apply(self, schema: Schema) -> Schema:
        old = _found(schema, self.object_key)
        new = renamed(old, self.new_name)
        if object_key(new) in schema.objects:
            raise MigrationError(f"{object_key(new)} already exists")
        objects = {key: with_mention_renamed(obj, old.name, new.name) for key, obj in schema.objects.items()
                   if key != self.object_key}
        return replace(schema, objects={**objects, object_key(new): new})

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=_found(schema, self.object_key))

    def inverse(self) -> Operation:
        new = self.renamed
        if new is None or self.definition is None:
            raise IrreversibleError(f"cannot reverse: rename {self.object_key} (its definition is unknown)")
        return RenameObject(self.kind, new.key, self.definition.name, definition=new)

    def describe(self) -> str:
        return f"rename {self.kind} {self.key} to {self.new_name}"
