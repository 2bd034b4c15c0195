"""`Statement`: what a dialect compiles an operation to, the unit that plans hold and the executor runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from schemashift.operations.base import Operation


@dataclass(frozen=True)
class LockRetry:
    """Safe mode: how a statement that takes a strong lock waits for it (see `schemashift.planning.safe`).

    `setting` (the database's lock-timeout statement) runs just before it in the
    same transaction, `reset` (if any) just after it; a lock timeout is retried
    `retries` times, `backoff` seconds after the first failure, doubling.
    """

    setting: str
    reset: str | None
    retries: int
    backoff: float


@dataclass(frozen=True)
class CopyFallback:
    """Safe mode (MariaDB/MySQL): `sql`, the plain statement (the server's own algorithm, a table copy if need
    be), runs in place of `Statement.fallback` when the server refuses the online algorithm and `table` holds at
    most `limit` rows, counted only then (most changes run online and never need the count)."""

    sql: str
    table: str
    schema: str | None
    limit: int


#: What a statement leaves in the catalogue (see `Trace`).
TraceKind = Literal["column", "default", "not_null", "check", "validated", "no_check"]


@dataclass(frozen=True)
class Trace:
    """What one statement of a safe-mode sequence leaves in the catalogue, so that `repair` can tell after a crash
    whether it ran (`Dialect.trace_left` looks).

    `kind`: column `name` of `table` exists (``column``), has a server default
    (``default``), is NOT NULL (``not_null``); CHECK constraint `name` exists
    (``check``, a helper the sequence adds for a while), is validated (``validated``),
    is gone (``no_check``).
    """

    kind: TraceKind
    table: str
    schema: str | None
    name: str


@dataclass(frozen=True)
class Statement:
    """One executable unit: SQL text, or a Python callable for `RunPython`.

    Safe mode adds `lock` (wait for the lock briefly, retry), `fallback` (the form
    to run when the server refuses `sql`'s online algorithm), `copy` (the plain form
    to run instead on a small table), `own_transaction`, `backfill` and `trace`.
    """

    operation: Operation
    sql: str | None = None
    python: Callable[[Any], None] | None = None
    lock: LockRetry | None = None
    fallback: str | None = None
    copy: CopyFallback | None = None
    own_transaction: bool = False  #: must commit on its own (safe mode: a validation apart from its ADD)
    #: What an offline script runs in place of `python` (a check the database does in SQL), when it can.
    offline_sql: str | None = None
    #: Safe mode: a `Backfill` that is part of `operation`, run batch by batch in place of `sql` (its one-statement
    #: form, what a script runs).
    backfill: Operation | None = None
    #: Safe mode: what this statement of a sequence leaves in the catalogue (`repair` looks after a crash).
    trace: Trace | None = None

    @property
    def batched(self) -> bool:
        """True when the executor runs this statement batch by batch (a `Backfill`, its own or `backfill`)."""
        return self.operation.batched or self.backfill is not None

    def describe(self) -> str:
        """The SQL, or the Python function's name."""
        if self.sql is not None:
            return self.sql
        return f"-- Python: {getattr(self.python, '__name__', 'callable')}()"
