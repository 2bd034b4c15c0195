"""Fresh builds: an empty database brought to a revision from that revision's schema, in one pass.

Replaying a long history statement by statement on an empty database repeats
every table's whole life (created, altered, renamed, dropped). A fresh build
skips that: the schema after the revision is replayed in memory
(`schemashift.history.cache`, memoised and kept on disk), the differ gives the
operations that create it from nothing (the same path `generate` takes for new
tables) and they are compiled as one list of statements. Every revision up to
there is then recorded as applied, with its own checksum, so `status`,
`downgrade` (whose down steps still come from each migration) and `history`
see the same database as after a step-by-step replay.

Only migrations made of schemashift's own schema operations are built this way:
a data migration (`ExecuteSQL`, `RunPython` or any other ``data_only``
operation) or an extension's operation (`schemashift.operations.is_extension`)
must run as written, so a fresh build stops just before the first one and the
rest of the path runs step by step (`fresh_prefix`). A build is also refused,
and the path runs step by step, when replaying its own operations does not give
exactly the revision's schema, or when one of its statements cannot run inside a
transaction on a database with transactional DDL.

A valid committed head snapshot (`schemashift.head`, `schemashift.history.snapshot`)
on the path says where the fresh prefix ends and holds the schema there, so a
clean checkout plans a build without importing or replaying any migration; when it
also holds the build's statements for the database, compiled by this code and
SQLAlchemy, nothing is compiled either.

The plan is data before anything runs, except where an upgrade runs a cold
side-by-side build (`plan_fresh` with `pipelined`): there the replay is checked
first and the statements are compiled by the run, in order, while the first
tables are being created (`FreshBuild.in_order`); a statement found unable to
run in a transaction then stops the build (`FreshRefused`: taken back, the path
runs step by step), and the build is kept once all are compiled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from schemashift.autodetect.differ import diff
from schemashift.dialects.compiling import OutsideTransaction, compile_in_order
from schemashift.errors import SchemashiftError
from schemashift.history import cache
from schemashift.history.snapshot import buildable, fresh_prefix, usable
from schemashift.model.schema import Schema
from schemashift.operations import Operation, replay
from schemashift.planning.plan import Statement, group_by_operation

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect
    from schemashift.history.chain import History
    from schemashift.history.loader import Migration

#: A fresh build is worth it from this many migrations on (one migration is its own fresh build).
MINIMUM = 2
#: Statements per transaction of a script's build, at most (PostgreSQL holds a lock per created object until the
#: commit, in a fixed number of slots); as `schemashift.runtime.fresh.CHUNK` cuts a running build.
TRANSACTION_SIZE = 600


class FreshRefused(SchemashiftError):
    """A pipelined build's statement cannot run in a transaction: the build stops and the path runs step by step,
    as when `plan_fresh` refuses a build (`FreshBuild.in_order`)."""


@dataclass
class Pending:
    """Where a build whose statements are still to compile is kept once they are (`FreshBuild.in_order`)."""

    history: History
    path: list[Migration]


@dataclass
class FreshBuild:
    """The statements that create the schema at `target` on an empty database, and the migrations it stands for.

    While `pending` is set the statements are still to compile (`in_order`, by the run; `plan_fresh` with
    `pipelined`): only `operations` and `after` are known, and `lines` and `transactions` are not to be asked.
    """

    dialect: Dialect
    migrations: list[Migration]
    operations: list[Operation]
    statements: list[Statement]
    after: Schema
    pending: Pending | None = None

    @property
    def target(self) -> str:
        """The revision the database is at once built."""
        return self.migrations[-1].revision

    def lines(self) -> list[str]:
        """The build for humans (``--dry-run``)."""
        first, last = self.migrations[0], self.migrations[-1]
        out = [f"Fresh build on {self.dialect.name}: base -> {self.target} "
               f"({len(self.migrations)} migrations, {first.path.stem} .. {last.path.stem}) "
               f"from the schema at {self.target}, in {len(self.statements)} statement(s)"]
        out.extend(f"    - {operation.describe()}" for operation in self.operations)
        return out

    def in_order(self) -> Iterator[tuple[Operation, list[Statement]]]:
        """Each operation with its statements, in order.

        A `pending` build compiles them here, one operation at a time, once: it
        raises `FreshRefused` (the build kept as "step by step") at a statement
        that cannot run in a transaction, and is kept in full after the last.
        """
        if self.pending is None:
            yield from zip(self.operations, group_by_operation(self.operations, self.statements), strict=True)
            return
        pending = self.pending
        try:
            for operation, mine in compile_in_order(self.dialect, self.operations):
                self.statements.extend(mine)
                yield operation, mine
        except OutsideTransaction as exc:
            _remember(pending.history, self.dialect, pending.path, None)
            raise FreshRefused(f"the fresh build to {self.target} cannot run in transactions: "
                               f"{exc.operation.describe()}") from None
        self.pending = None
        _remember(pending.history, self.dialect, pending.path, self)

    def compile(self) -> None:
        """Compile the statements of a `pending` build all at once (`in_order`)."""
        for _ in self.in_order():
            pass

    def transactions(self) -> list[list[Statement]]:
        """The statements in groups of about `TRANSACTION_SIZE`, never splitting one operation's (``--sql``)."""
        groups: list[list[Statement]] = [[]]
        for mine in group_by_operation(self.operations, self.statements):
            if groups[-1] and len(groups[-1]) + len(mine) > TRANSACTION_SIZE:
                groups.append([])
            groups[-1].extend(mine)
        return groups


