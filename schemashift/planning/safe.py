"""Lock-safe execution (safe mode): a plan rewritten so that no statement blocks writers for long.

`make_safe` rewrites a `Plan` before anything runs (like `backups.protect`), so
``--sql``, ``--dry-run`` and lint show the statements that will run. Each
operation on a table that existed before its migration is run in the form its
database gives through `Dialect.safe_form` (on PostgreSQL: indexes built and
dropped CONCURRENTLY, keys and checks added NOT VALID then validated, SET NOT
NULL over a validated CHECK, UNIQUE/PRIMARY KEY over a concurrently built index;
on MariaDB/MySQL: ``ALGORITHM=INSTANT`` or ``INPLACE, LOCK=NONE``). Every statement
that takes a lock blocking writes carries a `LockRetry`: the executor runs the
database's lock-timeout setting just before it, in the same transaction, and
retries it with backoff when the lock is not granted in time.

Operations on a table created earlier in the same migration keep the plain forms
(nobody else uses the table, and atomicity is worth more there). A form the
database must refuse (PostgreSQL: a type change that rewrites the table) stops the
plan with the expand/contract advice, unless the operation carries
``allow(op, SS205="why")``; the same allowance of SS401/SS402 runs the plain
MariaDB form (a table copy).

A refusal holds only for a large table: one whose rows (the catalog's estimate,
else a count stopped one row past the limit) exceed ``safe_rewrite_rows``. A
smaller table, or one an earlier migration of the plan creates, gets the plain
statement under the lock timeout (rewriting it takes moments). Offline
(``--sql --from``) nothing can be counted: the plain statement is written with a
comment saying so. Rows that decide only a fallback (on MariaDB/MySQL, whether
the server may copy a small table once it refuses the online algorithm) are
counted by the executor only when that happens (`CopyFallback`): a change that
runs online asks nothing.

A column whose server default the database evaluates row by row (PostgreSQL:
``gen_random_uuid()``, ``random()``…; MariaDB: ``uuid()``…) is not refused on a
large table but added in steps (`Dialect.batched_add_column`): nullable, then its
default, then a batched `Backfill` of the existing rows (resumable like any
backfill), then, for a NOT NULL column, NOT NULL the lock-safe way. Smaller tables get the plain
``ADD COLUMN``; offline, where nothing is counted, the steps are written.

Safe mode is on unless ``safe = false`` in the environment (`Dialect.safe_by_default`:
PostgreSQL and MariaDB/MySQL), on databases with a lock timeout (on SQLite it
means nothing); ``ddl_lock_timeout``, ``ddl_retries`` and ``ddl_backoff`` tune the
waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift import operations as ops
from schemashift.errors import SchemashiftError
from schemashift.model.schema import qualify
from schemashift.operations.statement import CopyFallback, LockRetry, Statement
from schemashift.planning.lint import allowed_codes
from schemashift.planning.plan import UP, Plan, Step, statement_groups

if TYPE_CHECKING:
    from schemashift.config import EnvConfig
    from schemashift.dialects.base import Dialect, SafeSql
    from schemashift.model.schema import Schema


class UnsafeOperation(SchemashiftError):
    """Safe mode refuses an operation that would block writers and nothing allows it (exit code 2)."""


@dataclass(frozen=True)
class SafeSettings:
    """An environment's safe-mode settings: seconds a statement waits for its lock, retries, first backoff."""

    lock_timeout: float
    retries: int
    backoff: float
    rewrite_rows: int = 10000  #: a rewriting change is refused on tables with more rows than this


def settings_of(env: EnvConfig, dialect: Dialect) -> SafeSettings | None:
    """`env`'s safe-mode settings on `dialect`; None when safe mode is off (or means nothing there)."""
    enabled = dialect.safe_by_default if env.safe is None else env.safe
    if not enabled or dialect.lock_timeout_sql(1.0) is None:
        return None
    return SafeSettings(env.ddl_lock_timeout, int(env.ddl_retries), env.ddl_backoff, int(env.safe_rewrite_rows))


