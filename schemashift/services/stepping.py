"""A lean path for moving one database along the migrations many times in a row (the pytest plugin's runner).

A `Stepper` owns one connection and remembers where the database is, so a step
costs what its migrations cost: the first move (and any move from base) goes
through `schemashift.services.migrate.migrate` (version state read and checked,
squashes recorded, fresh build, refusal of unmanaged databases, tables
created); after it the revision is carried between moves instead of re-read.
Each later move takes the migration lock, takes its steps from a plan to head
built once (upgrades; a downgrade is planned as ``downgrade`` plans it), adds
data protection (`schemashift.planning.backups`; the backup registry is read
again only after a move that could change it) and runs the `Executor`, which
writes the version and history rows exactly as ``upgrade`` does. The lock is
not held for the stepper's life but lingers `Stepper.linger` seconds after a
move (`schemashift.runtime.locks.LingeringLock`): moves in quick succession take
it once, and a thread releases it once the test has not moved for that long, so
the test may migrate the same database in between with the ordinary commands,
in this process or another (they wait that long at most). What the stepper
carries (the revision, the backup registry) is trusted only while the lock was
held since: a move that has to take the lock again reads the revision again, so
the database may be moved in between. The live schema
is not fingerprinted (a test database is never deployed). Between moves whose
steps are all atomic, commits need not wait for the disk (`Dialect.defer_durability`,
as the `Executor` does inside one run, for the reason it gives): the stepper makes
them durable again before a journaled step, after a failure and on `close`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import sqlalchemy as sa

from schemashift.dialects import dialect_of
from schemashift.planning import backups
from schemashift.planning.plan import UP, Plan, Step, build_plan
from schemashift.runtime.locks import LingeringLock, migration_lock
from schemashift.services.migrate import migrate, plan_to
from schemashift.services.project import Output, Project, checked_current, print_line

_UNKNOWN = object()


class Stepper:
    """Moves the database of `project` (bound to one open connection) along its migrations, step after step."""

    #: Seconds the migration lock is kept after a move (see the module docstring).
    linger = 0.2

    def __init__(self, project: Project, out: Output = print_line) -> None:
        self.project = project
        self.out = out
        self.connection: sa.Connection = project.bind  # type: ignore[assignment]
        self.history = project.history()
        self.dialect = dialect_of(self.connection)
        self.recorder = project.recorder(self.connection)
        self._current: object = _UNKNOWN
        self._ahead: dict[str, Step] = {}  # up steps by revision, from one plan to head
        self._registry: Mapping[str, Mapping[str, Any]] | None = None  # the backup registry while unchanged
        self._deferred: tuple[object | None] | None = None  # `defer_durability`'s token while commits are deferred
        self._lock = LingeringLock(lambda: migration_lock(self.dialect, self.connection, project.lock_name,
                                                          project.env), self.linger)

    @property
    def current(self) -> str | None:
        """The revision the database is at (None: base); carried between moves while the lock stays held, else
        read again."""
        with self._lock.mutex:
            if self._current is _UNKNOWN or not self._lock.held:
                self._current = self._read_current()
            return self._current  # type: ignore[return-value]

    def _read_current(self) -> str | None:
        try:
            return checked_current(self.recorder, self.history)
        finally:
            self._idle(ok=True)

    def move(self, target: str, direction: str, *, allow_data_loss: bool) -> str | None:
        """Move to `target` (as ``upgrade``/``downgrade`` resolve it) in `direction`; the revision reached."""
        with self._lock.mutex:
            ok, reached = False, None
            try:
                reached = self._move(target, direction, allow_data_loss=allow_data_loss)
                ok = True
            finally:
                self._current = reached if ok else _UNKNOWN  # after a failure the next move reads the state again
                if not ok:
                    self._registry = None
                    self._make_durable(quietly=True)
                self._idle(ok=ok)
                self._end_move(ok=ok)
            return reached

    def _move(self, target: str, direction: str, *, allow_data_loss: bool) -> str | None:
        """The lean `_step` from a revision known under the lock, else the general path (from base, or unknown)."""
        if self._current is not _UNKNOWN and self._current is not None and self._lock.acquire():
            self._registry = None  # the lock was free since the last move: read what may have changed again
            self._current = self._read_current()
        if self._current is _UNKNOWN or self._current is None:
            self._lock.release()  # `migrate` takes the lock itself (on SQLite a second holder would wait)
            self._registry = None  # the general path may make or restore backups
            return migrate(self.project, target, direction, sql=False, dry_run=False, yes=True,
                           allow_data_loss=allow_data_loss, out=self.out, fingerprint=False)
        return self._step(target, direction, allow_data_loss=allow_data_loss)

    def _end_move(self, *, ok: bool) -> None:
        """Let the lock linger after a move that succeeded; release it at once after a failure."""
        if ok:
            self._lock.linger()
            return
        with suppress(sa.exc.DBAPIError):
            self._lock.release()

    def _step(self, target: str, direction: str, *, allow_data_loss: bool) -> str | None:
        """One move from the carried revision, under the lock: plan, protect, run (the version tables exist)."""
        from schemashift.runtime.executor import Executor
        from schemashift.runtime.objects import remember_objects

        current: str | None = self._current  # type: ignore[assignment]
        project, connection = self.project, self.connection
        plan = self._plan(current, target, direction)  # under the lock, taken by `_move`
        if plan.empty:
            return current
        plan = self._protect(plan, allow_data_loss=allow_data_loss)
        self._defer_durability(all(step.atomic for step in plan.steps))
        Executor(connection, self.recorder, project.migration_context(connection), self.out, None).run(plan)
        remember_objects(connection, plan)
        return plan.target

    def _plan(self, current: str | None, target: str, direction: str) -> Plan:
        """The plan from `current` to `target`; an upgrade's steps come from one plan to head, built once."""
        goal = self.history.resolve(target, current)
        if direction != UP or self.history.index(goal) <= self.history.index(current):
            return plan_to(self.history, self.dialect, current, target, direction)
        path = self.history.upgrade_path(current, goal)
        if any(migration.revision not in self._ahead for migration in path):
            ahead = build_plan(self.history, self.dialect, current, self.history.head)
            self._ahead.update((step.migration.revision, step) for step in ahead.steps)
        return Plan(self.dialect, UP, current, goal, [self._ahead[migration.revision] for migration in path])

    def _protect(self, plan: Plan, *, allow_data_loss: bool) -> Plan:
        """`backups.prepare` with the registry carried while no move could have changed it."""
        env = self.project.env
        kept = self._registry if self._registry is not None else backups.recorded(self.connection, env.schema)
        destructive = any(backups.data_loss(op) for step in plan.steps for op in step.operations)
        self._registry = None if kept or destructive else kept  # a backup made or restored: read it again
        return backups.prepare(self.connection, plan, env, allow_data_loss=allow_data_loss, kept=kept)

    def _defer_durability(self, defer: bool) -> None:
        """Let commits return before they are durable from now on (`defer`), or make them durable again."""
        if not defer:
            self._make_durable()
        elif self._deferred is None:
            self._deferred = (self.dialect.defer_durability(self.connection),)
            self._idle(ok=True)

    def _make_durable(self, *, quietly: bool = False) -> None:
        """Undo `_defer_durability` and flush every earlier commit to disk now."""
        if self._deferred is None:
            return
        (token,), self._deferred = self._deferred, None
        if token is None:
            return
        try:
            self._idle(ok=not quietly)  # after a failure: what the failed move left open is rolled back
            self.dialect.restore_durability(self.connection, token)
            self.dialect.flush_commits(self.connection)
            self._idle(ok=True)
        except sa.exc.DBAPIError:
            if not quietly:
                raise

    def close(self) -> None:
        """Release the lock, make every commit durable and close the connection."""
        try:
            with suppress(sa.exc.DBAPIError):
                self._lock.close()
            with self._lock.mutex:
                self._make_durable(quietly=True)
        finally:
            self.connection.close()

    def _idle(self, *, ok: bool) -> None:
        """End what a move left open on the connection, so other connections never wait for it."""
        if self.connection.in_transaction():
            if ok:
                self.connection.commit()
            else:
                self.connection.rollback()


__all__ = ["Stepper"]
