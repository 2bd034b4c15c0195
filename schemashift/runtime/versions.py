"""The version table (what is applied, with checksums) and the history table (every run).

Version table, one row per applied revision: ``revision``, ``parent``,
``checksum``, ``message``, ``applied_at``, ``duration_ms`` and a journal for
databases whose DDL cannot be rolled back: ``state`` is ``applied``, ``running``
(a process died mid-way) or ``failed``; ``statements_done`` counts the
statements that completed, ``running_statement`` is set before each statement
runs and cleared after, ``failed_statement`` and ``error`` say what broke.
``fingerprint`` (nullable, added to older tables by `Recorder.ensure`) holds the
catalog fingerprint (`schemashift.runtime.fingerprint`) of a live schema that was
checked to match the migrations at that revision, for the fast `status`.

History table (``<version table>_history``): one row per apply or revert, with
the outcome, user and host.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from schemashift.errors import DatabaseStateError, mask_secrets
from schemashift.history.records import APPLIED as APPLIED
from schemashift.history.records import BUILDING as BUILDING
from schemashift.history.records import FAILED as FAILED
from schemashift.history.records import RUNNING as RUNNING
from schemashift.history.records import AppliedRevision as AppliedRevision
from schemashift.history.records import now as now
from schemashift.runtime.locks import lock_table_name


def version_tables(name: str, schema: str | None = None) -> tuple[sa.Table, sa.Table]:
    """The version and history tables, as SQLAlchemy tables."""
    metadata = sa.MetaData(schema=schema)
    version = sa.Table(
        name,
        metadata,
        sa.Column("revision", sa.String(64), primary_key=True),
        sa.Column("parent", sa.String(64)),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("message", sa.String(255), nullable=False, default=""),
        sa.Column("applied_at", sa.DateTime),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False, default="up"),
        sa.Column("statements_done", sa.Integer, nullable=False, default=0),
        sa.Column("running_statement", sa.Text),
        sa.Column("failed_statement", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("fingerprint", sa.String(255)),
    )
    history = sa.Table(
        f"{name}_history",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("checksum", sa.String(64)),
        sa.Column("message", sa.String(255)),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("user_name", sa.String(128)),
        sa.Column("host", sa.String(255)),
        sa.Column("error", sa.Text),
    )
    return version, history


class Recorder:
    """Reads and writes the version and history tables on one connection."""

    def __init__(self, connection: sa.Connection, name: str = "schemashift_version", schema: str | None = None) -> None:
        self.connection = connection
        self.name = name
        self.schema = schema
        self.version, self.history = version_tables(name, schema)
        self._fingerprint_column = False  # `ensure` saw to it on this connection

    @property
    def own_tables(self) -> set[str]:
        """The names of the version and history tables (left out of reflection and fingerprints)."""
        return {self.version.name, self.history.name, lock_table_name(self.name)}

    def exists(self) -> bool:
        """True when the version table exists."""
        return sa.inspect(self.connection).has_table(self.name, schema=self.schema)

    def ensure(self) -> None:
        """Create the tables if they are missing (committed at once); refuse a foreign table of that name.

        A version table made before the `fingerprint` column existed gets it added.
        """
        if self.exists() and sa.inspect(self.connection).has_table(self.history.name, schema=self.schema):
            self._add_fingerprint_column()
            return
        if self.exists():
            self.applied()
            self._add_fingerprint_column()
        self.version.metadata.create_all(self.connection, checkfirst=True)
        self.connection.commit()
        self._fingerprint_column = True

    def _add_fingerprint_column(self) -> None:
        columns = {c["name"] for c in sa.inspect(self.connection).get_columns(self.name, schema=self.schema)}
        if self.connection.in_transaction():
            self.connection.commit()
        if "fingerprint" not in columns:
            dialect = self.connection.dialect
            column = sa.schema.CreateColumn(self.version.c.fingerprint).compile(dialect=dialect)
            self.connection.exec_driver_sql(
                f"ALTER TABLE {dialect.identifier_preparer.format_table(self.version)} ADD COLUMN {column}")
            self.connection.commit()
        self._fingerprint_column = True

    def has_fingerprint_column(self) -> bool:
        """True when the version table exists and has the `fingerprint` column (known without asking the
        database once `ensure` ran)."""
        if self._fingerprint_column:
            return True
        if not self.exists():
            return False
        columns = {c["name"] for c in sa.inspect(self.connection).get_columns(self.name, schema=self.schema)}
        if self.connection.in_transaction() and not self.connection.in_nested_transaction():
            self.connection.commit()
        return "fingerprint" in columns

    def applied(self) -> dict[str, AppliedRow]:
        """Every row of the version table by revision (empty when the table is missing)."""
        if not self.exists():
            return {}
        try:
            rows = self._select_rows()
        except sa.exc.DBAPIError as exc:
            if self.connection.in_transaction():
                self.connection.rollback()
            reason = " ".join(str(exc.orig).split())[:200]
            raise DatabaseStateError(
                f"the table {self.name!r} is not a schemashift version table or is damaged ({reason}); "
                "if another tool owns it, set `version_table` to another name for this environment"
            ) from None
        if self.connection.in_transaction() and not self.connection.in_nested_transaction():
            self.connection.commit()
        return self._by_revision(rows)

    def read_in_transaction(self) -> dict[str, AppliedRow]:
        """Every row of the version table, known to exist, read inside the caller's transaction (one statement,
        nothing committed or checked first); a database error is the caller's to handle."""
        return self._by_revision(self._select_rows())

    def _select_rows(self) -> Sequence[sa.RowMapping]:
        columns = [column for column in self.version.c if column.name != "fingerprint"]  # older tables lack it
        return self.connection.execute(sa.select(*columns)).mappings().all()

    def _by_revision(self, rows: Sequence[sa.RowMapping]) -> dict[str, AppliedRow]:
        try:
            return {row["revision"]: _row(row) for row in rows}
        except (KeyError, TypeError, ValueError) as exc:
            raise DatabaseStateError(f"the version table {self.name!r} holds an unreadable row ({exc})") from None

    def create_in_transaction(self, *, version: bool, history: bool) -> None:
        """Create the version and/or history table inside the caller's transaction (known to be missing)."""
        for table, wanted in ((self.version, version), (self.history, history)):
            if wanted:
                table.create(self.connection, checkfirst=False)

    # -- writes inside the caller's transaction ---------------------------

    def insert(self, revision: str, parent: str | None, checksum: str, message: str, state: str, direction: str = "up",
               **values: object) -> None:
        """Add a version row (`values`: more columns, e.g. ``duration_ms``, ``statements_done``)."""
        row = _version_row(revision, parent, checksum, message, state, direction)
        row.update(values)
        self.connection.execute(self.version.insert(), row)  # one cached compiled INSERT for every row

    def insert_and_log(self, revision: str, parent: str | None, checksum: str, message: str, started: datetime,
                       duration_ms: int, statements_done: int, *, together: bool = False) -> None:
        """An applied version row and its "ok" history row (`insert` then `log`).

        With `together` (databases that run INSERTs inside a WITH, see
        `Dialect.dml_in_cte`) both go in one statement: one round trip less per migration.
        """
        row = _version_row(revision, parent, checksum, message, APPLIED, "up")
        row.update(duration_ms=duration_ms, statements_done=statements_done)
        logged = _history_row(revision, "up", checksum, message, started, duration_ms, "ok", None)
        if not together:
            self.connection.execute(self.version.insert(), row)
            self.connection.execute(self.history.insert(), logged)
            return
        params = {f"v_{key}": value for key, value in row.items()}
        params.update({f"h_{key}": value for key, value in logged.items()})
        self.connection.execute(self._insert_and_log_statement(sorted(row), sorted(logged)), params)

    def record_applied(self, runs: Sequence[AppliedRun], *, together: bool = False, note: str | None = None,
                       bulk: BulkLoad | None = None) -> None:
        """The applied version rows and "ok" history rows of several migrations, inside the caller's transaction:
        one executemany per table (one of ``WITH … INSERT`` statements, `together`: see `insert_and_log`), or
        a bulk load of each table where `bulk` does one (`Dialect.copy_rows`); `note` goes in the history rows'
        ``error`` column, as `baseline` does (a fresh build, `schemashift.runtime.fresh`)."""
        if not runs:
            return
        versions, logged = [], []
        for run in runs:
            row = _version_row(run.revision, run.parent, run.checksum, run.message, APPLIED, "up")
            row.update(duration_ms=run.duration_ms, statements_done=run.statements_done)
            versions.append(row)
            logged.append(_history_row(run.revision, "up", run.checksum, run.message, run.started, run.duration_ms,
                                       "ok", note))
        if bulk is not None and bulk(self.connection, self.version, versions):
            if not bulk(self.connection, self.history, logged):
                self.connection.execute(self.history.insert(), logged)
            return
        if not together:
            self.connection.execute(self.version.insert(), versions)
            self.connection.execute(self.history.insert(), logged)
            return
        keys = sorted(versions[0]), sorted(logged[0])
        params = [{**{f"v_{key}": value for key, value in row.items()},
                   **{f"h_{key}": value for key, value in log.items()}}
                  for row, log in zip(versions, logged, strict=True)]
        self.connection.execute(self._insert_and_log_statement(*keys), params)  # executemany: drivers pipeline it

    def _insert_and_log_statement(self, version_keys: list[str], history_keys: list[str]) -> sa.Insert:
        """``WITH v AS (INSERT INTO <version> …) INSERT INTO <history> …`` with ``v_``/``h_`` parameters
        (built once)."""
        cached = getattr(self, "_together", None)
        if cached is not None and cached[0] == (version_keys, history_keys):
            return cached[1]  # type: ignore[no-any-return]

        def values(table: sa.Table, prefix: str, keys: list[str]) -> dict[str, sa.BindParameter[object]]:
            return {key: sa.bindparam(f"{prefix}{key}", type_=table.c[key].type) for key in keys}

        recorded = self.version.insert().values(values(self.version, "v_", version_keys)).cte("recorded")
        statement = self.history.insert().values(values(self.history, "h_", history_keys)).add_cte(recorded)
        self._together = ((version_keys, history_keys), statement)
        return statement

    def update(self, revision: str, **values: object) -> None:
        """Change fields of a version row."""
        params = {f"set_{key}": value for key, value in values.items()}
        params["where_revision"] = revision
        self.connection.execute(self._update_statement(tuple(values)), params)

    def _update_statement(self, keys: tuple[str, ...]) -> sa.Update:
        """``UPDATE <version> SET <keys> WHERE revision = …`` with ``set_``/``where_`` parameters, built once
        per keys."""
        cache: dict[tuple[str, ...], sa.Update] = self.__dict__.setdefault("_updates", {})
        statement = cache.get(keys)
        if statement is None:
            table = self.version
            where = sa.bindparam("where_revision", type_=table.c.revision.type)
            statement = table.update().where(table.c.revision == where)
            statement = statement.values({key: sa.bindparam(f"set_{key}", type_=table.c[key].type) for key in keys})
            cache[keys] = statement
        return statement

    def delete(self, revision: str) -> None:
        """Remove a version row (the revision was reverted)."""
        self.connection.execute(self.version.delete().where(self.version.c.revision == revision))

    def log(self, revision: str, direction: str, checksum: str | None, message: str, started: datetime,
            duration_ms: int, outcome: str, error: str | None = None) -> None:
        """Append one row to the history table."""
        row = _history_row(revision, direction, checksum, message, started, duration_ms, outcome, error)
        self.connection.execute(self.history.insert(), row)

    def history_rows(self) -> list[dict[str, object]]:
        """The history table, oldest first (empty when missing)."""
        if not sa.inspect(self.connection).has_table(self.history.name, schema=self.schema):
            return []
        query = sa.select(self.history).order_by(self.history.c.id)
        return [dict(row) for row in self.connection.execute(query).mappings()]


