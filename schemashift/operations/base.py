"""The `Operation` base class, its registry and the helpers every family of operations shares.

Defining a subclass of `Operation` at module level registers it in `OPERATIONS`
(by class name): that is what migration files see (`schemashift.migration`
exports every registered class) and how dialects find its SQL (`compiler` names
the `Dialect` method, ``compile_`` plus the class name in snake case unless the
class sets it). Classes defined inside functions are not registered (a migration
file could not name them), nor are `InternalOperation` subclasses: the steps a
plan adds by itself (backups, restores, guards, notes), which no migration file
holds and nothing inverts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from schemashift.errors import IrreversibleError, MigrationError
from schemashift.model.schema import ForeignKey, Schema, Table, qualify

#: Every registered operation class by name, for rendering and loading migration files.
OPERATIONS: dict[str, type[Operation]] = {}

#: Word boundaries of a CamelCase name (``ExecuteSQL`` -> ``Execute``, ``SQL``).
_WORDS = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``AlterTableComment`` -> ``alter_table_comment``; ``ExecuteSQL`` -> ``execute_sql``."""
    return _WORDS.sub("_", name).lower()


class Operation:
    """Base of every operation; defining a subclass registers it (see the module docstring)."""

    #: True when the operation changes no schema (data migrations, raw SQL).
    data_only: ClassVar[bool] = False
    #: True when running it can lose stored values.
    destructive: ClassVar[bool] = False
    #: True when it runs as many short transactions of its own (`Backfill`): its migration is never atomic.
    batched: ClassVar[bool] = False
    #: Name of the `Dialect` method that compiles it (set from the class name unless the class sets it).
    compiler: ClassVar[str] = ""
    #: True for the steps a plan adds by itself (see `InternalOperation`): they are not registered.
    internal: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "compiler" not in vars(cls):
            cls.compiler = f"compile_{snake_case(cls.__name__)}"
        if not cls.internal and "<locals>" not in cls.__qualname__:
            register(cls)

    def apply(self, schema: Schema) -> Schema:
        """The schema after this operation."""
        raise NotImplementedError

    def resolve(self, schema: Schema) -> Operation:
        """This operation with its *from* side filled from `schema` (the state before)."""
        return self

    def inverse(self) -> Operation:
        """The operation that undoes this one (call on a resolved operation)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for humans."""
        raise NotImplementedError

    @property
    def table_key(self) -> str | None:
        """The key of the table the operation touches, if any."""
        table = getattr(self, "table", None)
        if isinstance(table, Table):
            return table.key
        if isinstance(table, str):
            return qualify(table, getattr(self, "schema", None))
        return None


def register(cls: type[Operation]) -> None:
    """Add `cls` to `OPERATIONS`; TypeError when another class already has its name."""
    known = OPERATIONS.get(cls.__name__)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"operation name {cls.__name__!r} is taken by {known.__module__}.{known.__qualname__}")
    OPERATIONS[cls.__name__] = cls


class InternalOperation(Operation):
    """A step a plan adds by itself (data protection, table rebuilds): changes no schema, journals like data.

    Not registered, not exported to migration files, never compiled by `Dialect.compile`
    (its statements come with it) and never inverted: there is nothing to undo.
    """

    data_only: ClassVar[bool] = True
    internal: ClassVar[bool] = True

    def apply(self, schema: Schema) -> Schema:
        return schema

    def inverse(self) -> Operation:
        raise TypeError(f"{type(self).__name__} is added by a plan and has no inverse")


def is_extension(operation: Operation) -> bool:
    """True for an operation defined outside schemashift's own package (an extension's)."""
    return not type(operation).__module__.startswith("schemashift.")


def existing_table(schema: Schema, key: str) -> Table:
    """Table `key` of `schema`; MigrationError when the history has no such table at this point."""
    if key not in schema:
        raise MigrationError(f"table {key!r} does not exist at this point of the history")
    return schema.table(key)


def unknown_previous(what: str) -> IrreversibleError:
    """The error of an inverse asked of an operation whose *from* side is unknown."""
    return IrreversibleError(f"cannot reverse: {what} (its previous definition is unknown)")


def repoint_foreign_keys(schema: Schema, target: str, change: Callable[[ForeignKey], ForeignKey]) -> Schema:
    """Apply `change` to every foreign key that points at table `target` (databases follow renames)."""
    for table in list(schema.tables.values()):
        if any(fk.ref_key == target for fk in table.foreign_keys):
            fks = tuple(change(fk) if fk.ref_key == target else fk for fk in table.foreign_keys)
            schema = schema.with_table(table.evolve(foreign_keys=fks))
    return schema


def replay(operations: list[Operation], schema: Schema | None = None) -> Schema:
    """Apply `operations` in order to `schema` (empty by default)."""
    state = schema if schema is not None else Schema()
    for operation in operations:
        state = operation.apply(state)
    return state


def resolve_all(operations: list[Operation], schema: Schema) -> tuple[list[Operation], Schema]:
    """Resolve each operation against the state before it; return them and the final state."""
    resolved: list[Operation] = []
    for operation in operations:
        done = operation.resolve(schema)
        resolved.append(done)
        schema = done.apply(schema)
    return resolved, schema


def invert_all(operations: list[Operation]) -> list[Operation]:
    """The inverse of a resolved operation list, in reverse order."""
    return [operation.inverse() for operation in reversed(operations)]
