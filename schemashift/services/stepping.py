"""A lean path for moving one database along the migrations many times in a row (the pytest plugin's runner).

A `Stepper` owns one connection and remembers where the database is, so a step
costs what its migrations cost: the first move (and any move from base) goes
through `schemashift.services.migrate.migrate` (version state read and checked,
squashes recorded, fresh build, refusal of unmanaged databases, tables
created); after it the revision is carried between moves instead of re-read.
Each later move takes the migration lock, plans from the loaded history, adds
data protection (`schemashift.planning.backups`) and runs the `Executor`, which
writes the version and history rows exactly as ``upgrade`` does. The lock is
taken per move, not for the stepper's life, so a test may migrate the same
database in between with the ordinary commands; the database must not be moved
behind the stepper's back (a throw-away database of one test). The live schema
is not fingerprinted (a test database is never deployed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemashift.dialects import dialect_of
from schemashift.planning import backups
from schemashift.runtime.locks import migration_lock
from schemashift.services.migrate import migrate, plan_to
from schemashift.services.project import Output, Project, checked_current, print_line

if TYPE_CHECKING:
    import sqlalchemy as sa

_UNKNOWN = object()


class Stepper:
    """Moves the database of `project` (bound to one open connection) along its migrations, step after step."""

    def __init__(self, project: Project, out: Output = print_line) -> None:
        self.project = project
        self.out = out
        self.connection: sa.Connection = project.bind  # type: ignore[assignment]
        self.history = project.history()
        self.dialect = dialect_of(self.connection)
        self.recorder = project.recorder(self.connection)
        self._current: object = _UNKNOWN

    @property
    def current(self) -> str | None:
        """The revision the database is at (None: base); read once, then carried between moves."""
        if self._current is _UNKNOWN:
            try:
                self._current = checked_current(self.recorder, self.history)
            finally:
                self._idle(ok=True)
        return self._current  # type: ignore[return-value]

    def move(self, target: str, direction: str, *, allow_data_loss: bool) -> str | None:
        """Move to `target` (as ``upgrade``/``downgrade`` resolve it) in `direction`; the revision reached."""
        ok, reached = False, None
        try:
            if self._current is _UNKNOWN or self._current is None:
                reached = migrate(self.project, target, direction, sql=False, dry_run=False, yes=True,
                                  allow_data_loss=allow_data_loss, out=self.out, fingerprint=False)
            else:
                reached = self._step(target, direction, allow_data_loss=allow_data_loss)
            ok = True
        finally:
            self._current = reached if ok else _UNKNOWN  # after a failure the next move reads the state again
            self._idle(ok=ok)
        return reached

    def _step(self, target: str, direction: str, *, allow_data_loss: bool) -> str | None:
        """One move from the carried revision: lock, plan, protect, run (the version tables exist already)."""
        from schemashift.runtime.executor import Executor
        from schemashift.runtime.objects import remember_objects

        current: str | None = self._current  # type: ignore[assignment]
        project, connection = self.project, self.connection
        with migration_lock(self.dialect, connection, project.lock_name, project.env):
            plan = plan_to(self.history, self.dialect, current, target, direction)
            if plan.empty:
                return current
            plan = backups.prepare(connection, plan, project.env, allow_data_loss=allow_data_loss)
            Executor(connection, self.recorder, project.migration_context(connection), self.out, None).run(plan)
            remember_objects(connection, plan)
            return plan.target

    def _idle(self, *, ok: bool) -> None:
        """End what a move left open on the connection, so other connections never wait for it."""
        if self.connection.in_transaction():
            if ok:
                self.connection.commit()
            else:
                self.connection.rollback()


__all__ = ["Stepper"]
