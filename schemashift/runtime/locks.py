"""The migration lock: the database's own lock, or a lease where that lock cannot be trusted.

`migration_lock` takes the dialect's own lock (`Dialect.lock`: a PostgreSQL session
advisory lock, MySQL ``GET_LOCK`` …) unless `Dialect.needs_lease_lock` says it is not
safe there: through a transaction-mode pooler a session lock belongs to whichever
server connection ran it, and on a Galera cluster ``GET_LOCK`` holds on one node only.
There it takes a `LeaseLock`:

* one row per lock name in ``<version_table>_lock`` (primary key ``name``), claimed by
  a *committed* write that sets ``owner`` and ``expires_ms`` from the database clock
  (`Dialect.clock_ms_sql`). A claim only matches a free or expired row, and racing
  claims are settled by the database: a row lock on PostgreSQL, certification on
  Galera (the loser's commit fails, `Dialect.is_write_conflict`). Losers poll, backing
  off, until the lock timeout.
* a heartbeat thread on a connection of its own pushes ``expires_ms`` forward every
  quarter lease, so a long statement on the migration connection never lets the lease
  lapse, while a holder that dies stops beating: its lease lapses within ``lock_lease``
  seconds (a Galera node's eviction stalls commits for a few seconds; leases of 15 s
  and more absorb that).
* release frees the row; a lease found taken over (it lapsed) fails the run loudly.

`LingeringLock` keeps a lock (either kind) for a moment after a use, so uses in quick
succession (the pytest runner's steps) take it once; a thread of its own releases it
once nobody used it for that moment, so a waiter, in this process or another, never
waits for an idle holder longer than that.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift.errors import LockTimeout

if TYPE_CHECKING:
    from schemashift.config import EnvConfig
    from schemashift.dialects.base import Dialect

#: The lock table is named after the version table with this suffix.
SUFFIX = "_lock"
#: Longest pause between two claims of a waiting run (seconds).
MAX_BACKOFF = 1.0


def lock_table_name(version_table: str) -> str:
    """The name of the lease table of the version table `version_table`."""
    return f"{version_table}{SUFFIX}"


def lock_table(version_table: str, schema: str | None = None) -> sa.Table:
    """The lease table: one row per lock name, its owner and when its lease ends (database clock, ms)."""
    return sa.Table(
        lock_table_name(version_table),
        sa.MetaData(schema=schema),
        sa.Column("name", sa.String(191), primary_key=True),
        sa.Column("owner", sa.String(64)),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("claimed_ms", sa.BigInteger),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
    )


@contextmanager
def migration_lock(dialect: Dialect, connection: sa.Connection, name: str, env: EnvConfig) -> Iterator[None]:
    """Hold the migration lock `name` of `env` for the block: the dialect's own, or a lease (see above)."""
    if not dialect.needs_lease_lock(connection, env):
        with dialect.lock(connection, name, env.lock_timeout):
            yield
        return
    if connection.in_transaction():
        connection.commit()  # the detection query's transaction must not stay open under the run
    with LeaseLock(connection.engine, dialect, env, name).held():
        yield


def can_lock_in_transaction(dialect: Dialect, connection: sa.Connection, env: EnvConfig) -> bool:
    """True when `lock_in_transaction` may stand in for `migration_lock` here: the dialect has a
    transaction-level lock and the session lock is the one this database would use (no lease lock)."""
    return dialect.transaction_lock and not dialect.needs_lease_lock(connection, env)


def lock_in_transaction(dialect: Dialect, connection: sa.Connection, name: str, env: EnvConfig) -> None:
    """Take the migration lock `name` of `env` inside the open transaction of `connection`, held until that
    transaction commits or rolls back (one statement, no release); it excludes `migration_lock` on the same
    name. Only where `can_lock_in_transaction`: a run whose whole work is one transaction (a tenant of a fleet)."""
    if not connection.in_transaction():
        connection.begin()
    dialect.lock_in_transaction(connection, name, env.lock_timeout)


