"""Running a fresh build (`schemashift.planning.fresh`) and recording every revision it stands for.

Where DDL is transactional the statements run in one transaction with the
version and history rows of every revision (two batched INSERTs), so the build
happens entirely or not at all. A very long build is cut into transactions of
about `CHUNK` statements at operation boundaries (PostgreSQL holds a lock per
created object until the commit and has a fixed number of lock slots); the rows
go with the last one. Elsewhere each statement commits itself and the rows are
written once all ran.

A build that fails after some of its statements committed is taken back: the
objects created so far are dropped (the differ's operations from what was built
back to nothing), so the database is empty again, as it was; the error says
whether that worked. A history row per revision with the outcome ``fresh``
(instead of ``ok``) shows how the database was built.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import sqlalchemy as sa

from schemashift.autodetect.differ import diff
from schemashift.errors import ExecutionError, mask_secrets
from schemashift.model.schema import Schema
from schemashift.operations import Operation, replay
from schemashift.planning.fresh import FreshBuild
from schemashift.planning.plan import Statement, compile_operations
from schemashift.runtime.executor import transaction
from schemashift.runtime.versions import Recorder, now
from schemashift.support.progress import Reporter

#: Outcome of the history rows a fresh build writes.
FRESH = "fresh"
#: Statements per transaction, at most (cut at operation boundaries; see the module docstring).
CHUNK = 600


@dataclass
class _Chunk:
    operations: list[Operation]
    statements: list[Statement]


def chunks(build: FreshBuild, size: int = CHUNK) -> list[_Chunk]:
    """The build's statements in groups of about `size`, never splitting one operation's statements."""
    groups: list[_Chunk] = []
    current = _Chunk([], [])
    position = 0
    for operation in build.operations:
        mine: list[Statement] = []
        while position < len(build.statements) and build.statements[position].operation is operation:
            mine.append(build.statements[position])
            position += 1
        if current.statements and len(current.statements) + len(mine) > size:
            groups.append(current)
            current = _Chunk([], [])
        current.operations.append(operation)
        current.statements.extend(mine)
    if current.operations:
        groups.append(current)
    return groups


def run_fresh(connection: sa.Connection, recorder: Recorder, build: FreshBuild, reporter: Reporter) -> None:
    """Run `build` on the empty database of `connection` and record its revisions as applied."""
    started, clock = now(), time.perf_counter()
    label = f"fresh build of {len(build.migrations)} migrations (base -> {build.target})"
    reporter.migration_started(label, 1, 1, len(build.statements))
    done: list[Operation] = []  # operations whose statements committed
    try:
        if build.dialect.transactional_ddl:
            _run_in_transactions(connection, recorder, build, done, started, clock)
        else:
            _run_autocommitted(connection, recorder, build, done, started, clock)
    finally:
        reporter.finished()
    reporter.migration_finished("built", label, (time.perf_counter() - clock) * 1000)


def _run_in_transactions(connection: sa.Connection, recorder: Recorder, build: FreshBuild, done: list[Operation],
                         started: object, clock: float) -> None:
    groups = chunks(build)
    for number, group in enumerate(groups):
        statement: Statement | None = None
        try:
            with transaction(connection, build.dialect.autocommits_ddl):
                for statement in group.statements:
                    _execute(connection, statement)
                statement = None
                if number == len(groups) - 1:
                    _record(recorder, build, started, clock)
        except sa.exc.DBAPIError as exc:
            raise _failed(connection, build, done, statement, exc) from None
        done.extend(group.operations)


def _run_autocommitted(connection: sa.Connection, recorder: Recorder, build: FreshBuild, done: list[Operation],
                       started: object, clock: float) -> None:
    if connection.in_transaction():
        connection.commit()
    statement: Statement | None = None
    position = 0
    try:
        for operation in build.operations:
            while position < len(build.statements) and build.statements[position].operation is operation:
                statement = build.statements[position]
                _execute(connection, statement)
                connection.commit()
                position += 1
            done.append(operation)
        statement = None
        with connection.begin():
            _record(recorder, build, started, clock)
    except sa.exc.DBAPIError as exc:
        if connection.in_transaction():
            connection.rollback()
        if statement is not None:
            done.append(_failing_operation(build, statement))  # it may have run in part: take it back too
        raise _failed(connection, build, done, statement, exc) from None


def _failing_operation(build: FreshBuild, statement: Statement) -> Operation:
    return statement.operation


def _execute(connection: sa.Connection, statement: Statement) -> None:
    if statement.sql is not None:
        connection.exec_driver_sql(statement.sql)


def _record(recorder: Recorder, build: FreshBuild, started: object, clock: float) -> None:
    duration = math.ceil((time.perf_counter() - clock) * 1000)
    rows = [(m.revision, m.parent, m.checksum, m.message) for m in build.migrations]
    recorder.record_applied(rows, started, duration, FRESH)  # type: ignore[arg-type]


def _failed(connection: sa.Connection, build: FreshBuild, done: list[Operation], statement: Statement | None,
            exc: BaseException) -> ExecutionError:
    """The error of a failed build, after taking back what it committed (see the module docstring)."""
    if connection.in_transaction():
        connection.rollback()
    error = mask_secrets(" ".join(str(getattr(exc, "orig", None) or exc).split()))[:500]
    where = f" at: {_first_line(statement.describe())}" if statement is not None else ""
    left = undo(connection, build, done)
    state = ("the database is empty again (at base)" if not left else
             f"{len(left)} table(s) it created are still there ({', '.join(left[:4])}): drop them by hand")
    return ExecutionError(f"the fresh build to {build.target} failed{where}: {error}; {state}; "
                          "`schemashift upgrade --step-by-step` runs the migrations one by one")


def undo(connection: sa.Connection, build: FreshBuild, done: list[Operation]) -> list[str]:
    """Drop what the operations `done` created (best effort); the keys of the build's tables still there."""
    if done:
        try:
            built = replay(done, Schema())
        except Exception:  # noqa: BLE001 - a partly run operation may not replay: drop what the whole build makes
            built = build.after
        statements, _ = compile_operations(build.dialect, diff(built, Schema()), built)
        for statement in statements:
            if statement.sql is None:
                continue
            try:
                connection.exec_driver_sql(statement.sql)
                connection.commit()
            except sa.exc.DBAPIError:  # not created (the failing operation ran in part): checked below
                if connection.in_transaction():
                    connection.rollback()
    return _tables_left(connection, build.after)


def _tables_left(connection: sa.Connection, schema: Schema) -> list[str]:
    """The keys of `schema`'s tables the database holds (as tables: a view of the same name does not count)."""
    inspector = sa.inspect(connection)
    left: list[str] = []
    for name in sorted({table.schema for table in schema.tables.values()}, key=lambda name: name or ""):
        try:
            live = set(inspector.get_table_names(schema=name))
        except sa.exc.DBAPIError:  # the schema is gone too
            if connection.in_transaction():
                connection.rollback()
            continue
        left += [key for key, table in schema.tables.items() if table.schema == name and table.name in live]
    if connection.in_transaction():
        connection.commit()
    return sorted(left)


def _first_line(sql: str) -> str:
    text = " ".join(line.strip() for line in sql.strip().splitlines() if line.strip())
    return text if len(text) <= 120 else text[:117] + "..."


__all__ = ["CHUNK", "FRESH", "chunks", "run_fresh", "undo"]