def plan_fresh(history: History, dialect: Dialect, target: str | None, *,
               pipelined: bool = False) -> FreshBuild | None:
    """The fresh build from base towards `target`, or None when the path should run step by step.

    The build ends at `target` or just before the first migration it cannot
    stand for; the caller runs the rest of the path step by step. A build once
    planned is kept in the project's cache (`cached_build`), so the next one for
    the same migrations reads no migration module and compiles nothing.
    With `pipelined` (an upgrade about to run it) a build planned anew for a
    dialect that `builds_side_by_side` comes back `pending`: its run compiles it.
    """
    path = history.upgrade_path(None, target)
    if len(path) < MINIMUM:
        return None
    found = cached_build(history, dialect, path)
    if found is not None:
        return found or None
    build = _plan(history, dialect, path)
    if build is None:
        _remember(history, dialect, path, None)
        return None
    if build.pending is None:  # its statements from the committed head snapshot
        _remember(history, dialect, path, build)
        return build
    if pipelined and dialect.builds_side_by_side and dialect.transactional_ddl:
        return build
    try:
        build.compile()
    except FreshRefused:
        return None
    return build


def planned_anew(history: History, dialect: Dialect, target: str | None) -> FreshBuild | None:
    """The fresh build towards `target` planned anew, its statements still to compile, whatever the cache says:
    what an interrupted build created, to take back or finish (it may have been refused while it ran)."""
    path = history.upgrade_path(None, target)
    return _plan(history, dialect, path) if len(path) >= MINIMUM else None


def _plan(history: History, dialect: Dialect, path: list[Migration]) -> FreshBuild | None:
    """The build of `path`'s fresh prefix, still to compile; its operations are the committed head snapshot's own
    when it stands at the prefix's end (written as the differ's, and checked to replay to it), else the differ's,
    and it comes compiled when the snapshot also holds its statements on `dialect` from this code and SQLAlchemy
    (`Snapshot.sql_for`)."""
    migrations = _prefix(history, path)
    if len(migrations) < MINIMUM:
        return None
    revision = migrations[-1].revision
    state = cache.state_at(history, revision)
    head = usable(history)
    at_head = head is not None and head.revision == revision
    operations = list(head.operations) if head is not None and at_head else diff(Schema(), state)
    build = _replayed(dialect, migrations, operations, state, Pending(history, path))
    sql = head.sql_for(dialect.registry_name) if head is not None and at_head and build is not None else None
    if build is not None and sql is not None:
        build.statements = [Statement(operation, sql=text) for operation, texts in zip(operations, sql, strict=True)
                            for text in texts]
        build.pending = None
    return build