AppliedRow = AppliedRevision
#: Loads rows into a table in bulk inside the open transaction, or returns False (`Dialect.copy_rows`).
BulkLoad = Callable[[sa.Connection, sa.Table, list[dict[str, Any]]], bool]



@dataclass(frozen=True)
class AppliedRun:
    """One migration just applied, for `Recorder.record_applied`."""

    revision: str
    parent: str | None
    checksum: str
    message: str
    started: datetime
    duration_ms: int
    statements_done: int


def _version_row(revision: str, parent: str | None, checksum: str, message: str, state: str,
                 direction: str) -> dict[str, object]:
    return {"revision": revision, "parent": parent, "checksum": checksum, "message": message[:255],
            "applied_at": now(), "state": state, "direction": direction, "statements_done": 0}


def _history_row(revision: str, direction: str, checksum: str | None, message: str, started: datetime,
                 duration_ms: int, outcome: str, error: str | None) -> dict[str, object]:
    return {"revision": revision, "direction": direction, "checksum": checksum, "message": message[:255],
            "started_at": started, "duration_ms": duration_ms, "outcome": outcome, "user_name": _user(),
            "host": _host(), "error": mask_secrets(error)[:4000] if error else None}


def _row(row: sa.RowMapping) -> AppliedRevision:
    return AppliedRevision(
        revision=row["revision"],
        parent=row["parent"],
        checksum=row["checksum"],
        message=row["message"],
        applied_at=row["applied_at"],
        duration_ms=row["duration_ms"],
        state=row["state"],
        direction=row["direction"],
        statements_done=row["statements_done"] or 0,
        running_statement=row["running_statement"],
        failed_statement=row["failed_statement"],
        error=row["error"],
    )


@lru_cache(maxsize=1)
def _user() -> str:
    try:
        return getpass.getuser()[:128]
    except Exception:  # noqa: BLE001 - deliberately broad: no user name in some containers
        return "unknown"


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname()[:255]