#: Above this many rows allowed, a table is not counted one by one: the catalog's estimate decides.
_COUNT_AT_MOST = 1_000_000


@dataclass
class TableSizes:
    """How many rows the tables of a plan hold now, asked of `connection` (None: offline, nothing counted).

    Follows the plan: a table renamed by an earlier operation is counted under its
    present name, one created or dropped earlier in the plan holds nothing of note.
    """

    connection: sa.Connection | None
    limit: int
    present: dict[str, tuple[str, str | None] | None] = field(default_factory=dict)
    counted: dict[tuple[str, str | None], int] = field(default_factory=dict)
    volatile: frozenset[str] | None = None

    def volatile_functions(self, dialect: Dialect) -> frozenset[str]:
        """What `Dialect.volatile_functions` says of the database (read once; none offline or when it fails)."""
        if self.volatile is None:
            self.volatile = frozenset()
            if self.connection is not None:
                try:
                    self.volatile = dialect.volatile_functions(self.connection)
                except sa.exc.DBAPIError:
                    if self.connection.in_transaction():
                        self.connection.rollback()
        return self.volatile

    def rows(self, dialect: Dialect, operation: ops.Operation) -> int | None:
        """The rows of `operation`'s table now (0 for a table the plan made, -1 when the count failed); None
        offline."""
        now = self.table_now(operation)
        if now is None:
            return 0
        if self.connection is None:
            return None
        if now not in self.counted:
            self.counted[now] = self._count(dialect, self.connection, *now)
        return self.counted[now]

    def table_now(self, operation: ops.Operation) -> tuple[str, str | None] | None:
        """The name and schema `operation`'s table has when it runs; None for a table the plan made or dropped."""
        key = operation.table_key or ""
        return self.present.get(key, (str(getattr(operation, "table", key)), getattr(operation, "schema", None)))

    def track(self, operation: ops.Operation) -> None:
        """Follow the tables `operation` renames, creates or drops."""
        key = operation.table_key
        if key is None:
            return
        if isinstance(operation, ops.RenameTable):
            new_key = qualify(operation.new_name, operation.schema)
            self.present[new_key] = self.present.get(key, (operation.table, operation.schema))
            self.present[key] = None
        elif isinstance(operation, (ops.CreateTable, ops.DropTable)):
            self.present[key] = None

    def _count(self, dialect: Dialect, connection: sa.Connection, table: str, schema: str | None) -> int:
        """The catalog's estimate when above the limit, else the rows counted up to one past it."""
        if connection.in_transaction():
            connection.commit()
        try:
            with connection.begin():
                return rows_now(dialect, connection, table, schema, self.limit)
        except sa.exc.DBAPIError:
            return 0 if _missing(connection, table, schema) else -1


def rows_now(dialect: Dialect, connection: sa.Connection, table: str, schema: str | None, limit: int) -> int:
    """The catalog's estimate of `table`'s rows when above `limit`, else the rows counted up to one past it (in
    whatever transaction `connection` has; raises the driver's error)."""
    estimate = dialect.estimated_rows(connection, table, schema)
    if estimate is not None and (estimate > limit or limit > _COUNT_AT_MOST):
        return int(estimate)
    sample = sa.select(sa.literal_column("1")).select_from(sa.table(table, schema=schema)).limit(limit + 1).subquery()
    return int(connection.execute(sa.select(sa.func.count()).select_from(sample)).scalar() or 0)


def copy_allowed(dialect: Dialect, connection: sa.Connection, copy: CopyFallback) -> bool:
    """True when `copy`'s table holds at most its limit of rows now (`_small`); False when they cannot be counted."""
    try:
        return _small(rows_now(dialect, connection, copy.table, copy.schema, copy.limit), copy.limit)
    except sa.exc.DBAPIError:
        return False


