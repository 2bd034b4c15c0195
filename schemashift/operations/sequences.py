"""Standalone sequence operations: create, drop, alter (no-ops on databases without sequences)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from schemashift.errors import MigrationError
from schemashift.model.schema import Schema, Sequence, qualify
from schemashift.operations.base import Operation, unknown_previous


def _sequence(schema: Schema, key: str) -> Sequence:
    if key not in schema.sequences:
        raise MigrationError(f"sequence {key!r} does not exist at this point of the history")
    return schema.sequences[key]


@dataclass(frozen=True)
class CreateSequence(Operation):
    """Create a standalone `sequence` (a no-op on databases without sequences)."""

    sequence: Sequence

    def apply(self, schema: Schema) -> Schema:
        if self.sequence.key in schema.sequences:
            raise MigrationError(f"sequence {self.sequence.key!r} already exists")
        return schema.with_sequence(self.sequence)

    def inverse(self) -> Operation:
        return DropSequence(self.sequence.name, schema=self.sequence.schema, definition=self.sequence)

    def describe(self) -> str:
        return f"create sequence {self.sequence.key}"


@dataclass(frozen=True)
class DropSequence(Operation):
    """Drop a standalone sequence; `definition` is the sequence as it was (for the inverse)."""

    name: str
    schema: str | None = None
    definition: Sequence | None = None

    @property
    def key(self) -> str:
        """``schema.name`` or ``name``."""
        return qualify(self.name, self.schema)

    def apply(self, schema: Schema) -> Schema:
        _sequence(schema, self.key)
        return schema.without_sequence(self.key)

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=_sequence(schema, self.key))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise unknown_previous(f"drop sequence {self.key}")
        return CreateSequence(self.definition)

    def describe(self) -> str:
        return f"drop sequence {self.key}"


@dataclass(frozen=True)
class AlterSequence(Operation):
    """Change a sequence's options (start, increment, bounds, cycle) from `old` to `new`; same name."""

    name: str
    new: Sequence
    old: Sequence | None = None
    schema: str | None = None

    @property
    def key(self) -> str:
        """``schema.name`` or ``name``."""
        return qualify(self.name, self.schema)

    def apply(self, schema: Schema) -> Schema:
        _sequence(schema, self.key)
        return schema.without_sequence(self.key).with_sequence(self.new)

    def resolve(self, schema: Schema) -> Operation:
        if self.old is not None:
            return self
        return replace(self, old=_sequence(schema, self.key))

    def inverse(self) -> Operation:
        if self.old is None:
            raise unknown_previous(f"alter sequence {self.key}")
        return AlterSequence(self.name, new=self.old, old=self.new, schema=self.schema)

    @property
    def changes(self) -> tuple[str, ...]:
        """Names of the options that differ between old and new."""
        if self.old is None:
            return ()
        fields = ("start", "increment", "minvalue", "maxvalue", "cycle")
        return tuple(f for f in fields if getattr(self.old, f) != getattr(self.new, f))

    def describe(self) -> str:
        detail = ", ".join(f"{f} {getattr(self.old, f)!r} -> {getattr(self.new, f)!r}" for f in self.changes)
        return f"alter sequence {self.key}" + (f" ({detail})" if detail else "")
