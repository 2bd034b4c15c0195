"""Running a plan against a database, recording every step.

Where the dialect has transactional DDL, each migration and its version-table
row commit together or not at all (on PostgreSQL without waiting for the disk
until the run's last step, see `Executor.run`). Elsewhere each statement is
journaled in the version row before and after it runs, so a failure or a crash
leaves a row that says exactly how far the migration got; journal writes that
can share a commit do (a step's first row with its first "running" mark, a
step's finish with the next step's first row). A journaled step on a database
with transactional DDL (a PostgreSQL migration with a statement that must run
outside a transaction, or commit on its own) runs each stretch of consecutive
statements that can share a transaction as one transaction, with the journal's
count: a failure rolls the whole stretch back (see `Executor._run_journaled`).
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from schemashift import operations as ops
from schemashift.errors import ExecutionError, mask_secrets
from schemashift.planning.plan import DOWN, UP, Plan, Statement, Step
from schemashift.planning.safe import copy_allowed, new_table_operation, track_created
from schemashift.runtime.backfill import BatchRunner, Position, bounded, fraction, marked, saved_position
from schemashift.runtime.versions import APPLIED, FAILED, RUNNING, AppliedRun, Recorder, now
from schemashift.sacompat import driver_in_transaction
from schemashift.support.progress import Reporter

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect

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


def _start_of(step: Step) -> str | None:
    """The revision the database is at before `step` runs."""
    return step.migration.parent if step.direction == UP else step.migration.revision


def _error_text(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return mask_secrets(" ".join(str(original).split()))[:500]


@contextmanager
def transaction(connection: sa.Connection, explicit_begin: bool = False) -> Iterator[None]:
    """A real transaction around DDL, including on drivers that would otherwise autocommit DDL (pysqlite):
    with `explicit_begin` (`Dialect.autocommits_ddl`), ``BEGIN`` is sent when the driver has none open."""
    if connection.in_transaction():
        connection.commit()
    with connection.begin():
        raw = connection.connection.dbapi_connection
        if explicit_begin and raw is not None and not driver_in_transaction(raw):
            connection.exec_driver_sql("BEGIN")
        yield


@contextmanager
def outside_transaction(connection: sa.Connection) -> Iterator[None]:
    """The block with `connection` in autocommit, for what cannot run in a transaction: what it had open is
    committed first, and its isolation level is put back after."""
    if connection.in_transaction():
        connection.commit()
    level = connection.get_isolation_level()
    connection.execution_options(isolation_level="AUTOCOMMIT")
    try:
        yield
    finally:
        if connection.in_transaction():  # autobegun even in AUTOCOMMIT; must end before the level changes
            connection.commit()
        connection.execution_options(isolation_level=level)


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

    def __init__(self, connection: sa.Connection, recorder: Recorder, context: MigrationContext, out: Output,
                 reporter: Reporter | None = None) -> None:
        self.connection = connection
        self.recorder = recorder
        self.context = context
        self.out = out
        self.reporter = reporter or Reporter(out)  # told of each migration and statement (progress display)
        self._deferred: tuple[Dialect, object] | None = None  # see `run`
        self._open = False  # a statement awaits the next commit (see `_run_uncommitted`)
        self._resume_at: dict[tuple[str, int], Position] = {}  # saved backfill positions (see `resume`)
        self._journal_text: dict[int, str] = {}  # a running backfill's journal text, by id of its statement

    def run(self, plan: Plan) -> None:
        """Run every step of `plan` in order; stop at the first failure.

        Before the last step, atomic steps may commit without waiting for the
        disk (`Dialect.defer_durability`: PostgreSQL's ``synchronous_commit =
        off``). That is safe because each such commit holds a whole migration with
        its version and history rows: a server crash can only lose the last few
        of them entirely, and the database then says truthfully that they are
        not applied. The last step, every journaled step and the history row of a
        failure commit durably again, and a durable commit makes every earlier
        one durable too, so a run that ends (in success or a failed migration) has all of it on disk.
        """
        steps = plan.steps
        with foreign_keys_relaxed(self.connection, plan.dialect.rebuilds_tables):
            if len(steps) > 1:
                token = plan.dialect.defer_durability(self.connection)
                self._deferred = None if token is None else (plan.dialect, token)
            try:
                self._run_steps(steps)
            finally:
                self.reporter.finished()
                self._durable(failed=True)

    def run_in_transaction(self, plan: Plan) -> None:
        """Run every step of `plan` inside the caller's open transaction, which the caller commits once.

        For plans `in_one_transaction` says can (every step atomic, no statement retried
        after a lock timeout). An upgrade's version and history rows are written together
        after the last step. A failing statement rolls the whole transaction back, its
        history row is logged (the bookkeeping tables created again if the rollback took
        them) and an ExecutionError says the database is still where the plan started.
        """
        runs: list[AppliedRun] = []
        try:
            for index, step in enumerate(plan.steps):
                self.reporter.migration_started(step.label, index + 1, len(plan.steps), len(step.statements))
                started, clock = now(), time.perf_counter()
                try:
                    for statement in step.statements:
                        self._run_one(step, statement)
                except _StatementFailed as failure:
                    self._log_failure_after_rollback(step, started, clock, failure.error)
                    raise ExecutionError(
                        f"{step.label} failed at: {_first_line(failure.sql)}: {failure.error}; rolled back with "
                        f"the rest of this run (one transaction): the database is still at {plan.start or 'base'}"
                    ) from None
                migration = step.migration
                if step.direction == UP:
                    runs.append(AppliedRun(migration.revision, migration.parent, migration.checksum,
                                           migration.message, started, _ms(clock), len(step.statements)))
                else:
                    self.recorder.delete(migration.revision)
                    self.recorder.log(migration.revision, step.direction, migration.checksum, migration.message,
                                      started, _ms(clock), "ok")
                self._announce(step, (time.perf_counter() - clock) * 1000)
            self.recorder.record_applied(runs, together=plan.dialect.dml_in_cte)
        finally:
            self.reporter.finished()

    def _log_failure_after_rollback(self, step: Step, started: datetime, clock: float, error: str) -> None:
        if self.connection.in_transaction():
            self.connection.rollback()
        self.recorder.ensure()
        self._log_failure(step, started, clock, error)

    @staticmethod
    def in_one_transaction(plan: Plan) -> bool:
        """True when `run_in_transaction` can run `plan`: every step atomic, no statement with a lock bound to
        retry under (a retry rolls back, which would take the earlier steps with it)."""
        return all(step.atomic and all(statement.lock is None for statement in step.statements)
                   for step in plan.steps)

    def _run_steps(self, steps: list[Step]) -> None:
        pending: _Finish | None = None  # a journaled step's last journal write, committed with the next one
        for index, step in enumerate(steps):
            if index == len(steps) - 1 or not step.atomic:
                self._durable()
            self.reporter.migration_started(step.label, index + 1, len(steps), len(step.statements))
            if step.atomic:
                self._settle(pending)
                pending = None
                started = time.perf_counter()
                self._run_atomic(step)
                self._announce(step, (time.perf_counter() - started) * 1000)
            else:
                pending = self._run_journaled(step, carry=pending)
        self._settle(pending)

    def _announce(self, step: Step, elapsed: float) -> None:
        self.reporter.migration_finished("applied" if step.direction == UP else "reverted", step.label, elapsed)

    def _durable(self, *, failed: bool = False) -> None:
        """Make commits durable again (see `run`); after a failure, quietly if the connection is gone."""
        if self._deferred is None:
            return
        dialect, token = self._deferred
        self._deferred = None
        if failed and self.connection.in_transaction():
            self.connection.rollback()
        try:
            dialect.restore_durability(self.connection, token)
        except sa.exc.DBAPIError:
            if not failed:
                raise

    def _execute(self, statement: Statement, dialect: Dialect | None = None) -> None:
        self.reporter.statement_started(statement.describe())
        _fault_point(False)
        if statement.python is not None:
            statement.python(self.context)
        elif statement.sql is not None:
            with self._lock_bound(statement):
                self._run_sql(statement, statement.sql, dialect)
        _fault_point(True)

    @contextmanager
    def _lock_bound(self, statement: Statement) -> Iterator[None]:
        """Safe mode: the statement waits for its lock only briefly (see `_retry_lock`), the bound set before it
        and put back after it where it outlives the transaction."""
        lock = statement.lock
        if lock is None:
            yield
            return
        self.connection.exec_driver_sql(lock.setting)
        try:
            yield
        finally:
            if lock.reset is not None:
                with suppress(sa.exc.DBAPIError):  # a failed transaction: its rollback puts the bound back
                    self.connection.exec_driver_sql(lock.reset)

    def _run_sql(self, statement: Statement, sql: str, dialect: Dialect | None) -> None:
        """Run `sql`; when the server refuses its online algorithm, the plan's fallback (`_fallback`), if any."""
        try:
            self.connection.exec_driver_sql(sql)
        except sa.exc.DBAPIError as exc:
            if dialect is None or not dialect.algorithm_refused(exc):
                raise
            fallback = self._fallback(statement, dialect)
            if fallback is None:
                raise
            self.out(f"the server refused {_first_line(sql)} ({_error_text(exc)}): running {_first_line(fallback)}")
            self.connection.exec_driver_sql(fallback)

    def _fallback(self, statement: Statement, dialect: Dialect) -> str | None:
        """What runs after the server refused `statement`'s algorithm: its plain form on a table small enough to
        copy (counted now, see `CopyFallback`), else its `fallback`."""
        copy = statement.copy
        if copy is not None and copy_allowed(dialect, self.connection, copy):
            return copy.sql
        return statement.fallback

    def _retry_lock(self, step: Step, statement: Statement, error: BaseException | None, attempt: int) -> bool:
        """After `statement` failed with `error`: True (having rolled back and waited) when it timed out
        waiting for its lock and retries are left (safe mode, see `Statement.lock`)."""
        lock = statement.lock
        if lock is None or error is None or attempt >= lock.retries or not step.plan_dialect.lock_timed_out(error):
            return False
        if self.connection.in_transaction():
            self.connection.rollback()
        self._open = False
        wait = lock.backoff * 2**attempt
        self.out(f"{step.label}: lock not granted in time for {_first_line(statement.describe())}; "
                 f"retry {attempt + 1} of {lock.retries} in {wait:g} s")
        time.sleep(wait)
        return True

    # -- transactional DDL -------------------------------------------------

    def _run_atomic(self, step: Step) -> None:
        attempt = 0
        while not self._run_atomic_once(step, attempt):
            attempt += 1

    def _run_atomic_once(self, step: Step, attempt: int) -> bool:
        """Run `step` in one transaction; False when it rolled back to be retried (see `_retry_lock`)."""
        started, clock = now(), time.perf_counter()
        migration = step.migration
        try:
            with transaction(self.connection, step.plan_dialect.autocommits_ddl):
                for statement in step.statements:
                    self._run_one(step, statement)
                if step.direction == UP:
                    self.recorder.insert_and_log(migration.revision, migration.parent, migration.checksum,
                                                 migration.message, started, _ms(clock), len(step.statements),
                                                 together=step.plan_dialect.dml_in_cte)
                else:
                    self.recorder.delete(migration.revision)
                    self.recorder.log(migration.revision, step.direction, migration.checksum, migration.message,
                                      started, _ms(clock), "ok")
        except _StatementFailed as failure:
            if self._retry_lock(step, failure.statement, failure.__cause__, attempt):
                return False
            self._log_failure(step, started, clock, failure.error)
            raise ExecutionError(
                f"{step.label} failed at: {_first_line(failure.sql)}: {failure.error}; "
                f"rolled back, the database is still at {_start_of(step) or 'base'}"
            ) from None
        return True

    def _run_one(self, step: Step, statement: Statement) -> None:
        try:
            self._execute(statement, step.plan_dialect)
        except Exception as exc:  # deliberately broad: any failure of user SQL/Python is reported, not raised raw
            raise _StatementFailed(statement, _error_text(exc)) from exc

    def _log_failure(self, step: Step, started: datetime, clock: float, error: str) -> None:
        migration = step.migration
        if self.connection.in_transaction():
            self.connection.rollback()
        self._durable()  # this commit makes every earlier one durable
        with self.connection.begin():
            self.recorder.log(migration.revision, step.direction, migration.checksum, migration.message,
                              started, _ms(clock), "failed", error)

    # -- journaled (non-transactional DDL) ----------------------------------

    def _commit(self, action: Callable[[], None]) -> None:
        """Run `action` in a transaction and commit it, with the statement `_run_uncommitted` left, if any."""
        if self.connection.in_transaction():
            if self._open:
                self._open = False
                try:
                    action()
                except BaseException:
                    self.connection.rollback()
                    raise
                self.connection.commit()
                return
            self.connection.commit()
        self._open = False
        with self.connection.begin():
            action()

    def _run_uncommitted(self, statement: Statement, dialect: Dialect | None = None) -> None:
        """Run `statement` and leave its commit to the next journal write (one round trip less).

        Only where DDL is not transactional: there DDL commits itself as it runs,
        and any other statement commits with the journal write that records it done.
        """
        if self.connection.in_transaction():
            self.connection.commit()
        self._execute(statement, dialect)
        self._open = True

    def _commit_with(self, carry: _Finish | None, action: Callable[[], None]) -> None:
        """Commit `action` together with the previous step's pending finish (then announce that step)."""
        if carry is None:
            self._commit(action)
            return

        def both() -> None:
            carry.record(self.recorder)
            action()

        try:
            self._commit(both)
        except Exception:
            if self.connection.in_transaction():
                self.connection.rollback()
            if not carry.uncommitted:  # else the journal still says its last statement may have run: true
                self._commit(lambda: carry.record(self.recorder))  # the finished step stays recorded
                self._announce(carry.step, carry.duration_ms)
            raise
        self._announce(carry.step, carry.duration_ms)

    def _settle(self, pending: _Finish | None, *, announce: bool = True) -> None:
        """Commit a journaled step's pending finish on its own."""
        if pending is not None:
            self._commit(lambda: pending.record(self.recorder))
            if announce:
                self._announce(pending.step, pending.duration_ms)

    def _run_journaled(self, step: Step, start_at: int = 0, *, resume: bool = False,
                       carry: _Finish | None = None) -> _Finish:
        """Run `step` statement by statement from `start_at`, journaling before and after each one.

        Where DDL is transactional, each stretch of consecutive statements that can
        share a transaction (`_stretch_end`) runs as one, with the journal's new
        count: a failure or a crash inside it rolls all of it back, and the journal
        then says the step stands at the stretch's first statement.

        Returns the step's finish (APPLIED or the row's removal, and the history
        row) uncommitted: the caller commits it with the next journal write, one
        commit less per step (`carry` is the previous step's). The first
        statement's "running" mark is written with the step's first journal row.
        Either way the journal says no less than what happened: a crash before the
        finish leaves the last statement marked as running, which `repair` checks.
        """
        clock = time.perf_counter()
        started = now()
        migration = step.migration
        revision = migration.revision
        sharing = self._sharing(step)
        marked = start_at < len(step.statements) and self._needs_mark(step, sharing, start_at)
        running: dict[str, Any] = {"running_statement": self._running_text(step, start_at)} if marked else {}
        if resume:  # the file as it runs now (repair refuses an edit once statements ran)
            self._commit_with(carry, lambda: self.recorder.update(
                revision, state=RUNNING, direction=step.direction, statements_done=start_at, failed_statement=None,
                error=None, checksum=migration.checksum, **running))
        elif step.direction == UP:
            self._commit_with(carry, lambda: self.recorder.insert(
                revision, migration.parent, migration.checksum, migration.message, RUNNING, **running))
        else:
            self._commit_with(carry, lambda: self.recorder.update(
                revision, state=RUNNING, direction=DOWN, statements_done=0, failed_statement=None, error=None,
                **running))
        last = len(step.statements) - 1
        index = start_at
        while index <= last:
            end = self._stretch_end(sharing, index)
            try:
                if end is None:  # the last statement's "done" is recorded by the finish
                    self._journaled_statement(step, index, record_done=index != last,
                                              marked=marked and index == start_at)
                else:
                    mark = not (marked and index == start_at) and self._needs_mark(step, sharing, index)
                    self._run_stretch(step, index, end, mark=mark)
            except _StretchFailed as failure:  # rolled back: the journal says the step stands at `index`
                self._journal_failure(step, failure.index, started, clock, failure.error, done=index)
            except Exception as exc:  # noqa: BLE001 - deliberately broad: reported with the journal, never raised raw
                self._journal_failure(step, index, started, clock, _error_text(exc))
            index = index + 1 if end is None else end
        return _Finish(step, started, _ms(clock), now(), self._open)

    @staticmethod
    def _sharing(step: Step) -> list[bool]:
        """For each statement of a journaled step: True when it may run in one transaction with its neighbours.

        Only where DDL is transactional, and none that must run outside a transaction
        (CONCURRENTLY), commit on its own (safe mode's VALIDATE), commit batch by
        batch (a backfill) or take a strong lock on a table that was there before the
        step (safe mode retries it after a lock timeout; either way it would hold the
        lock while the others run): a table the step creates has nobody to block.
        """
        dialect = step.plan_dialect
        created: set[str] = set()
        new_table: dict[int, bool] = {}
        for operation in step.operations:
            new_table[id(operation)] = isinstance(operation, ops.CreateTable) or new_table_operation(operation, created)
            track_created(operation, created)
        sharing = []
        for statement in step.statements:
            sql = statement.sql
            in_transaction = sql is None or dialect.runs_in_transaction(sql)
            unlocked = statement.lock is None and (sql is None or not dialect.takes_lock(sql)
                                                   or new_table.get(id(statement.operation), False))
            sharing.append(dialect.transactional_ddl and in_transaction and unlocked and not statement.own_transaction
                           and not statement.operation.batched)
        return sharing

    @staticmethod
    def _stretch_end(sharing: list[bool], start: int) -> int | None:
        """Where the stretch of statements sharing one transaction from `start` ends (exclusive); None when
        statement `start` runs journaled on its own (see `_sharing`)."""
        end = start
        while end < len(sharing) and sharing[end]:
            end += 1
        return None if end == start else end

    def _needs_mark(self, step: Step, sharing: list[bool], start: int) -> bool:
        """True when statement `start` (or the stretch it begins) is marked "running" in the journal before it
        runs: all but data statements journaled in their own transaction."""
        end = self._stretch_end(sharing, start) or start + 1
        return not all(self._atomic_data(step, statement) for statement in step.statements[start:end])

    def _run_stretch(self, step: Step, start: int, end: int, *, mark: bool) -> None:
        """Run statements `start` to `end` (exclusive) in one transaction that also records them done; a failure,
        its commit's included, rolls all of them back (`_StretchFailed`); `mark`: first mark it "running" in the
        journal, as its first statement."""
        revision = step.migration.revision
        if mark:
            text = step.statements[start].describe()
            self._commit(lambda: self.recorder.update(revision, running_statement=text))
        self._open = False
        at = start
        try:
            with transaction(self.connection, step.plan_dialect.autocommits_ddl):
                for at in range(start, end):
                    self._execute(step.statements[at], step.plan_dialect)
                self.recorder.update(revision, statements_done=end, running_statement=None)
        except Exception as exc:  # deliberately broad: reported with the journal, never raised raw
            raise _StretchFailed(at, _error_text(exc)) from exc

    @staticmethod
    def _atomic_data(step: Step, statement: Statement) -> bool:
        """True for a data statement that runs and is journaled in one transaction."""
        in_transaction = statement.sql is None or step.plan_dialect.runs_in_transaction(statement.sql)
        return statement.operation.data_only and in_transaction and not statement.batched

    def _running_text(self, step: Step, index: int) -> str:
        """What the journal says while statement `index` runs: its text, with a backfill's saved position."""
        statement = step.statements[index]
        saved = self._resume_at.get((step.migration.revision, index))
        return statement.describe() if saved is None else marked(statement.describe(), saved)

    def _journaled_statement(self, step: Step, index: int, *, record_done: bool = True, marked: bool = False) -> None:
        """Run statement `index`; `marked`: its "running" mark is already committed."""
        statement = step.statements[index]
        revision = step.migration.revision
        done = {"statements_done": index + 1, "running_statement": None}
        if statement.batched:
            self._run_batched(step, index)
            if record_done:
                self._commit(lambda: self.recorder.update(revision, **done))
            return
        if self._atomic_data(step, statement):
            # data statements are transactional everywhere: run them and journal them atomically
            def run_and_record() -> None:
                self._execute(statement)
                self.recorder.update(revision, **done)

            self._commit(run_and_record)
            return
        if not marked:
            self._commit(lambda: self.recorder.update(revision, running_statement=statement.describe()))
        attempt = 0
        while True:
            try:
                if attempt:
                    self._clear_before_retry(step.plan_dialect, statement)
                self._run_journaled_statement(step, statement)
                break
            except Exception as exc:  # deliberately broad: retried on a lock timeout, else raised
                if not self._retry_lock(step, statement, exc, attempt):
                    raise
                attempt += 1
        if record_done:
            self._commit(lambda: self.recorder.update(revision, **done))

    def _run_batched(self, step: Step, index: int) -> None:
        """Run the backfill at statement `index` batch by batch (see `schemashift.runtime.backfill`) up to the
        largest key when it started (a saved position keeps its bound): each batch commits with the journal's new
        position; a saved position (`resume`) skips the finished batches."""
        statement = step.statements[index]
        operation: Any = statement.backfill or statement.operation
        revision, text = step.migration.revision, statement.describe()
        position = self._resume_at.pop((revision, index), None) or Position()
        state = step.before
        for earlier in step.operations:
            if earlier is statement.operation:
                break
            state = earlier.apply(state)
        if statement.backfill is not None:  # part of its operation: the column it fills is there
            state = statement.operation.apply(state)
        runner = BatchRunner(self.connection, step.plan_dialect.backfill_sql(operation, state), operation.batch_size)
        what = f"backfill {operation.table_key}"
        self.reporter.statement_started(text)
        span: tuple[Any, Any] = (None, None)

        def start() -> None:
            nonlocal span, position
            span = runner.span()
            position = bounded(position, span[1])
            self.recorder.update(revision, running_statement=marked(text, position))

        self._journal_text[id(statement)] = marked(text, position)  # a resumed run keeps its saved position
        self._commit(start)
        self._journal_text[id(statement)] = marked(text, position)
        while not position.done:  # a failure leaves the last position in `_journal_text` for the journal
            position = self._one_batch(runner, revision, text, position)
            self._journal_text[id(statement)] = marked(text, position)
            self.reporter.batch_done(what, position.batches, position.rows, fraction(position, span))
            if operation.pause and not position.done:
                time.sleep(operation.pause)
        del self._journal_text[id(statement)]

    def _one_batch(self, runner: BatchRunner, revision: str, text: str, position: Position) -> Position:
        """Run and journal one batch in one transaction; the position after it (once committed)."""
        after = position

        def batch() -> None:
            nonlocal after
            _fault_point(False)
            after = runner.batch(position)
            _fault_point(True)
            self.recorder.update(revision, running_statement=marked(text, after))

        self._commit(batch)
        return after

    def _run_journaled_statement(self, step: Step, statement: Statement) -> None:
        if statement.sql is not None and not step.plan_dialect.runs_in_transaction(statement.sql):
            self.reporter.statement_started(statement.sql)
            self._autocommit(statement.sql, statement)
        elif step.plan_dialect.transactional_ddl:
            self._commit(lambda: self._execute(statement, step.plan_dialect))
        else:
            self._run_uncommitted(statement, step.plan_dialect)

    def _autocommit(self, sql: str, statement: Statement | None = None) -> None:
        """Run `sql` outside a transaction (`statement`: the plan's, whose lock bound it runs under)."""
        with outside_transaction(self.connection):
            self._open = False
            _fault_point(False)
            if statement is None:
                self.connection.exec_driver_sql(sql)
            else:
                with self._lock_bound(statement):
                    self.connection.exec_driver_sql(sql)
            _fault_point(True)

    def _journal_failure(self, step: Step, index: int, started: datetime, clock: float, error: str,
                         done: int | None = None) -> None:
        """Record that statement `index` failed (`done`: the count the journal holds, when a stretch sharing one
        transaction rolled back from there) and raise the ExecutionError saying so."""
        done = index if done is None else done
        migration = step.migration
        revision = migration.revision
        statement = step.statements[index]
        if self.connection.in_transaction():
            self.connection.rollback()
        self._open = False
        self.clear_leftovers(step.plan_dialect, statement.sql, error, statement)
        failed = self._journal_text.pop(id(statement), statement.describe())  # a backfill: with its position
        self._commit(lambda: self.recorder.update(revision, state=FAILED, failed_statement=failed,
                                                  running_statement=None, error=error))
        self._commit(lambda: self.recorder.log(revision, step.direction, migration.checksum, migration.message,
                                               started, _ms(clock), "failed", error))
        verb = "upgraded" if step.direction == UP else "downgraded"
        state = (f"the database is PARTLY {verb} ({done} of its statements ran)" if done else
                 "none of its statements completed (the first failed), and the step is recorded as failed")
        if done < index:
            state = (f"statements {done + 1} to {index + 1} ran in one transaction and were rolled back; "
                     + state.replace("the first failed", "every one that ran was rolled back"))
        raise ExecutionError(
            f"{step.label} failed at statement {index + 1} of {len(step.statements)}: "
            f"{_first_line(statement.describe())}: {error}; {state} — fix the cause, then run `schemashift repair`"
        ) from None

    # -- repair ------------------------------------------------------------

    def run_statement(self, statement: Statement, dialect: Dialect) -> None:
        """Run one statement outside any step (repair fix-ups and undo)."""
        if statement.sql is not None and not dialect.runs_in_transaction(statement.sql):
            self._autocommit(statement.sql)
        else:
            self._commit(lambda: self._execute(statement, dialect))

    def resume(self, step: Step, start_at: int) -> None:
        """Finish a partly run step from statement `start_at` (a backfill there: after its last finished batch)."""
        if start_at < len(step.statements) and step.statements[start_at].batched:
            row = self.recorder.applied().get(step.migration.revision)
            text = step.statements[start_at].describe()
            saved = None if row is None else saved_position(row.running_statement or row.failed_statement, text)
            if saved is not None:
                self._resume_at[(step.migration.revision, start_at)] = saved
                self.out(f"{step.label}: the backfill resumes after {saved.batches} finished batch(es) "
                         f"({saved.rows} rows)")
        self.reporter.migration_started(step.label, 1, 1, len(step.statements) - start_at)
        try:
            with foreign_keys_relaxed(self.connection, step.plan_dialect.rebuilds_tables):
                self._settle(self._run_journaled(step, start_at, resume=True), announce=False)
        finally:
            self.reporter.finished()
        verb = "applied" if step.direction == UP else "reverted"
        self.out(f"{verb} {step.label} (resumed at statement {start_at + 1} of {len(step.statements)})")

    def clear_leftovers(self, dialect: Dialect, sql: str | None, error: str,
                        statement: Statement | None = None) -> None:
        """Remove what a failed statement left behind where the database does not
        (see `Dialect.leftovers_of_failure`); under `statement`'s lock bound when given (safe mode)."""
        if not sql:
            return
        try:
            self._remove_leftovers(dialect, sql, error, statement)
        except sa.exc.DBAPIError:  # the connection (or a lock) may be what failed: repair tries again
            if self.connection.in_transaction():
                self.connection.rollback()

    def _clear_before_retry(self, dialect: Dialect, statement: Statement) -> None:
        """Before a retry: remove what the timed-out attempt left (an INVALID index), waiting for the lock no
        longer than the statement itself may; a timeout here is one more lock timeout (see `_retry_lock`)."""
        if statement.sql:
            self._remove_leftovers(dialect, statement.sql, "", statement)

    def _remove_leftovers(self, dialect: Dialect, sql: str, error: str, statement: Statement | None) -> None:
        for cleanup in dialect.leftovers_of_failure(self.connection, sql, error):
            self._autocommit(cleanup, statement)
            self.out(f"removed what the failed statement left: {cleanup}")

    def journal_undone(self, step: Step, done: int) -> None:
        """Record that `repair undo` took back every statement from `done` on (the row says `done` ran)."""
        self._commit(lambda: self.recorder.update(step.migration.revision, state=FAILED, statements_done=done,
                                                  running_statement=None))

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
                              now(), 0, "undone")

        self._commit(record)
        self.out(f"undid the partial {'upgrade' if step.direction == UP else 'downgrade'} of {step.label}")


