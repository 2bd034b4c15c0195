"""Running a plan against a database, recording every step.

Where the dialect has transactional DDL, each migration and its version-table
row commit together or not at all. Elsewhere each statement is journaled in the
version row before and after it runs, so a failure or a crash leaves a row that
says exactly how far the migration got.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator

import sqlalchemy as sa

from .errors import ExecutionError, mask_secrets
from .plan import DOWN, UP, Plan, Statement, Step
from .versions import APPLIED, FAILED, RUNNING, Recorder

if TYPE_CHECKING:
    from .dialects.base import Dialect

Output = Callable[[str], None]


@dataclass
class MigrationContext:
    """What a Python data migration receives: ``ctx.connection``, ``ctx.dialect``, ``ctx.env``, ``ctx.vars``."""

    connection: sa.Connection
    dialect: str
    env: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)

    def execute(self, sql: str | sa.Executable, params: dict[str, Any] | None = None) -> sa.CursorResult[Any]:
        """Run SQL text (or a SQLAlchemy statement) on the migration's connection."""
        statement = sa.text(sql) if isinstance(sql, str) else sql
        return self.connection.execute(statement, params or {})


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def _error_text(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return mask_secrets(" ".join(str(original).split()))[:500]


@contextmanager
def transaction(connection: sa.Connection) -> Iterator[None]:
    """A real transaction around DDL, including on pysqlite (which would otherwise autocommit DDL)."""
    if connection.in_transaction():
        connection.commit()
    with connection.begin():
        raw = connection.connection.dbapi_connection
        if connection.dialect.name == "sqlite" and raw is not None and not raw.in_transaction:
            connection.exec_driver_sql("BEGIN")
        yield


@contextmanager
def foreign_keys_relaxed(connection: sa.Connection, needed: bool) -> Iterator[None]:
    """Turn SQLite foreign-key enforcement off around table rebuilds, then restore and check it."""
    if not needed:
        yield
        return
    if connection.in_transaction():
        connection.commit()
    was_on = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
    connection.commit()
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
    finally:
        if was_on:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


class Executor:
    """Runs plans on one connection, writing the version and history tables."""

    def __init__(self, connection: sa.Connection, recorder: Recorder, context: MigrationContext, out: Output) -> None:
        self.connection = connection
        self.recorder = recorder
        self.context = context
        self.out = out

    def run(self, plan: Plan) -> None:
        """Run every step of `plan` in order; stop at the first failure."""
        with foreign_keys_relaxed(self.connection, plan.dialect.rebuilds_tables):
            for step in plan.steps:
                started = time.perf_counter()
                if step.atomic:
                    self._run_atomic(step)
                else:
                    self._run_journaled(step)
                elapsed = (time.perf_counter() - started) * 1000
                verb = "applied" if step.direction == UP else "reverted"
                self.out(f"{verb} {step.label} in {elapsed:.0f} ms")

    def _execute(self, statement: Statement) -> None:
        _fault_point(False)
        if statement.python is not None:
            statement.python(self.context)
        elif statement.sql is not None:
            self.connection.exec_driver_sql(statement.sql)
        _fault_point(True)

    # -- transactional DDL -------------------------------------------------

    def _run_atomic(self, step: Step) -> None:
        started, clock = _now(), time.perf_counter()
        migration = step.migration
        try:
            with transaction(self.connection):
                for statement in step.statements:
                    self._run_one(step, statement)
                if step.direction == UP:
                    self.recorder.insert(migration.revision, migration.parent, migration.checksum, migration.message,
                                         APPLIED, duration_ms=_ms(clock), statements_done=len(step.statements))
                else:
                    self.recorder.delete(migration.revision)
                self.recorder.log(migration.revision, step.direction, migration.checksum, migration.message,
                                  started, _ms(clock), "ok")
        except _StatementFailed as failure:
            self._log_failure(step, started, clock, failure.error)
            raise ExecutionError(
                f"{step.label} failed at: {_first_line(failure.sql)}: {failure.error}; "
                f"rolled back, the database is still at {step.migration.parent if step.direction == UP else step.migration.revision or 'base'}"
            ) from None

    def _run_one(self, step: Step, statement: Statement) -> None:
        try:
            self._execute(statement)
        except Exception as exc:  # noqa: BLE001 - any failure of user SQL/Python is reported, not raised raw
            raise _StatementFailed(statement.describe(), _error_text(exc)) from exc

    def _log_failure(self, step: Step, started: datetime, clock: float, error: str) -> None:
        migration = step.migration
        if self.connection.in_transaction():
            self.connection.rollback()
        with self.connection.begin():
            self.recorder.log(migration.revision, step.direction, migration.checksum, migration.message,
                              started, _ms(clock), "failed", error)

    # -- journaled (non-transactional DDL) ----------------------------------

    def _commit(self, action: Callable[[], None]) -> None:
        if self.connection.in_transaction():
            self.connection.commit()
        with self.connection.begin():
            action()

    def _run_journaled(self, step: Step, start_at: int = 0, *, resume: bool = False) -> None:
        """Run `step` statement by statement from `start_at`, journaling before and after each one."""
        started, clock = _now(), time.perf_counter()
        migration = step.migration
        revision = migration.revision
        if resume:
            self._commit(lambda: self.recorder.update(revision, state=RUNNING, direction=step.direction,
                                                      statements_done=start_at, failed_statement=None, error=None))
        elif step.direction == UP:
            self._commit(lambda: self.recorder.insert(revision, migration.parent, migration.checksum, migration.message, RUNNING))
        else:
            self._commit(lambda: self.recorder.update(revision, state=RUNNING, direction=DOWN, statements_done=0,
                                                      failed_statement=None, error=None))
        last = len(step.statements) - 1
        for index in range(start_at, len(step.statements)):
            try:
                # the last statement's "done" is recorded by the finishing commit (one transaction less per step)
                self._journaled_statement(step, index, record_done=index != last)
            except Exception as exc:  # noqa: BLE001 - reported with the journal, never raised raw
                self._journal_failure(step, index, started, clock, _error_text(exc))
        self._finish_journaled(step, started, clock)

    def _journaled_statement(self, step: Step, index: int, *, record_done: bool = True) -> None:
        statement = step.statements[index]
        revision = step.migration.revision
        done = {"statements_done": index + 1, "running_statement": None}
        in_transaction = statement.sql is None or step.plan_dialect.runs_in_transaction(statement.sql)
        if statement.operation.data_only and in_transaction:
            # data statements are transactional everywhere: run them and journal them atomically
            def run_and_record() -> None:
                self._execute(statement)
                self.recorder.update(revision, **done)

            self._commit(run_and_record)
            return
        self._commit(lambda: self.recorder.update(revision, running_statement=statement.describe()))
        if not in_transaction:
            self._autocommit(statement.sql)
        else:
            self._commit(lambda: self._execute(statement))
        if record_done:
            self._commit(lambda: self.recorder.update(revision, **done))

    def _autocommit(self, sql: str) -> None:
        if self.connection.in_transaction():
            self.connection.commit()
        level = self.connection.get_isolation_level()
        self.connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            _fault_point(False)
            self.connection.exec_driver_sql(sql)
            _fault_point(True)
        finally:
            if self.connection.in_transaction():  # autobegun even in AUTOCOMMIT; must end before the level changes
                self.connection.commit()
            self.connection.execution_options(isolation_level=level)

    def _journal_failure(self, step: Step, index: int, started: datetime, clock: float, error: str) -> None:
        migration = step.migration
        revision = migration.revision
        statement = step.statements[index]
        if self.connection.in_transaction():
            self.connection.rollback()
        self._commit(lambda: self.recorder.update(revision, state=FAILED, failed_statement=statement.describe(),
                                                  running_statement=None, error=error))
        self._commit(lambda: self.recorder.log(revision, step.direction, migration.checksum, migration.message,
                                               started, _ms(clock), "failed", error))
        raise ExecutionError(
            f"{step.label} failed at statement {index + 1} of {len(step.statements)}: "
            f"{_first_line(statement.describe())}: {error}; the database is PARTLY "
            f"{'upgraded' if step.direction == UP else 'downgraded'} ({index} statements ran) "
            f"— fix the cause, then run `schemashift repair`"
        ) from None

    # -- repair ------------------------------------------------------------

    def run_statement(self, statement: Statement, dialect: "Dialect") -> None:
        """Run one statement outside any step (repair fix-ups and undo)."""
        if statement.sql is not None and not dialect.runs_in_transaction(statement.sql):
            self._autocommit(statement.sql)
        else:
            self._commit(lambda: self._execute(statement))

    def resume(self, step: Step, start_at: int) -> None:
        """Finish a partly run step from statement `start_at`."""
        with foreign_keys_relaxed(self.connection, step.plan_dialect.rebuilds_tables):
            self._run_journaled(step, start_at, resume=True)
        verb = "applied" if step.direction == UP else "reverted"
        self.out(f"{verb} {step.label} (resumed at statement {start_at + 1} of {len(step.statements)})")

    def abandon(self, step: Step) -> None:
        """Record that a partly run step was undone: the revision is as before the step."""
        migration = step.migration

        def record() -> None:
            if step.direction == UP:
                self.recorder.delete(migration.revision)
            else:
                self.recorder.update(migration.revision, state=APPLIED, direction=UP, running_statement=None,
                                     failed_statement=None, error=None)
            self.recorder.log(migration.revision, step.direction, migration.checksum, migration.message,
                              _now(), 0, "undone")

        self._commit(record)
        self.out(f"undid the partial {'upgrade' if step.direction == UP else 'downgrade'} of {step.label}")

    def _finish_journaled(self, step: Step, started: datetime, clock: float) -> None:
        migration = step.migration

        def finish() -> None:
            if step.direction == UP:
                self.recorder.update(migration.revision, state=APPLIED, duration_ms=_ms(clock), applied_at=_now(),
                                     statements_done=len(step.statements), running_statement=None,
                                     failed_statement=None, error=None)
            else:
                self.recorder.delete(migration.revision)
            self.recorder.log(migration.revision, step.direction, migration.checksum, migration.message,
                              started, _ms(clock), "ok")

        self._commit(finish)


_statements_run = 0


def _fault_point(after: bool) -> None:
    """Crash-test hook: SCHEMASHIFT_FAULT_KILL_AT=N (before statement N) or N+ (after it) SIGKILLs this process.

    Statements are counted from 0 across the whole run. Used only by the crash-injection tests.
    """
    global _statements_run
    spec = os.environ.get("SCHEMASHIFT_FAULT_KILL_AT")
    if not spec:
        return
    target = int(spec.rstrip("+"))
    if _statements_run == target and spec.endswith("+") == after:
        os.kill(os.getpid(), signal.SIGKILL)
    if after:
        _statements_run += 1


class _StatementFailed(Exception):
    def __init__(self, sql: str, error: str) -> None:
        super().__init__(error)
        self.sql = sql
        self.error = error


def _ms(clock: float) -> int:
    return int((time.perf_counter() - clock) * 1000)


def _first_line(sql: str) -> str:
    lines = [line.strip() for line in sql.strip().splitlines() if line.strip()]
    text = " ".join(lines)
    return text if len(text) <= 120 else text[:117] + "..."
