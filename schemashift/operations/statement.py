"""`Statement`: what a dialect compiles an operation to, the unit that plans hold and the executor runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemashift.operations.base import Operation


@dataclass(frozen=True)
class Statement:
    """One executable unit: SQL text, or a Python callable for `RunPython`."""

    operation: Operation
    sql: str | None = None
    python: Callable[[Any], None] | None = None

    def describe(self) -> str:
        """The SQL, or the Python function's name."""
        if self.sql is not None:
            return self.sql
        return f"-- Python: {getattr(self.python, '__name__', 'callable')}()"
