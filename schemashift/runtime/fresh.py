"""Running a fresh build (`schemashift.planning.fresh`) and recording every revision it stands for.

Where DDL is transactional the statements run in one transaction with the
version and history rows of every revision (two batched INSERTs), so the build
happens entirely or not at all. A very long build is cut into transactions of
about `CHUNK` statements at operation boundaries (PostgreSQL holds a lock per
created object until the commit and has a fixed number of lock slots); the rows
go with the last one, and the cut build runs behind the same marker row as a
side-by-side one (below). Elsewhere each statement commits itself, behind that
marker too, and the rows replace it once all ran.

Side by side (`Dialect.builds_side_by_side`, from `SIDE_BY_SIDE_FROM` statements):
CREATE TABLE is mostly the server's own work, so up to `WORKERS` connections
create the tables of each wave (`waves`) at once, each committing its share. A
`_Feed` on a thread of its own hands each wave its chunks, which the lanes take
as they come: a build still to compile (`FreshBuild.pending`, a cold run) is
compiled there, in order, while the lanes create the tables compiled so far,
and a wave starts once every chunk of the waves before it committed (a chunk
that lost a deadlock to another lane's runs again). A
marker row (state ``building``, the target's revision) is committed first and
replaced by every revision's rows in one last transaction: a crash in between
leaves the marker, which `status` reports and the next `upgrade` acts on
(`take_back`: the tables the build created are dropped, when none holds a row,
and the build runs again). Commits before the last one do not wait for the
disk; the last one is durable and so makes every earlier one durable.

A build that fails after some of its statements committed is taken back: the
objects created so far are dropped (the differ's operations from what was built
back to nothing), so the database is empty again, as it was; the error says
whether that worked. Each revision gets its ``ok`` history row like a step-by-step
run, with the note ``fresh build from the schema at <target>`` where a failure
would have its error: the history shows how the database was built.
"""

from __future__ import annotations

import math
import os
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift.autodetect.differ import diff
from schemashift.errors import DatabaseStateError, ExecutionError, mask_secrets
from schemashift.model.schema import Schema, Table
from schemashift.operations import (
    AddConstraint,
    CreateIndex,
    CreateObject,
    CreateSequence,
    CreateTable,
    Operation,
    replay,
)
from schemashift.planning.fresh import FreshBuild
from schemashift.planning.plan import Statement, compile_operations, group_by_operation
from schemashift.runtime.executor import outside_transaction, transaction
from schemashift.runtime.versions import BUILDING, AppliedRun, Recorder, now
from schemashift.support.progress import Reporter

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect

#: The note (history table ``error`` column, as `baseline` notes there) on the rows a fresh build writes.
FRESH = "fresh build"
#: Statements per transaction, at most (cut at operation boundaries; see the module docstring).
CHUNK = 600
#: Statements sent in one call where the driver takes several (`Dialect.joins_statements_on`): fewer round trips.
JOINED = 100
#: Connections creating tables side by side where DDL commits itself: there a CREATE TABLE costs mostly the
#: server's own writes, which overlap (MariaDB: ~5x faster with 4-8 connections on 2 cores).
WORKERS = 4
#: A build of at least this many statements runs side by side where the dialect says so (see the module docstring).
SIDE_BY_SIDE_FROM = 200
#: Statements per transaction of one connection of a side-by-side build: many small transactions on several
#: connections overlap best (PostgreSQL, 750 tables on 4 connections: 50 about twice as fast as 150).
LANE_CHUNK = 50
#: Times a chunk of a side-by-side build runs again after losing a deadlock to another lane's (`_run_contended`).
RETRIES = 5
#: Crash-test hook: a side-by-side build SIGKILLs its process once this many of its table transactions committed.
FAULT_ENV = "SCHEMASHIFT_FAULT_KILL_FRESH"

Connect = Callable[[], AbstractContextManager[sa.Connection]]