def _missing(connection: sa.Connection, table: str, schema: str | None) -> bool:
    """True when `table` does not exist yet (a fresh build before the plan makes it): it holds no rows."""
    if connection.in_transaction():
        connection.rollback()
    try:
        return not sa.inspect(connection).has_table(table, schema=schema)
    except sa.exc.DBAPIError:
        return False


def make_safe(plan: Plan, settings: SafeSettings | None, connection: sa.Connection | None = None) -> Plan:
    """`plan` with every step in its lock-safe form (unchanged when `settings` is None); `connection` counts
    the rows of tables a refused change would rewrite (None: offline, the change is written with a comment)."""
    if settings is None or plan.empty:
        return plan
    sizes = TableSizes(connection, settings.rewrite_rows)
    return replace(plan, steps=[safe_step(step, settings, sizes) for step in plan.steps])


def safe_step(step: Step, settings: SafeSettings, sizes: TableSizes | None = None) -> Step:
    """`step` with the statements of its operations on existing tables in their lock-safe forms (`sizes`:
    the row counts deciding refusals; None: offline)."""
    sizes = sizes or TableSizes(None, settings.rewrite_rows)
    dialect = step.plan_dialect
    created: set[str] = set()
    state = step.before
    statements: list[Statement] = []
    for index, (operation, group) in enumerate(zip(step.operations, statement_groups(step), strict=True)):
        after = operation.apply(state)
        if _plain(operation, group, created):
            statements += group
        else:
            allowed = _allowed(step, index)
            statements += _safe(dialect, operation, group, state, after, settings, allowed, step, sizes)
        track_created(operation, created)
        sizes.track(operation)
        state = after
    return replace(step, statements=statements)


def only_new_tables(plan: Plan) -> bool:
    """True when every operation of `plan` on a table works on one the plan itself creates (a tenant built from
    empty): safe mode has nothing to protect there, and such a plan may run as one transaction in plain forms."""
    created: set[str] = set()
    for step in plan.steps:
        for operation in step.operations:
            if operation.table_key is not None and not isinstance(operation, ops.CreateTable) \
                    and operation.table_key not in created:
                return False
            track_created(operation, created)
    return True


def new_table_operation(operation: ops.Operation, created: set[str]) -> bool:
    """True when `operation` works on a table created earlier in the migration (`created`: their keys)."""
    return operation.table_key is not None and operation.table_key in created


def track_created(operation: ops.Operation, created: set[str]) -> None:
    """Add the table `operation` creates (or gives a created table's new name) to `created`."""
    if isinstance(operation, ops.CreateTable):
        created.add(operation.table.key)
    elif isinstance(operation, ops.RenameTable) and operation.table_key in created:
        created.add(qualify(operation.new_name, operation.schema))


def _plain(operation: ops.Operation, group: list[Statement], created: set[str]) -> bool:
    """True when `operation` keeps its statements as they are: nothing runs, Python, or a new table."""
    if not group or operation.internal or any(statement.sql is None for statement in group):
        return True
    return isinstance(operation, ops.CreateTable) or new_table_operation(operation, created)


def _safe(dialect: Dialect, operation: ops.Operation, group: list[Statement], before: Schema, after: Schema,
          settings: SafeSettings, allowed: dict[str, str], step: Step, sizes: TableSizes) -> list[Statement]:
    plain = [statement.sql for statement in group if statement.sql is not None]
    volatile = sizes.volatile_functions(dialect) if isinstance(operation, ops.AddColumn) else frozenset()
    form = None if operation.table_key is None else dialect.safe_form(operation, before, after, plain,
                                                                      volatile=volatile)
    note = None
    if form is not None and form.refusal is not None:
        code, reason = form.refusal
        if code not in allowed:
            note = _refusal(operation, code, reason, step, sizes.rows(dialect, operation), settings.rewrite_rows)
        form = None
    if form is not None and form.large_only and _small(sizes.rows(dialect, operation), settings.rewrite_rows):
        form = None
    if form is None or not form.statements or form.unless_allowed & allowed.keys():
        return [replace(statement, sql=sql if note is None or position else f"{note}\n{sql}",
                        lock=_lock(dialect, sql, settings) if dialect.takes_lock(sql) else None)
                for position, (statement, sql) in enumerate(zip(group, plain, strict=True))]
    fallbacks: list[str | None] = [item.fallback for item in form.statements]
    copies: list[CopyFallback | None] = [None] * len(fallbacks)
    if form.unless_allowed and len(plain) == len(fallbacks):
        fallbacks, copies = _copy_fallbacks(form.statements, plain, fallbacks, operation, sizes)
    return [Statement(operation, sql=item.sql, lock=_lock(dialect, item.sql, settings) if item.locks else None,
                      fallback=fallback, copy=copy, own_transaction=True, backfill=item.backfill, trace=item.trace)
            for item, fallback, copy in zip(form.statements, fallbacks, copies, strict=True)]