def _replayed(dialect: Dialect, migrations: list[Migration], operations: list[Operation], state: Schema,
              pending: Pending) -> FreshBuild | None:
    """The build of `operations`, still to compile; None when they do not replay to exactly `state` (the differ
    cannot say this schema exactly: the migrations' own statements can)."""
    after = replay(operations, Schema())
    if after != state:
        return None
    return FreshBuild(dialect, migrations, operations, [], after, pending)


def _prefix(history: History, path: list[Migration]) -> list[Migration]:
    """`fresh_prefix` of `path` (which starts at base); known without importing a migration from the committed head
    snapshot (`schemashift.history.snapshot.usable`), which also gives the migrations' messages (their history rows)."""
    head = usable(history)
    if head is None:
        return fresh_prefix(path)
    migrations = path[: history.index(head.revision) + 1]
    for migration in migrations:
        message = head.messages.get(migration.revision)
        if migration.known_message is None and message is not None:
            migration.message = message
    return migrations


def cached_build(history: History, dialect: Dialect, path: list[Migration]) -> FreshBuild | Literal[False] | None:
    """The build planned before for exactly `path` (its revisions, parents and checksums) on `dialect` by this
    code and SQLAlchemy (`schemashift.history.cache.source_key`); False when that plan was "step by step"; None
    when there is none."""
    location = _cache_path(history, dialect, path)
    kept = _well_formed(cache.load_pickled(location) if location is not None else None, len(path))
    if kept is None:
        return None  # missing, or a foreign file: planned anew (and written over)
    count, operations, statements, after, names = kept
    if count == 0 or after is None:
        return False
    if names is not None:
        cache.note_schema_names(history, path[-1].revision, names)
    return FreshBuild(dialect, path[:count], operations, statements, after)


_Kept = tuple[int, list[Operation], list[Statement], Schema | None, frozenset[str | None] | None]


def _well_formed(kept: object, length: int) -> _Kept | None:
    """`kept` when it is what `_remember` saves for a path of `length` migrations, else None."""
    if not isinstance(kept, tuple) or len(kept) != 5:
        return None
    count, operations, statements, after, names = kept
    if count == 0 and after is None:
        return 0, [], [], None, None
    if (isinstance(count, int) and MINIMUM <= count <= length and isinstance(after, Schema)
            and isinstance(operations, list) and all(isinstance(op, Operation) for op in operations)
            and isinstance(statements, list) and all(isinstance(st, Statement) for st in statements)
            and (names is None or (isinstance(names, frozenset)
                                   and all(name is None or isinstance(name, str) for name in names)))):
        return count, operations, statements, after, names
    return None


def _remember(history: History, dialect: Dialect, path: list[Migration], build: FreshBuild | None) -> None:
    """Keep the plan for `path` (None: step by step) with, when the build covers all of `path`, the schema
    names up to its end (`cache.schema_names_through`, which a later drift check asks for)."""
    location = _cache_path(history, dialect, path)
    if location is None:
        return
    if build is None:
        kept: _Kept = (0, [], [], None, None)
    else:
        names = cache.schema_names_through(history, build.target) if build.target == path[-1].revision else None
        kept = (len(build.migrations), build.operations, build.statements, build.after, names)
    cache.store_pickled(location, kept)


def _cache_path(history: History, dialect: Dialect, path: list[Migration]) -> Path | None:
    """Where the build for `path` on `dialect` is kept: named by the chain key of its last revision."""
    if history.cache_dir is None:
        return None
    key = cache.chain_keys(history)[history.index(path[-1].revision)]
    return cache.compiled_path(Path(history.cache_dir), f"fresh-{dialect.registry_name}-{key}", "pickle")


__all__ = ["MINIMUM", "TRANSACTION_SIZE", "FreshBuild", "FreshRefused", "Pending", "buildable", "cached_build",
           "fresh_prefix", "plan_fresh", "planned_anew"]