@dataclass
class _Chunk:
    operations: list[Operation]
    statements: list[Statement]


def _per_operation(build: FreshBuild) -> list[_Chunk]:
    """Each operation of the build with its statements."""
    groups = group_by_operation(build.operations, build.statements)
    return [_Chunk([operation], mine) for operation, mine in zip(build.operations, groups, strict=True)]


def chunks(build: FreshBuild, size: int = CHUNK) -> list[_Chunk]:
    """The build's statements in groups of about `size`, never splitting one operation's statements."""
    groups: list[_Chunk] = []
    current = _Chunk([], [])
    for one in _per_operation(build):
        if current.statements and len(current.statements) + len(one.statements) > size:
            groups.append(current)
            current = _Chunk([], [])
        current.operations += one.operations
        current.statements += one.statements
    if current.operations:
        groups.append(current)
    return groups


def waves(build: FreshBuild) -> list[list[_Chunk]]:
    """The build's operations in waves whose members may run side by side, each wave after the one before
    (`wave_numbers`)."""
    result: list[list[_Chunk]] = []
    for number, one in zip(wave_numbers(build.operations), _per_operation(build), strict=True):
        while len(result) <= number:
            result.append([])
        result[number].append(one)
    return result


def wave_numbers(operations: list[Operation]) -> list[int]:
    """The wave of each of `operations`: numbered from 0, each wave to run after the one before.

    A created table joins the first wave after those of the tables its foreign
    keys point at, and of the first table in its schema or with one of its named
    enum types (which creates them: `Dialect.compile_create_table`), and after
    the last other operation; every other operation (a sequence, a foreign key
    closing a cycle, a view) is a wave of its own, in order.
    """
    numbers: list[int] = []
    wave_of: dict[str, int] = {}
    creator: dict[tuple[str, str], int] = {}  # the wave of the first table in a schema or with an enum type
    count = barrier = 0  # waves so far; the first wave a table may join
    for operation in operations:
        if not isinstance(operation, CreateTable):
            numbers.append(count)
            count = barrier = count + 1
            continue
        shared = _created_with(operation.table)
        after = [wave_of[fk.ref_key] for fk in operation.table.foreign_keys if fk.ref_key in wave_of]
        after += [creator[name] for name in shared if name in creator]
        number = max([barrier, *(wave + 1 for wave in after)])
        numbers.append(number)
        wave_of[operation.table.key] = number
        for name in shared:
            creator.setdefault(name, number)
        count = max(count, number + 1)
    return numbers


def _created_with(table: Table) -> set[tuple[str, str]]:
    """What the first table to need it creates along with itself: its schema and its columns' named enum types."""
    found = {("schema", table.schema)} if table.schema is not None else set()
    for column in table.columns:
        for typ in (column.type, *(form for _, form in column.type.dialects)):
            kind = typ.item if typ.kind == "array" and typ.item else typ
            if kind.kind == "enum" and kind.name:
                found.add(("enum", kind.name))
    return found


def run_fresh(connection: sa.Connection, recorder: Recorder, build: FreshBuild, reporter: Reporter,
              connect: Connect | None = None, beside: Beside | None = None) -> None:
    """Run `build` on the empty database of `connection` and record its revisions as applied.

    Where DDL commits itself, or the build runs `side_by_side`, `connect` (more connections set up
    like `connection`) lets up to `WORKERS` connections create tables side by side (see `waves`).
    A side-by-side build calls `beside` with the other connections once every table is built,
    on a thread of its own while this one records the rows (reading the catalogue meanwhile);
    it is not called when the build fails, nor by the other ways of building.

    A build still to compile (`FreshBuild.pending`) is compiled as it runs side by side, else first.
    `FreshRefused` when one of its statements cannot run in a transaction: what it created was taken back
    and its marker removed, the database is as it was.
    """
    started, clock = now(), time.perf_counter()
    label = f"{len(build.migrations)} migrations as one fresh build (base -> {build.target})"
    pipelined = connect is not None and side_by_side(connection, build)
    if build.pending is not None and not pipelined:
        build.compile()  # `FreshRefused` before anything ran
    reporter.migration_started(label, 1, 1, _size(build))
    done: list[Operation] = []  # operations whose statements committed
    try:
        if not build.dialect.transactional_ddl:
            _run_autocommitted(connection, recorder, build, done, started, clock, connect)
        elif connect is not None and pipelined:
            _run_side_by_side(connection, recorder, build, done, started, clock, connect, beside)
        else:
            _run_in_transactions(connection, recorder, build, done, started, clock)
    finally:
        reporter.finished()
    reporter.migration_finished("applied", label, (time.perf_counter() - clock) * 1000)


