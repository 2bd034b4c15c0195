"""Data operations: raw SQL (`ExecuteSQL`) and Python steps (`RunPython`); they change no schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from schemashift.errors import IrreversibleError
from schemashift.model.schema import Schema
from schemashift.operations.base import Operation


@dataclass(frozen=True)
class ExecuteSQL(Operation):
    """Raw SQL; reversible only when `reverse` is given.

    `dialects` limits it to the named dialects (empty: all); `elidable` lets
    `schemashift squash` leave it out (a step a fresh database does not need).
    """

    sql: str
    reverse: str | None = None
    dialects: tuple[str, ...] = ()
    elidable: bool = False
    data_only: ClassVar[bool] = True

    def apply(self, schema: Schema) -> Schema:
        return schema

    def inverse(self) -> Operation:
        if self.reverse is None:
            raise IrreversibleError("cannot reverse: raw SQL without a `reverse`")
        return ExecuteSQL(self.reverse, reverse=self.sql, dialects=self.dialects, elidable=self.elidable)

    def describe(self) -> str:
        first = self.sql.strip().splitlines()[0] if self.sql.strip() else ""
        return f"execute SQL: {first[:60]}"


@dataclass(frozen=True)
class RunPython(Operation):
    """A Python data migration: ``forward(ctx)``; reversible when `reverse` is given.

    `ctx` is a `schemashift.runtime.executor.MigrationContext` with ``connection``,
    ``dialect``, ``env`` and ``vars``. `elidable`: `schemashift squash` may leave it out.
    """

    forward: Callable[[Any], None]
    reverse: Callable[[Any], None] | None = None
    elidable: bool = False
    data_only: ClassVar[bool] = True

    def apply(self, schema: Schema) -> Schema:
        return schema

    def inverse(self) -> Operation:
        if self.reverse is None:
            raise IrreversibleError(f"cannot reverse: Python step {self.forward.__name__} has no `reverse`")
        return RunPython(self.reverse, reverse=self.forward, elidable=self.elidable)

    def describe(self) -> str:
        return f"run Python {getattr(self.forward, '__name__', 'callable')}"