def _copy_fallbacks(forms: tuple[SafeSql, ...], plain: list[str], fallbacks: list[str | None],
                    operation: ops.Operation, sizes: TableSizes) -> tuple[list[str | None], list[CopyFallback | None]]:
    """Where the server may fall back to the plain statement (a copy) on a small table: at once for a table the
    plan made; online, a `CopyFallback` whose rows the executor counts only if the server refuses the online
    form; offline (nothing to count) never."""
    copies = [None if item.sql == sql else sql for item, sql in zip(forms, plain, strict=True)]
    now = sizes.table_now(operation)
    if now is None:
        return copies, [None] * len(copies)
    if sizes.connection is None:
        return fallbacks, [None] * len(copies)
    return fallbacks, [None if sql is None else CopyFallback(sql, now[0], now[1], sizes.limit) for sql in copies]


def _small(rows: int | None, limit: int) -> bool:
    """True when a table of `rows` (None: offline, -1: not counted) may be copied: the server may then fall
    back from the online algorithm to the plain statement (its own choice, a copy if need be)."""
    return rows is not None and 0 <= rows <= limit


def _refusal(operation: ops.Operation, code: str, reason: str, step: Step, rows: int | None,
             limit: int) -> str | None:
    """Raise `UnsafeOperation` when the table is too large to rewrite (or cannot be counted, `rows` -1); offline
    (`rows` None) the comment to write above the plain statement; None: run it."""
    if _small(rows, limit):
        return None
    if rows == -1:
        raise UnsafeOperation(f"{step.label}: safe mode refuses {operation.describe()} (its rows could not be "
                              f"counted): {reason}")
    if rows is not None:
        raise UnsafeOperation(f"{step.label}: safe mode refuses {operation.describe()}, the table holds more than "
                              f"{limit} rows (safe_rewrite_rows): {reason}")
    return (f"-- safe mode ({code}): this rewrites or copies table {operation.table_key}; online, schemashift "
            f"refuses it when the table holds more than {limit} rows (safe_rewrite_rows)")


def _lock(dialect: Dialect, sql: str, settings: SafeSettings) -> LockRetry | None:
    """How `sql` waits for its lock: the database's bound for a statement run in a transaction or not."""
    found = dialect.lock_timeout_sql(settings.lock_timeout, in_transaction=dialect.runs_in_transaction(sql))
    return None if found is None else LockRetry(found[0], found[1], settings.retries, settings.backoff)


def _allowed(step: Step, index: int) -> dict[str, str]:
    """The lint codes `allow` accepted for the operation at `index` of `step` (an inverse: its original's)."""
    originals = step.migration.operations
    if len(originals) != len(step.operations):
        return {}
    position = index if step.direction == UP else len(originals) - 1 - index
    return allowed_codes(originals[position])


__all__ = [
    "SafeSettings",
    "TableSizes",
    "UnsafeOperation",
    "copy_allowed",
    "make_safe",
    "new_table_operation",
    "only_new_tables",
    "rows_now",
    "safe_step",
    "settings_of",
    "track_created",
]