def _run_in_transactions(connection: sa.Connection, recorder: Recorder, build: FreshBuild, done: list[Operation],
                         started: datetime, clock: float) -> None:
    groups = chunks(build)
    marked = len(groups) > 1  # commits in parts: behind a marker row, which the last transaction removes
    if marked:
        _mark(connection, recorder, build)
    for number, group in enumerate(groups):
        last = number == len(groups) - 1
        try:
            _run_group(connection, build, group, recorder if last else None, started, clock, unmark=marked)
        except _GroupFailed as failure:
            error = _failed(connection, build, done, failure.statement, failure.error)
            if marked:
                _unmark_if_empty(connection, recorder, build)
            raise error from None
        done.extend(group.operations)


def side_by_side(connection: sa.Connection, build: FreshBuild) -> bool:
    """True when `build` runs on several connections behind a marker row (see the module docstring)."""
    return (build.dialect.transactional_ddl and build.dialect.builds_side_by_side
            and not connection.dialect.is_async and _size(build) >= SIDE_BY_SIDE_FROM)


def _size(build: FreshBuild) -> int:
    """The statements of `build`; while they are still to compile, its operations (each makes one at least)."""
    return len(build.operations) if build.pending is not None else len(build.statements)


def _run_side_by_side(connection: sa.Connection, recorder: Recorder, build: FreshBuild, done: list[Operation],
                      started: datetime, clock: float, connect: Connect, beside: Beside | None = None) -> None:
    """The marker committed, the waves on up to `WORKERS` connections, then the rows with the marker's removal
    (and `beside` on a helper connection meanwhile)."""
    if connection.in_transaction():
        connection.commit()
    dialect = build.dialect
    token = dialect.defer_durability(connection)
    try:
        _mark(connection, recorder, build)
        fault = _Fault.from_env()
        with ExitStack() as stack:
            helpers = _open_helpers(stack, connect, WORKERS - 1)
            lanes = [connection, *(helper for helper in helpers if helper is not connection)]
            for helper in lanes[1:]:  # put back before it closes: a caller's pool may hand it out again
                stack.callback(_restore, dialect, helper, dialect.defer_durability(helper))
            try:
                _run_fed_waves(lanes, build, done, fault)
            except ExecutionError:
                _unmark_if_empty(connection, recorder, build)
                raise
            except _Stopped as stopped:  # by its compile: taken back
                _unmark_if_empty(connection, recorder, build)
                raise stopped.error from None
            if token is not None:
                dialect.restore_durability(connection, token)
                token = None
            reading = _start_beside(lanes[1:], beside)
            try:
                with connection.begin():  # durable: and with it every commit before
                    recorder.delete(build.target)
                    _record(recorder, build, started, clock)
            finally:
                if reading is not None:
                    reading.join()
    finally:
        if token is not None:
            dialect.restore_durability(connection, token)


#: Work on the helper connections once a side-by-side build's tables are all there (see `run_fresh`).
Beside = Callable[[list[sa.Connection]], None]