class LingeringLock:
    """A lock kept for `linger` seconds after each use, then released by a thread of its own (see above).

    Every use of the lock's connection, by the caller or by the thread, happens under
    `mutex`: the caller holds it around `acquire` … `linger` (and any other use of that
    connection), the thread only takes it to release the lock.
    """

    def __init__(self, take: Callable[[], AbstractContextManager[None]], linger: float) -> None:
        self.mutex = threading.Condition(threading.RLock())
        self._take = take
        self._linger = linger
        self._held: ExitStack | None = None
        self._deadline: float | None = None  # when the thread releases it (None: in use)
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def held(self) -> bool:
        """True while the lock is held (in use or lingering)."""
        return self._held is not None

    def acquire(self) -> bool:
        """Hold the lock for a use (under `mutex`); True when it was taken now, False when still held since the
        last use (no other holder can have come in between)."""
        self._deadline = None
        if self._held is not None:
            return False
        stack = ExitStack()
        stack.enter_context(self._take())
        self._held = stack
        return True

    def linger(self) -> None:
        """End a use (under `mutex`): keep the lock `linger` seconds more, unless the next use comes first."""
        if self._held is None:
            return
        self._deadline = time.monotonic() + self._linger
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="schemashift-linger", daemon=True)
            self._thread.start()

    def release(self) -> None:
        """Release the lock now (under `mutex`)."""
        held, self._held, self._deadline = self._held, None, None
        if held is not None:
            held.close()

    def close(self) -> None:
        """Release the lock and stop the thread."""
        with self.mutex:
            self._closed = True
            thread = self._thread
            try:
                self.release()
            finally:
                self.mutex.notify_all()
        if thread is not None:
            thread.join()

    def _watch(self) -> None:
        """The thread: release the lock once its deadline passed with no use since."""
        with self.mutex:
            while self._held is not None and not self._closed:
                left = self._linger if self._deadline is None else self._deadline - time.monotonic()
                if left > 0:
                    self.mutex.wait(left)
                    continue
                with suppress(Exception):  # deliberately broad: a lock that fails to release is gone with its session
                    self.release()
            self._thread = None