@dataclass
class _Finish:
    """The last journal write of a journaled step whose statements all ran (not yet committed)."""

    step: Step
    started: datetime
    duration_ms: int
    finished: datetime
    uncommitted: bool = False  #: its last statement awaits this commit (see `Executor._run_uncommitted`)

    def record(self, recorder: Recorder) -> None:
        """Mark the step done in the version table and log it (inside the caller's transaction)."""
        step, migration = self.step, self.step.migration
        if step.direction == UP:
            recorder.update(migration.revision, state=APPLIED, duration_ms=self.duration_ms, applied_at=self.finished,
                            statements_done=len(step.statements), running_statement=None, failed_statement=None,
                            error=None)
        else:
            recorder.delete(migration.revision)
        recorder.log(migration.revision, step.direction, migration.checksum, migration.message, self.started,
                     self.duration_ms, "ok")


_statements_run = 0


def _fault_point(after: bool) -> None:
    """Crash-test hook: SCHEMASHIFT_FAULT_KILL_AT=N (before statement N) or N+ (after it) SIGKILLs this process.

    Statements are counted from 0 across the whole run. Used only by the crash-injection tests.
    """
    global _statements_run  # noqa: PLW0603 - the crash-injection counter of this process
    spec = os.environ.get("SCHEMASHIFT_FAULT_KILL_AT")
    if not spec:
        return
    target = int(spec.rstrip("+"))
    if _statements_run == target and spec.endswith("+") == after:
        os.kill(os.getpid(), signal.SIGKILL)
    if after:
        _statements_run += 1


class _StatementFailed(Exception):
    def __init__(self, statement: Statement, error: str) -> None:
        super().__init__(error)
        self.statement = statement
        self.sql = statement.describe()
        self.error = error


class _StretchFailed(Exception):
    """Statement `index` of a stretch sharing one transaction (or its commit) failed: all of it rolled back."""

    def __init__(self, index: int, error: str) -> None:
        super().__init__(error)
        self.index = index
        self.error = error


def _ms(clock: float) -> int:
    """Milliseconds since `clock`, rounded up (a step that ran took at least 1 ms, never 0)."""
    return math.ceil((time.perf_counter() - clock) * 1000)


def _first_line(sql: str) -> str:
    lines = [line.strip() for line in sql.strip().splitlines() if line.strip()]
    text = " ".join(lines)
    return text if len(text) <= 120 else text[:117] + "..."