def _open_helpers(stack: ExitStack, connect: Connect, count: int) -> list[sa.Connection]:
    """Up to `count` connections from `connect`, opened at once on threads (each costs round trips), closed by
    `stack`.

    A connection the server refuses (max_connections or a role's limit reached, a pooler's
    queue full …) is one lane fewer, not a failed build: the main connection can build
    alone. Anything but an `Exception` is raised once every attempt ended."""
    opened: list[tuple[AbstractContextManager[sa.Connection], sa.Connection]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def open_one() -> None:
        try:
            manager = connect()
            helper = manager.__enter__()
        except Exception:  # noqa: BLE001 - one lane fewer (see above)
            return
        except BaseException as exc:  # noqa: BLE001 - raised below, on the calling thread
            errors.append(exc)
            return
        with lock:
            opened.append((manager, helper))

    if count < 2:
        for _ in range(count):
            open_one()
    else:
        threads = [threading.Thread(target=open_one, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for manager, _ in opened:
        stack.push(manager.__exit__)
    if errors:
        raise errors[0]
    return [helper for _, helper in opened]


def _start_beside(helpers: list[sa.Connection], beside: Beside | None) -> threading.Thread | None:
    """`beside` running on a thread with the helper connections (None when there is none); best effort:
    an error there is `beside`'s to note, the build stands."""
    if beside is None or not helpers:
        return None

    def run() -> None:
        try:
            beside(helpers)
        except Exception:  # noqa: BLE001 - optional work: it never fails the build
            pass
        finally:
            for helper in helpers:
                if helper.in_transaction():
                    helper.rollback()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _restore(dialect: Dialect, connection: sa.Connection, token: object | None) -> None:
    """`Dialect.restore_durability` where `defer_durability` changed something (`token`), on a usable connection."""
    if token is not None and not connection.closed and not connection.invalidated:
        if connection.in_transaction():
            connection.rollback()
        dialect.restore_durability(connection, token)


def _mark(connection: sa.Connection, recorder: Recorder, build: FreshBuild) -> None:
    """Commit the marker row of `build` (state ``building``) in a transaction of its own, after what is pending."""
    if connection.in_transaction():
        connection.commit()
    last = build.migrations[-1]
    with connection.begin():
        recorder.insert(last.revision, last.parent, last.checksum, last.message, BUILDING,
                        error=f"{FRESH} to {last.revision} in progress")


def _unmark_if_empty(connection: sa.Connection, recorder: Recorder, build: FreshBuild) -> None:
    """Remove the marker of a build that failed when taking it back left none of its tables."""
    if not _tables_left(connection, build.after):
        with connection.begin():
            recorder.delete(build.target)


class _Stopped(Exception):
    """The compile of a pipelined build stopped it (`error`: `FreshRefused` or the compile's own); nothing of it
    is left."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _run_fed_waves(lanes: list[sa.Connection], build: FreshBuild, done: list[Operation], fault: _Fault) -> None:
    """Run the waves of `build` on `lanes` as a `_Feed` hands them out; on a failure take the build back
    (`ExecutionError`, or `_Stopped` when its compile failed and nothing is left)."""
    feed = _Feed(build, LANE_CHUNK, len(lanes))
    try:
        for number in range(feed.count):
            _run_wave_in_transactions(lanes, build, feed, number, done, fault)
            if feed.error is not None:
                break
    finally:
        feed.stop()
    if feed.error is None and len(done) < len(build.operations):  # a lane ended without a word: never recorded
        raise _failed(lanes[0], build, done, None, RuntimeError(
            f"{len(build.operations) - len(done)} of its operations did not run"))
    if feed.error is not None:
        left = undo(lanes[0], build, done)
        if left:
            raise ExecutionError(f"the fresh build to {build.target} stopped: {feed.error}; {_kept(left)}")
        raise _Stopped(feed.error)


def _run_wave_in_transactions(lanes: list[sa.Connection], build: FreshBuild, feed: _Feed, number: int,
                              done: list[Operation], fault: _Fault) -> None:
    """Run wave `number` on `lanes`, each taking from `feed` the chunks of about `LANE_CHUNK` statements as they
    come, in a transaction each; on a failure take the build back."""
    failures: list[_GroupFailed] = []

    def run(lane: sa.Connection) -> None:
        for group in feed.chunks(number):
            if feed.stopped.is_set():
                return
            try:
                _run_contended(lane, build, group)
            except _GroupFailed as failure:
                failures.append(failure)
                feed.stopped.set()
                return
            except Exception as exc:  # noqa: BLE001 - on a thread: fails the build as a failing statement does
                failures.append(_GroupFailed(None, exc))
                feed.stopped.set()
                return
            done.extend(group.operations)  # list.extend of a list is atomic: lanes may share `done`
            fault.committed()

    if len(lanes) == 1:
        run(lanes[0])
    else:
        threads = [threading.Thread(target=run, args=(lane,), daemon=True) for lane in lanes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        feed.stop()
        raise _failed(lanes[0], build, done, failures[0].statement, failures[0].error)


def _run_contended(connection: sa.Connection, build: FreshBuild, group: _Chunk) -> None:
    """`_run_group` on a lane, run again (`RETRIES` times at most) when it lost to another lane's transaction: a
    created foreign key locks the table it points at until the commit, which chunks may reach in crossed orders
    (a deadlock; `Dialect.is_write_conflict`)."""
    for attempt in range(RETRIES + 1):
        try:
            _run_group(connection, build, group, None, now(), 0.0)
            return
        except _GroupFailed as failure:
            lost = isinstance(failure.error, sa.exc.DBAPIError) and build.dialect.is_write_conflict(failure.error)
            if not lost or attempt == RETRIES:
                raise


#: The end of a wave's chunks in its queue (`_Feed`).
_END = _Chunk([], [])


class _Feed:
    """The chunks of each wave of `build`, handed out from a thread as its operations come (`FreshBuild.in_order`:
    compiled there when the build is still to compile).

    A wave's chunks go into its queue as they fill up to about `size` statements
    (less towards its end: a share of what is left per lane, so that the lanes
    end together), and the wave is ended after its last operation, so lanes never
    wait on an operation of a later wave. `stop` makes the thread stop at the
    next operation (and end every queue), as does its `stopped` event, which the
    lanes set on a failure and look at; what else stopped it is `error`.
    """

    def __init__(self, build: FreshBuild, size: int, lanes: int) -> None:
        self.numbers = wave_numbers(build.operations)
        self.count = max(self.numbers, default=-1) + 1
        self.queues: list[queue.SimpleQueue[_Chunk]] = [queue.SimpleQueue() for _ in range(self.count)]
        self.size, self.lanes = size, lanes
        self.left = Counter(self.numbers)  # operations of each wave not in a chunk yet
        self.filling = [_Chunk([], []) for _ in range(self.count)]
        self.wanted = [0] * self.count  # statements of the chunk being filled
        self.error: BaseException | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._hand_out, args=(build,), daemon=True)
        self.thread.start()

    def chunks(self, number: int) -> Iterator[_Chunk]:
        """The chunks of wave `number` as they come, until it ends (shared by the lanes: each chunk to one)."""
        while (chunk := self.queues[number].get()) is not _END:
            yield chunk
        self.queues[number].put(_END)  # for the other lanes

    def stop(self) -> None:
        """Stop handing out (at the next operation) and wait for the thread."""
        self.stopped.set()
        self.thread.join()

    def _hand_out(self, build: FreshBuild) -> None:
        try:
            for position, (operation, statements) in enumerate(build.in_order()):
                if self.stopped.is_set():
                    return
                self._add(self.numbers[position], operation, statements)
        except BaseException as exc:  # noqa: BLE001 - the compile's error, raised by the build once taken back
            self.error = exc
            self.stopped.set()
        finally:
            for waiting in self.queues:
                waiting.put(_END)

    def _add(self, number: int, operation: Operation, statements: list[Statement]) -> None:
        """Add `operation` to the chunk wave `number` fills; hand the chunk out when full or the wave complete."""
        chunk = self.filling[number]
        if not chunk.operations:
            self.wanted[number] = min(self.size, -(-self.left[number] // self.lanes))
        chunk.operations.append(operation)
        chunk.statements.extend(statements)
        self.left[number] -= 1
        if len(chunk.statements) >= self.wanted[number] or not self.left[number]:
            self.queues[number].put(chunk)
            self.filling[number] = _Chunk([], [])
        if not self.left[number]:
            self.queues[number].put(_END)


class _Fault:
    """Crash-test hook (`FAULT_ENV`): SIGKILL this process once `at` table transactions committed."""

    def __init__(self, at: int | None) -> None:
        self.at = at
        self.count = 0
        self.lock = threading.Lock()

    @classmethod
    def from_env(cls) -> _Fault:
        value = os.environ.get(FAULT_ENV)
        return cls(int(value) if value else None)

    def committed(self) -> None:
        if self.at is None:
            return
        with self.lock:
            self.count += 1
            if self.count >= self.at:
                os.kill(os.getpid(), signal.SIGKILL)


def take_back(connection: sa.Connection, recorder: Recorder, build: FreshBuild) -> None:
    """Drop what the interrupted side-by-side `build` created and remove its marker (the database is then empty).

    Refused (`DatabaseStateError`, one line naming ``repair``) when one of its tables holds a row.
    """
    full = _holding_rows(connection, build.after, _tables_left(connection, build.after))
    if full:
        more = f" (and {len(full) - 1} more)" if len(full) > 1 else ""
        raise DatabaseStateError(
            f"the interrupted fresh build to {build.target} cannot be taken back: its table {full[0]}{more} holds "
            "rows; `schemashift repair` finishes the build and keeps them")
    left = undo(connection, build, build.operations)
    if left:
        raise ExecutionError(f"the interrupted fresh build to {build.target} could not be taken back: "
                             f"{', '.join(left[:4])} could not be dropped; drop them by hand")
    with connection.begin():
        recorder.delete(build.target)


#: What finishing an interrupted build may add: objects it had not created yet (`finish`).
_FINISHING = (CreateTable, CreateIndex, AddConstraint, CreateSequence, CreateObject)


def finish(connection: sa.Connection, recorder: Recorder, build: FreshBuild, missing: list[Operation]) -> None:
    """Finish the interrupted side-by-side `build`: run `missing` (what turns the live schema into the build's;
    only creations), record every revision and remove the marker, in one transaction (a statement that cannot run
    in one commits what came before and runs on its own). The tables it made stay, with their rows.
    `DatabaseStateError` when `missing` would change or drop something."""
    other = [operation for operation in missing if not isinstance(operation, _FINISHING)]
    if other:
        raise DatabaseStateError(f"the interrupted fresh build to {build.target} cannot be finished: the database "
                                 f"differs from it otherwise ({_first_line(other[0].describe())}); "
                                 "`schemashift repair undo` takes it back when its tables hold no rows")
    live = replay([operation.inverse() for operation in reversed(missing)], build.after)
    statements, _ = compile_operations(build.dialect, missing, live)
    started, clock = now(), time.perf_counter()
    together: list[Statement] = []  # run with the rows; one that cannot run in a transaction commits them first
    for statement in statements:
        if statement.sql is None or build.dialect.runs_in_transaction(statement.sql):
            together.append(statement)
            continue
        with transaction(connection, build.dialect.autocommits_ddl):
            for one in together:
                _execute(connection, one)
        together = []
        with outside_transaction(connection):  # the marker stays: `repair continue` may run again
            _execute(connection, statement)
    with transaction(connection, build.dialect.autocommits_ddl):
        for statement in together:
            _execute(connection, statement)
        recorder.delete(build.target)
        _record(recorder, build, started, clock)


#: Tables checked for rows per query (`_holding_rows`).
_PER_QUERY = 200


def _holding_rows(connection: sa.Connection, schema: Schema, keys: list[str]) -> list[str]:
    """The keys of `keys` (tables of `schema`) that hold at least one row."""
    full: list[str] = []
    for start in range(0, len(keys), _PER_QUERY):
        probes = [sa.select(sa.literal(key)).where(sa.exists(sa.select(sa.literal(1)).select_from(
                      sa.table(schema.tables[key].name, schema=schema.tables[key].schema))))
                  for key in keys[start:start + _PER_QUERY]]
        full += [row[0] for row in connection.execute(sa.union_all(*probes))]
    if connection.in_transaction():
        connection.commit()
    return sorted(full)


class _GroupFailed(Exception):
    def __init__(self, statement: Statement | None, error: BaseException) -> None:
        super().__init__(str(error))
        self.statement = statement
        self.error = error


def _run_group(connection: sa.Connection, build: FreshBuild, group: _Chunk, recorder: Recorder | None,
               started: datetime, clock: float, *, unmark: bool = False) -> None:
    """Run `group` in one transaction (with the rows when `recorder` is given, and then the marker row removed
    when `unmark`); `_GroupFailed` after a rollback.

    Where the driver takes several statements in one call (`Dialect.joins_statements_on`) they go `JOINED` at a time;
    after a failure the group runs again one statement at a time, to name the statement that failed.
    """
    joined = build.dialect.joins_statements_on(connection)
    statement: Statement | None = None
    try:
        with transaction(connection, build.dialect.autocommits_ddl):
            if joined:
                sqls = [s.sql for s in group.statements if s.sql is not None]
                for start in range(0, len(sqls), JOINED):
                    connection.exec_driver_sql(";\n".join(sqls[start:start + JOINED]))
            else:
                for statement in group.statements:
                    _execute(connection, statement)
                statement = None
            if recorder is not None:
                if unmark:
                    recorder.delete(build.target)
                _record(recorder, build, started, clock)
    except sa.exc.DBAPIError as exc:
        if connection.in_transaction():
            connection.rollback()
        if joined:
            named = _failing_statement(connection, build, group)
            raise _GroupFailed(named[0] if named else None, named[1] if named else exc) from None
        raise _GroupFailed(statement, exc) from None


def _failing_statement(connection: sa.Connection, build: FreshBuild,
                       group: _Chunk) -> tuple[Statement, BaseException] | None:
    """Run `group` one statement at a time in a transaction rolled back at the end: the first that fails."""
    try:
        with transaction(connection, build.dialect.autocommits_ddl):
            for statement in group.statements:
                try:
                    _execute(connection, statement)
                except sa.exc.DBAPIError as exc:
                    connection.rollback()
                    return statement, exc
            connection.rollback()
    except sa.exc.DBAPIError:
        if connection.in_transaction():
            connection.rollback()
    return None


def _run_autocommitted(connection: sa.Connection, recorder: Recorder, build: FreshBuild, done: list[Operation],
                       started: datetime, clock: float, connect: Connect | None) -> None:
    side_by_side = not connection.dialect.is_async  # an async driver's connections stay on one thread
    _mark(connection, recorder, build)  # each statement commits itself: a crash in between leaves this marker
    with ExitStack() as stack:
        helpers = _open_helpers(stack, connect, WORKERS - 1) if connect and side_by_side else []
        lanes = [connection, *(helper for helper in helpers if helper is not connection)]
        try:
            for wave in waves(build):
                _run_wave(lanes, build, wave, done)
        except ExecutionError:
            _unmark_if_empty(connection, recorder, build)
            raise
    with connection.begin():
        recorder.delete(build.target)
        _record(recorder, build, started, clock)


def _run_wave(lanes: list[sa.Connection], build: FreshBuild, wave: list[_Chunk], done: list[Operation]) -> None:
    """Run the operations of `wave`, spread over the connections of `lanes`; on a failure take the build back."""
    shares = [wave[number::len(lanes)] for number in range(len(lanes))]
    failures: list[tuple[Statement, BaseException]] = []
    if len(wave) == 1 or len(lanes) == 1:
        _run_lane(lanes[0], wave, done, failures)
    else:
        threads = [threading.Thread(target=_run_lane, args=(lane, share, done, failures), daemon=True)
                   for lane, share in zip(lanes, shares, strict=True) if share]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        statement, exc = failures[0]
        for lane in lanes:
            if lane.in_transaction():
                lane.rollback()
        done.append(statement.operation)  # it may have run in part: take it back too
        raise _failed(lanes[0], build, done, statement, exc)


def _run_lane(connection: sa.Connection, share: list[_Chunk], done: list[Operation],
              failures: list[tuple[Statement, BaseException]]) -> None:
    """Run the operations of `share` on `connection`, each statement committed; stop at the first failure."""
    for one in share:
        if failures:
            return
        for statement in one.statements:
            try:
                _execute(connection, statement)
                connection.commit()
            except Exception as exc:  # noqa: BLE001 - the database's, or on a thread: fails the build all the same
                failures.append((statement, exc))
                return
        done.extend(one.operations)  # list.append is atomic: lanes may share `done`


def _execute(connection: sa.Connection, statement: Statement) -> None:
    if statement.sql is not None:
        connection.exec_driver_sql(statement.sql)


def _record(recorder: Recorder, build: FreshBuild, started: datetime, clock: float) -> None:
    duration = math.ceil((time.perf_counter() - clock) * 1000)
    runs = [AppliedRun(m.revision, m.parent, m.checksum, m.message, started, duration, 0) for m in build.migrations]
    recorder.record_applied(runs, together=build.dialect.dml_in_cte, note=f"{FRESH} from the schema at {build.target}",
                            bulk=build.dialect.copy_rows)


def _failed(connection: sa.Connection, build: FreshBuild, done: list[Operation], statement: Statement | None,
            exc: BaseException) -> ExecutionError:
    """The error of a failed build, after taking back what it committed (see the module docstring)."""
    if connection.in_transaction():
        connection.rollback()
    error = mask_secrets(" ".join(str(getattr(exc, "orig", None) or exc).split()))[:500]
    where = f" at: {_first_line(statement.describe())}" if statement is not None else ""
    left = undo(connection, build, done)
    state = (_kept(left) if left else "the database is empty again (at base); "
             "`schemashift upgrade --step-by-step` runs the migrations one by one")
    return ExecutionError(f"the fresh build to {build.target} failed{where}: {error}; {state}")


def _kept(left: list[str]) -> str:
    """What a failed build that left tables says of them: its marker row stays, so `repair` deals with them."""
    return (f"{len(left)} table(s) it created are still there ({', '.join(left[:4])}), kept where they hold rows: "
            "`schemashift repair continue` finishes the build keeping them once what failed is fixed "
            "(`schemashift repair undo` takes it back once they hold none)")


def undo(connection: sa.Connection, build: FreshBuild, done: list[Operation]) -> list[str]:
    """Drop what the operations `done` created (best effort), except a table holding a row (another session wrote
    to it while the build ran: it stays, with what it needs); the keys of the build's tables still there."""
    if done:
        try:
            built = replay(done, Schema())
        except Exception:  # noqa: BLE001 - a partly run operation may not replay: drop what the whole build makes
            built = build.after
        for key in _holding_rows(connection, built, _tables_left(connection, built)):
            built = built.without_table(key)
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


__all__ = ["CHUNK", "FAULT_ENV", "FRESH", "JOINED", "SIDE_BY_SIDE_FROM", "WORKERS", "Beside", "Connect", "chunks",
           "finish", "run_fresh", "side_by_side", "take_back", "undo", "waves"]