class LeaseLock:
    """A lock row with a lease renewed by a heartbeat thread (see the module docstring)."""

    def __init__(self, engine: sa.Engine, dialect: Dialect, env: EnvConfig, name: str) -> None:
        if dialect.clock_ms_sql is None:
            raise LockTimeout(f"the {dialect.name} dialect has no lease lock")
        self.engine, self.dialect, self.env, self.name = engine, dialect, env, name
        self.table = lock_table(env.version_table, env.schema)
        self.owner = uuid.uuid4().hex
        self.lease_ms = max(1000, round(env.lock_lease * 1000))
        self.lost: str | None = None  #: why the lease was lost while held (set by the heartbeat)
        self._sql = _Statements(dialect, self.table)
        self._connection: sa.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        """Acquire, hold (heartbeat running) and release the lock around the block."""
        self.acquire()
        try:
            yield
        except BaseException:
            self.release()
            raise
        self.release()
        if self.lost is not None:
            raise LockTimeout(f"the migration lock {self.name!r} was lost during the run ({self.lost}); "
                              "another run may have worked at the same time",
                              hint="check `schemashift status`, and raise `lock_lease` if the database stalls")

    # -- acquiring ---------------------------------------------------------------

    def acquire(self) -> None:
        """Claim the row, polling with backoff; LockTimeout after the environment's `lock_timeout`."""
        self._connection = self._connect()
        try:
            self._ensure_table()
            self._wait_for_claim()
        except BaseException:
            self._close()
            raise
        self._thread = threading.Thread(target=self._beat, name=f"schemashift-lease-{self.owner[:8]}", daemon=True)
        self._thread.start()

    def _wait_for_claim(self) -> None:
        timeout = self.env.lock_timeout
        deadline = time.monotonic() + max(timeout, 0.0)
        wait = 0.05
        while True:
            holder = self._claim()
            if holder is None:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(f"could not take the migration lock {self.name!r} within {timeout:g} s: {holder}",
                                  hint="wait for it to finish, or raise the lock timeout")
            time.sleep(min(wait * random.uniform(0.5, 1.0), left))
            wait = min(wait * 2, MAX_BACKOFF, self.lease_ms / 4000)

    def _claim(self) -> str | None:
        """One attempt: None when this run now holds the lock, else who holds it."""
        connection = self._live()
        params = self._params()
        try:
            with connection.begin():
                if connection.execute(self._sql.claim, params).rowcount == 1:
                    return None
                row = connection.execute(self._sql.holder, params).first()
                if row is None:
                    connection.execute(self._sql.insert, params)
                    return None
        except sa.exc.DBAPIError as exc:
            if connection.in_transaction():
                connection.rollback()
            if not self.dialect.is_write_conflict(exc):
                raise
            return "another run claimed it at the same moment"
        if row.owner is None:
            return "it was being released"
        return f"held by {row.host} (pid {row.pid}) for {max(row.left_ms, 0) / 1000:.1f} s more unless renewed"

    def _ensure_table(self) -> None:
        """Create the lease table (and its schema) when missing; concurrent runs creating them too are fine."""
        connection = self._live()
        for attempt in range(3):
            try:  # the look-up too: on Galera another node's CREATE TABLE aborts it with a conflict (1213)
                if self._has_table(connection):
                    return
                self.dialect.ensure_schema(connection, self.table.schema)
                self.table.create(connection, checkfirst=True)
                connection.commit()
            except sa.exc.DBAPIError:
                if connection.in_transaction():
                    connection.rollback()
                if attempt == 2 and not self._has_table(connection):
                    raise

    def _has_table(self, connection: sa.Connection) -> bool:
        found = sa.inspect(connection).has_table(self.table.name, schema=self.table.schema)
        if connection.in_transaction():
            connection.commit()
        return found

    # -- holding -------------------------------------------------------------------

    def _beat(self) -> None:
        """Renew the lease every quarter lease until stopped; record a loss in `lost`."""
        interval = self.lease_ms / 4000
        renewed = time.monotonic()
        while not self._stop.wait(interval):
            try:
                if not self._renew():
                    self.lost = "its lease lapsed and another run took it"
                    return
                renewed = time.monotonic()
            except sa.exc.DBAPIError as exc:
                self._close()
                if time.monotonic() - renewed > self.lease_ms / 1000:
                    self.lost = f"no heartbeat for {self.lease_ms / 1000:g} s: {' '.join(str(exc.orig).split())[:120]}"
                    return

    def _renew(self) -> bool:
        connection = self._live()
        try:
            with connection.begin():
                return bool(connection.execute(self._sql.renew, self._params()).rowcount == 1)
        except sa.exc.DBAPIError as exc:
            if self.dialect.is_write_conflict(exc):
                return True  # a retried write of our own row: the next beat renews it
            raise

    # -- releasing -----------------------------------------------------------------

    def release(self) -> None:
        """Stop the heartbeat and free the row; a database that cannot be reached lets the lease lapse."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            connection = self._live()
            with connection.begin():
                connection.execute(self._sql.release, self._params())
        except sa.exc.DBAPIError:
            pass  # the lease lapses on its own
        finally:
            self._close()

    # -- connection ----------------------------------------------------------------

    def _connect(self) -> sa.Connection:
        connection = self.engine.connect()
        try:
            self.dialect.session_setup(connection, self.env)
        except BaseException:
            connection.close()
            raise
        return connection

    def _live(self) -> sa.Connection:
        """The lock's own connection, opened again after a failure."""
        if self._connection is None or self._connection.closed or self._connection.invalidated:
            self._close()
            self._connection = self._connect()
        elif self._connection.in_transaction():
            self._connection.rollback()
        return self._connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(sa.exc.DBAPIError):
                connection.close()

    def _params(self) -> dict[str, object]:
        return {"name": self.name, "owner": self.owner, "lease_ms": self.lease_ms, "host": _HOST[:255],
                "pid": os.getpid()}


class _Statements:
    """The lease lock's SQL for one dialect and table (the clock is the database's)."""

    def __init__(self, dialect: Dialect, table: sa.Table) -> None:
        name = dialect.table_name(table.name, table.schema)
        clock = dialect.clock_ms_sql
        self.claim = sa.text(
            f"UPDATE {name} SET owner = :owner, expires_ms = {clock} + :lease_ms, claimed_ms = {clock}, "
            f"host = :host, pid = :pid WHERE name = :name AND (owner IS NULL OR expires_ms < {clock})")
        self.insert = sa.text(
            f"INSERT INTO {name} (name, owner, expires_ms, claimed_ms, host, pid) "
            f"VALUES (:name, :owner, {clock} + :lease_ms, {clock}, :host, :pid)")
        mine = "WHERE name = :name AND owner = :owner"
        self.holder = sa.text(f"SELECT owner, host, pid, expires_ms - {clock} AS left_ms FROM {name} "
                              "WHERE name = :name")
        self.renew = sa.text(f"UPDATE {name} SET expires_ms = {clock} + :lease_ms {mine}")
        self.release = sa.text(f"UPDATE {name} SET owner = NULL, expires_ms = 0 {mine}")


_HOST = socket.gethostname()
