"""Tenant fleets: one command run on every tenant of an environment, each tenant on its own.

A tenant is a PostgreSQL schema of the environment's database (``tenants =
["acme"]``, `tenants_query`, `tenants_from`), holding its own copy of the tables
and its own version table, or a database of its own (``{ name, url }``). Each
tenant gets a `Project` of its own (`Fleet.project_of`): the environment with
`schema` set to the tenant's schema (or `url` to its database), the migration
files loaded once and shared, schema tenants connecting through one shared
engine (one shared connection per thread where the migration lock allows it).
The command then runs per tenant as it does for one database: under that
tenant's lock, with its version table and journal. A failing tenant is recorded
and the others go on (`run_fleet`, serially or ``parallel`` threads); the
`FleetReport` has a row per tenant (revision, duration, error) and an exit code
that is 0 only when every tenant succeeded. State lives in each tenant's version
table only, so a re-run continues where a fleet run stopped.

Before an `upgrade`/`downgrade` the version tables of all schema tenants are read
with two queries on one connection (`schema_states`): tenants already at the
target are done without a connection, lock or plan of their own: the no-op check
of a large fleet is a process start and two queries (the commands' own modules are
imported only when a tenant needs them).
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from schemashift.dialects import dialect_of
from schemashift.errors import ConfigError, SchemashiftError, mask_secrets
from schemashift.planning.plan import DOWN, UP
from schemashift.runtime.fleetreport import FleetReport, TenantResult
from schemashift.runtime.locks import can_lock_in_transaction, lock_in_transaction
from schemashift.runtime.versions import AppliedRevision, Recorder
from schemashift.services.project import (
    Output,
    Project,
    all_problems,
    current_revision,
    open_connection,
    open_engine,
    open_project,
    print_line,
)
from schemashift.services.prompting import NO_PROMPTS, Prompter, confirm
from schemashift.services.squash import covered_squashes

if TYPE_CHECKING:
    from schemashift.config import EnvConfig
    from schemashift.dialects.base import Dialect
    from schemashift.history.chain import History
    from schemashift.planning.plan import Plan

#: Told of each tenant as it finishes: (tenants done, tenants in all, its result).
Progress = Callable[[int, int, "TenantResult"], None]
#: Runs a command on one tenant's project: (exit code, revision, what it did).
TenantCommand = Callable[[Project], tuple[int, str | None, str]]

EXIT_FAILED = 2  # a tenant whose run raised a database error or a schemashift error without its own code
EXIT_BUG = 3


@dataclass(frozen=True)
class Tenant:
    """One tenant: a schema of the environment's database (`url` None) or a database of its own."""

    name: str
    url: str | None = None

    @property
    def schema(self) -> str | None:
        """The PostgreSQL schema holding the tenant's tables (None: its database's default schema)."""
        return self.name if self.url is None else None


class FleetFailed(SchemashiftError):
    """The Python API's fleet call: some tenants failed (the report is in `report`)."""

    exit_code = 1

    def __init__(self, report: FleetReport) -> None:
        names = ", ".join(f"{r.tenant} ({r.error or r.detail})" for r in report.failed[:3])
        more = f" and {len(report.failed) - 3} more" if len(report.failed) > 3 else ""
        super().__init__(f"{report.command} failed on {len(report.failed)} of {len(report.results)} "
                         f"tenant(s): {names}{more}")
        self.report = report


# -- the tenants ------------------------------------------------------------------


def configured_tenants(project: Project) -> list[Tenant]:
    """The environment's tenants: listed, from `tenants_query` or from `tenants_from` (empty: not a fleet)."""
    env = project.env
    if env.tenants:
        return [Tenant(t.name, t.url) for t in env.tenants]
    if env.tenants_query:
        return _from_query(project, env.tenants_query)
    if env.tenants_from:
        return _from_function(project, env.tenants_from)
    return []


def select_tenants(project: Project, names: Sequence[str] | None = None) -> list[Tenant]:
    """The tenants named by `names` (None: all of them); with no tenants configured, the names are schemas."""
    known = configured_tenants(project)
    if names is None:
        if not known:
            raise ConfigError(f"env {project.env.name!r} has no tenants: set tenants, tenants_query or tenants_from")
        return known
    if not known:
        return [Tenant(name) for name in dict.fromkeys(names)]
    by_name = {tenant.name: tenant for tenant in known}
    missing = [name for name in names if name not in by_name]
    if missing:
        shown = ", ".join(list(by_name)[:5]) + (" ..." if len(by_name) > 5 else "")
        raise ConfigError(f"unknown tenant {missing[0]!r} in env {project.env.name!r} (tenants: {shown})")
    return [by_name[name] for name in dict.fromkeys(names)]


def _from_query(project: Project, query: str) -> list[Tenant]:
    """The tenants `query` names on the environment's database: the first column, the second (if any) a URL."""
    try:
        with project.connect() as connection:
            rows = connection.execute(sa.text(query)).all()
            connection.rollback()
    except sa.exc.DBAPIError as exc:
        reason = " ".join(str(exc.orig).split())[:200]
        raise ConfigError(f"tenants_query of env {project.env.name!r} failed: {reason}") from None
    return _tenants([(row[0], row[1] if len(row) > 1 else None) for row in rows], "tenants_query")


def _from_function(project: Project, spec: str) -> list[Tenant]:
    """The tenants `module:function` returns (names, ``{name, url}`` mappings or objects with ``name``/``url``)."""
    root = str(project.config.root)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    module_name, _, attr = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name.strip()), attr.strip())
        items = list(function())
    except Exception as exc:  # noqa: BLE001 - any failure of the user's code is a configuration error
        raise ConfigError(f"tenants_from {spec!r} failed: {type(exc).__name__}: {exc}") from None
    pairs: list[tuple[Any, Any]] = []
    for item in items:
        if isinstance(item, dict):
            pairs.append((item.get("name"), item.get("url")))
        elif isinstance(item, str):
            pairs.append((item, None))
        else:
            pairs.append((getattr(item, "name", item), getattr(item, "url", None)))
    return _tenants(pairs, f"tenants_from {spec!r}")


def _tenants(pairs: Iterable[tuple[Any, Any]], source: str) -> list[Tenant]:
    """Checked tenants from (name, url) pairs: names are non-empty strings, each once."""
    tenants: dict[str, Tenant] = {}
    for name, url in pairs:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{source} gave a tenant name that is not a non-empty string: {name!r}")
        if url is not None and not isinstance(url, str):
            raise ConfigError(f"{source} gave tenant {name!r} a URL that is not a string")
        tenants.setdefault(name, Tenant(name, url or None))
    return list(tenants.values())


# -- a project per tenant -----------------------------------------------------------


class Fleet:
    """The tenants' projects: one shared history and, for schema tenants, one shared engine.

    Schema tenants also share one connection per thread, one tenant after the other,
    where the migration lock allows it: the dialect's session lock is released at the
    end of each tenant's run (behind a transaction pooler, or on Galera, where the lease
    lock is used, each tenant connects on its own). Their commits are made durable at
    `close` (see there).
    """

    def __init__(self, project: Project, tenants: list[Tenant]) -> None:
        self.project = project
        self.tenants = tenants
        self._engine: sa.Engine | None = None
        self._local = threading.local()
        self._opened: list[sa.Connection] = []
        self._lock = threading.Lock()
        self._shareable: bool | None = None
        self._deferred: list[tuple[sa.Connection, object]] = []  # connections whose commits wait for `close`

    def engine(self) -> sa.Engine:
        """The engine schema tenants connect through (the caller's bind's, else one opened once)."""
        bind = self.project.bind
        if bind is not None:
            return bind if isinstance(bind, sa.Engine) else bind.engine
        if self._engine is None:
            self._engine = open_engine(self.project.url, self.project.env)
        return self._engine

    def project_of(self, tenant: Tenant) -> Project:
        """The project of one tenant: its schema (or database), the shared history, no tenants of its own."""
        env = replace(self.project.env, tenants=[], tenants_query=None, tenants_from=None)
        if tenant.url is None:
            env = replace(env, schema=tenant.name)
            bind: sa.Engine | sa.Connection = self.connection(env) or self.engine()
            tenant_project = Project(self.project.config, env, self.project.url, bind)
        else:
            tenant_project = Project(self.project.config, env, tenant.url, None)
        tenant_project.use_history(self.project.history())
        return tenant_project

    def connection(self, env: EnvConfig) -> sa.Connection | None:
        """This thread's shared connection, set up for `env` (its tenant's schema); None where none is shared."""
        if self._shareable is False:
            return None
        connection: sa.Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.invalidated:
            connection = open_connection(self.engine())
            if self._shareable is None:
                self._shareable = not dialect_of(connection).needs_lease_lock(connection, env)
                if connection.in_transaction():
                    connection.rollback()
            with self._lock:
                self._opened.append(connection)
            if not self._shareable:
                return None
            self._local.connection = connection
            token = dialect_of(connection).defer_durability(connection)
            if token is not None:
                with self._lock:
                    self._deferred.append((connection, token))
        dialect_of(connection).session_setup(connection, env)
        return connection

    def finished(self, project: Project) -> None:
        """After a tenant's run: nothing of it stays open on a shared connection."""
        if isinstance(project.bind, sa.Connection) and not project.bind.closed and project.bind.in_transaction():
            project.bind.rollback()

    def close(self) -> None:
        """Make the shared connections' commits durable, close them and dispose of the engine this fleet opened.

        The shared connections commit without waiting for the disk (`Dialect.defer_durability`): each commit
        holds a whole tenant's run with its version rows, so a server crash could only lose some tenants' runs
        whole and their version tables would say so truthfully; here, before the report, one durable commit per
        connection makes all of them durable.
        """
        for connection, token in self._deferred:
            if connection.closed or connection.invalidated:
                continue
            dialect = dialect_of(connection)
            with suppress(sa.exc.DBAPIError):
                if connection.in_transaction():
                    connection.rollback()
                dialect.restore_durability(connection, token)
                dialect.flush_commits(connection)
        self._deferred.clear()
        for connection in self._opened:
            with suppress(sa.exc.DBAPIError):
                connection.close()
        self._opened.clear()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


# -- the state of every schema tenant at once --------------------------------------------

_FIELDS = [f.name for f in fields(AppliedRevision)]


def schema_states(fleet: Fleet) -> dict[str, dict[str, AppliedRevision]]:
    """The version-table rows of every schema tenant, by tenant, read with two queries on one connection.

    Tenants whose version table does not exist yet have no rows; an empty result
    when the database cannot answer the catalog query (each tenant is read on its own then).
    """
    schemas = [tenant.name for tenant in fleet.tenants if tenant.url is None]
    if not schemas:
        return {}
    name = fleet.project.env.version_table
    tables = sa.table("tables", sa.column("table_schema"), sa.column("table_name"), schema="information_schema")
    try:
        with fleet.engine().connect() as connection:
            found = connection.execute(sa.select(tables.c.table_schema).where(
                tables.c.table_name == name, tables.c.table_schema.in_(schemas))).scalars().all()
            states: dict[str, dict[str, AppliedRevision]] = {schema: {} for schema in schemas}
            for row in _version_rows(connection, sorted(found), name):
                values: dict[str, Any] = {key: row[key] for key in _FIELDS}
                values["statements_done"] = values["statements_done"] or 0
                states[row["_tenant"]][row["revision"]] = AppliedRevision(**values)
            return states
    except sa.exc.DBAPIError:
        return {}


def _version_rows(connection: sa.Connection, schemas: list[str], name: str) -> list[sa.RowMapping]:
    """Every row of the version table `name` in each of `schemas`, with the schema as ``_tenant`` (one UNION ALL)."""
    rows: list[sa.RowMapping] = []
    quote = connection.dialect.identifier_preparer.quote
    columns = ", ".join(quote(column) for column in _FIELDS)
    for start in range(0, len(schemas), 500):
        chunk = schemas[start:start + 500]
        parts = [f"SELECT {index} AS _index, {columns} FROM {quote(schema)}.{quote(name)}"
                 for index, schema in enumerate(chunk)]
        for row in connection.exec_driver_sql(" UNION ALL ".join(parts)).mappings():
            rows.append({**row, "_tenant": chunk[row["_index"]]})  # type: ignore[arg-type]
    connection.rollback()
    return rows


@dataclass(frozen=True)
class SchemaCatalog:
    """What the fleet read of one tenant schema before its run: whether it exists, its tables, and whether its
    version table has the ``fingerprint`` column."""

    exists: bool
    tables: frozenset[str]
    fingerprint: bool


def schema_catalogs(project: Project, schemas: list[str]) -> dict[str, SchemaCatalog]:
    """The `SchemaCatalog` of each of `schemas`, from one query on the environment's database (empty when it
    cannot answer it: each tenant then runs the ordinary way)."""
    tables = sa.table("tables", sa.column("table_schema"), sa.column("table_name"), schema="information_schema")
    columns = sa.table("columns", sa.column("table_schema"), sa.column("table_name"), sa.column("column_name"),
                       schema="information_schema")
    schemata = sa.table("schemata", sa.column("schema_name"), schema="information_schema")

    def named(kind: str, owner: sa.ColumnClause[Any], name: sa.ColumnClause[Any]) -> list[sa.ColumnElement[Any]]:
        return [sa.literal_column(f"'{kind}'").label("kind"), sa.cast(owner, sa.String).label("owner"),
                sa.cast(name, sa.String).label("name")]

    query = sa.union_all(
        sa.select(*named("schema", schemata.c.schema_name, schemata.c.schema_name)).where(
            schemata.c.schema_name.in_(schemas)),
        sa.select(*named("table", tables.c.table_schema, tables.c.table_name)).where(
            tables.c.table_schema.in_(schemas)),
        sa.select(*named("column", columns.c.table_schema, columns.c.column_name)).where(
            columns.c.table_schema.in_(schemas), columns.c.table_name == project.env.version_table,
            columns.c.column_name == "fingerprint"),
    )
    found: dict[str, dict[str, set[str]]] = {schema: {"schema": set(), "table": set(), "column": set()}
                                             for schema in schemas}
    fleet = Fleet(project, [])
    try:
        with fleet.engine().connect() as connection:
            for kind, owner, name in connection.execute(query):
                found[owner][kind].add(name)
            connection.rollback()
    except sa.exc.DBAPIError:
        return {}
    finally:
        fleet.close()
    return {schema: SchemaCatalog(bool(kinds["schema"]), frozenset(kinds["table"]), bool(kinds["column"]))
            for schema, kinds in found.items()}


def settled(applied: dict[str, AppliedRevision], history: History, target: str) -> str | None:
    """Why a tenant with rows `applied` needs no run to reach `target` (its revision), else None.

    Only a tenant with no problem, no squash to record and already at the target is settled.
    """
    if all_problems(applied, history) or covered_squashes(applied, history):
        return None
    current = current_revision(applied, history)
    try:
        goal = history.resolve(target, current)
    except SchemashiftError:
        return None
    if goal != current:
        return None
    return current or "base"


# -- running a command on every tenant ------------------------------------------------------


def run_fleet(project: Project, tenants: list[Tenant], command_name: str, command: TenantCommand, *,
              parallel: int = 1, progress: Progress | None = None,
              done: dict[str, TenantResult] | None = None) -> FleetReport:
    """Run `command` on each tenant (`parallel` at a time); a failure is recorded and the others go on.

    `done` holds results known without a run (tenants already at the target).
    """
    started = time.perf_counter()
    fleet = Fleet(project, tenants)
    known = dict(done or {})
    todo = [tenant for tenant in tenants if tenant.name not in known]
    total, finished = len(tenants), [0]

    def record(result: TenantResult) -> TenantResult:
        finished[0] += 1
        if progress is not None:
            progress(finished[0], total, result)
        return result

    for result in known.values():
        record(result)
    try:
        if parallel > 1 and len(todo) > 1:
            warm(project.history())
            pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="tenant")
            try:
                results = list(pool.map(lambda t: record(run_tenant(fleet, t, command)), todo))
            finally:  # interrupted: the tenants not started yet are not started (a re-run does them)
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            results = [record(run_tenant(fleet, tenant, command)) for tenant in todo]
    finally:
        fleet.close()
    known.update((result.tenant, result) for result in results)
    ordered = [known[tenant.name] for tenant in tenants]
    return FleetReport(command_name, ordered, time.perf_counter() - started)


def run_tenant(fleet: Fleet, tenant: Tenant, command: TenantCommand) -> TenantResult:
    """`command` on one tenant; any error becomes the tenant's result, never the fleet's."""
    started = time.perf_counter()
    try:
        project = fleet.project_of(tenant)
    except (SchemashiftError, sa.exc.DBAPIError) as exc:
        error = str(exc.orig) if isinstance(exc, sa.exc.DBAPIError) else str(exc)
        return TenantResult(tenant.name, EXIT_FAILED, None, time.perf_counter() - started, error=_one_line(error))
    try:
        code, revision, detail = command(project)
    except SchemashiftError as exc:
        code, error = exc.exit_code or EXIT_FAILED, str(exc)
    except sa.exc.DBAPIError as exc:
        code, error = EXIT_FAILED, str(exc.orig)
    except Exception as exc:  # noqa: BLE001 - one tenant's failure must not stop the fleet
        code, error = EXIT_BUG, f"{type(exc).__name__}: {exc}"
    else:
        fleet.finished(project)
        return TenantResult(tenant.name, code, revision, time.perf_counter() - started, detail)
    fleet.finished(project)
    return TenantResult(tenant.name, code, revision_of(project), time.perf_counter() - started,
                        error=_one_line(error))


def revision_of(project: Project) -> str | None:
    """The revision a tenant's version table records (None: base, or it cannot be read)."""
    try:
        with project.connect() as connection:
            if connection.in_transaction():
                connection.rollback()
            applied = project.recorder(connection).applied()
    except (SchemashiftError, sa.exc.DBAPIError):
        return None
    return current_revision(applied, project.history())


def warm(history: History) -> None:
    """Import every migration file now, in this thread (worker threads then only read them)."""
    for migration in history.chain:
        migration.operations  # noqa: B018 - loads the module of a lazy migration


def _one_line(text: str) -> str:
    return " ".join(mask_secrets(text).split())[:300]


# -- the commands -----------------------------------------------------------------------------


def migrate_fleet(project: Project, target: str, direction: str, *, tenants: Sequence[str] | None = None,
                  parallel: int = 1, yes: bool = False, allow_data_loss: bool = False,
                  prompter: Prompter = NO_PROMPTS, progress: Progress | None = None) -> FleetReport:
    """Move each tenant to `target` in `direction`; tenants already there are settled from one catalog read."""
    selected = select_tenants(project, tenants)
    history = project.history()
    verb = "upgrade" if direction == UP else "downgrade"
    fleet = Fleet(project, selected)
    try:
        states = schema_states(fleet)
    finally:
        fleet.close()
    done: dict[str, TenantResult] = {}
    for name, applied in states.items():
        revision = settled(applied, history, target)
        if revision is not None:
            done[name] = TenantResult(name, 0, None if revision == "base" else revision, 0.0, "nothing to do")
    if len(done) < len(selected) and project.env.confirm and not yes:
        confirm(prompter, project.env.name, f"{len(selected) - len(done)} tenant(s)", f"{verb} to {target}")

    plans: dict[tuple[str | None, str, str], Plan] = {}
    todo = [t.name for t in selected if t.url is None and t.name not in done and t.name in states]
    catalogs = schema_catalogs(project, todo) if todo else {}

    def command(tenant: Project) -> tuple[int, str | None, str]:
        from schemashift.services import migrate

        lines: list[str] = []
        schema = tenant.env.schema or ""
        ran, revision = run_in_one_transaction(tenant, states.get(schema), catalogs.get(schema), target, direction,
                                               allow_data_loss=allow_data_loss, out=lines.append, plans=plans)
        if not ran:
            revision = migrate.migrate(tenant, target, direction, sql=False, dry_run=False, yes=True,
                                       allow_data_loss=allow_data_loss, out=lines.append, fingerprint=False)
        return 0, revision, lines[-1] if lines else ""

    return run_fleet(project, selected, verb, command, parallel=parallel, progress=progress, done=done)


# -- one transaction per tenant --------------------------------------------------------------


def run_in_one_transaction(project: Project, applied: dict[str, AppliedRevision] | None,
                           catalog: SchemaCatalog | None, target: str, direction: str, *, allow_data_loss: bool,
                           out: Output, plans: dict[tuple[str | None, str, str], Plan]) -> tuple[bool, str | None]:
    """Move one schema tenant to `target` in a single transaction: lock, plan, journal, one commit.

    `applied` and `catalog` are the tenant's version state and tables read before, for the
    whole fleet (`schema_states`, `schema_catalogs`); the plan is made from them (shared
    through `plans` by the tenants at the same revision), and under the lock, a
    transaction-level one, the version table must still say the same (read once; a table
    created or dropped meanwhile makes a statement fail: all rolled back). Only
    where it is safe: transactional DDL, a transaction-level lock, every step atomic
    with no lock-timeout retries, no data-loss guard or backup registry to consult. A
    failing migration rolls the whole tenant back to where it started. Returns (False,
    None) without having changed anything wherever a condition does not hold: the
    caller then runs the ordinary `migrate` (which also gives every refusal its message).
    """
    connection, env = project.bind, project.env
    if applied is None or catalog is None or env.schema is None or not isinstance(connection, sa.Connection):
        return False, None
    history = project.history()
    dialect = dialect_of(connection)
    if (not dialect.transactional_ddl or all_problems(applied, history) or covered_squashes(applied, history)
            or not can_lock_in_transaction(dialect, connection, env)):
        return False, None
    plan = _one_transaction_plan(project, dialect, current_revision(applied, history), target, direction,
                                 allow_data_loss=allow_data_loss, plans=plans)
    if plan is None:
        return False, None
    from schemashift.runtime.executor import Executor

    if connection.in_transaction():
        connection.rollback()
    recorder = project.recorder(connection)
    if not _fits(recorder, applied, catalog, plan):
        return False, None
    try:
        try:
            lock_in_transaction(dialect, connection, project.lock_name, env)
            ready = _ready(connection, recorder, applied, catalog)
        except sa.exc.DBAPIError:  # a table made or dropped since the fleet's read: the ordinary run sorts it out
            ready = False
        if not ready:
            connection.rollback()
            return False, None
        plan = dialect.adapt_to_live(connection, plan)
        Executor(connection, recorder, project.migration_context(connection), out).run_in_transaction(plan)
        connection.commit()
    finally:
        if connection.in_transaction():
            connection.rollback()
    out(f"Database is at {plan.target or 'base'}.")
    return True, plan.target


def _one_transaction_plan(project: Project, dialect: Dialect, current: str | None, target: str, direction: str, *,
                          allow_data_loss: bool, plans: dict[tuple[str | None, str, str], Plan]) -> Plan | None:
    """The plan from `current`, made safe and protected as `migrate` would (no backups registered), or None
    when it cannot run in one transaction (or has nothing to do)."""
    from schemashift.planning.backups import CheckNoRows, protect
    from schemashift.planning.safe import make_safe, only_new_tables, settings_of
    from schemashift.runtime.executor import Executor
    from schemashift.services.migrate import plan_to

    key = (current, target, direction)
    plan = plans.get(key)
    if plan is None:
        plan = plans[key] = plan_to(project.history(), dialect, current, target, direction)
    if plan.empty:
        return None
    env = project.env
    if not only_new_tables(plan):  # a tenant built from empty has nothing for safe mode to protect
        plan = make_safe(plan, settings_of(env, dialect))
    plan = protect(plan, keep=env.keep_data, allow_data_loss=allow_data_loss or env.allow_data_loss, kept={},
                   registry_schema=env.schema)
    guarded = any(isinstance(operation, CheckNoRows) for step in plan.steps for operation in step.operations)
    return None if guarded or not Executor.in_one_transaction(plan) else plan


def _fits(recorder: Recorder, applied: dict[str, AppliedRevision], catalog: SchemaCatalog, plan: Plan) -> bool:
    """From what the fleet read: no backup registry, whole bookkeeping tables and, from base, no table the plan
    creates already there (the ordinary run says what to do about each of those)."""
    from schemashift.planning.backups import PREFIX, REGISTRY
    from schemashift.services.migrate import created_tables

    tables = catalog.tables
    whole = recorder.history.name in tables and catalog.fingerprint
    if REGISTRY in tables or (recorder.name in tables and not whole):
        return False
    if not applied and plan.start is None:
        live = {name for name in tables if name not in recorder.own_tables and not name.startswith(PREFIX)}
        created = created_tables(plan)
        if any("." in key for key in created) or live & created:
            return False
    return True


def _ready(connection: sa.Connection, recorder: Recorder, applied: dict[str, AppliedRevision],
           catalog: SchemaCatalog) -> bool:
    """Under the lock: the version table still says `applied` (its one read); the schema and the bookkeeping
    tables missing from `catalog` are made in this transaction."""
    version = recorder.name in catalog.tables
    if _state(recorder.read_in_transaction() if version else {}) != _state(applied):
        return False
    if not catalog.exists:
        connection.execute(sa.schema.CreateSchema(recorder.schema or ""))
    recorder.create_in_transaction(version=not version, history=recorder.history.name not in catalog.tables)
    return True


def _state(applied: dict[str, AppliedRevision]) -> set[tuple[object, ...]]:
    """What of a version state must not change between the fleet's read and the tenant's lock."""
    return {(row.revision, row.parent, row.checksum, row.state, row.direction, row.statements_done)
            for row in applied.values()}


def upgrade(project: Project, target: str = "head", **options: Any) -> FleetReport:
    """`upgrade` on each tenant (see `migrate_fleet` for the options)."""
    return migrate_fleet(project, target, UP, **options)


def downgrade(project: Project, target: str, **options: Any) -> FleetReport:
    """`downgrade` on each tenant (see `migrate_fleet` for the options)."""
    return migrate_fleet(project, target, DOWN, **options)


def status(project: Project, *, tenants: Sequence[str] | None = None, parallel: int = 1,
           progress: Progress | None = None) -> FleetReport:
    """`status` on each tenant: a tenant succeeds only when it is at head, clean and without drift."""
    def command(tenant: Project) -> tuple[int, str | None, str]:
        from schemashift.services.status import status as status_of

        report = status_of(tenant)
        if report.problems:
            detail = report.problems[0]
        elif report.pending:
            detail = f"{len(report.pending)} pending"
        elif report.schema_matches is False:
            detail = f"drift: {report.differences[0]}" if report.differences else "drift"
        else:
            detail = "at head"
        return report.exit_code, report.current, detail

    return run_fleet(project, select_tenants(project, tenants), "status", command, parallel=parallel,
                     progress=progress)


def diff(project: Project, *, against: str = "models", tenants: Sequence[str] | None = None, parallel: int = 1,
         progress: Progress | None = None) -> FleetReport:
    """`diff` on each tenant: a tenant succeeds when its database matches the models (or the migrations)."""
    def command(tenant: Project) -> tuple[int, str | None, str]:
        from schemashift.services.status import diff as diff_of

        report = diff_of(tenant, against=against)
        if report.empty:
            return 0, revision_of(tenant), "no differences"
        return 1, revision_of(tenant), f"{len(report.operations)} difference(s): {report.operations[0].describe()}"

    return run_fleet(project, select_tenants(project, tenants), "diff", command, parallel=parallel,
                     progress=progress)


def verify(project: Project, *, accept: bool = False, tenants: Sequence[str] | None = None, parallel: int = 1,
           progress: Progress | None = None) -> FleetReport:
    """`verify` on each tenant: a tenant succeeds when its version table matches the migration files."""
    def command(tenant: Project) -> tuple[int, str | None, str]:
        from schemashift.services.maintenance import verify as verify_of

        lines: list[str] = []
        ok = verify_of(tenant, accept=accept, out=lines.append)
        problems = [line.removeprefix("PROBLEM: ") for line in lines if line.startswith("PROBLEM: ")]
        revision = revision_of(tenant)
        return (0, revision, "OK") if ok else (1, revision, problems[0] if problems else "problems found")

    return run_fleet(project, select_tenants(project, tenants), "verify", command, parallel=parallel,
                     progress=progress)


# -- the start-up API ---------------------------------------------------------------------------


def startup_upgrade(bind: Any, target: str, tenants: Sequence[str] | bool | str, *, config: Any = None,
                    env: str | None = None, parallel: int = 1, out: Output = print_line) -> FleetReport:
    """``schemashift.upgrade(engine, tenants=...)``: `tenants` is True or ``"all"`` (every configured tenant)
    or a list of names; raises `FleetFailed` when a tenant failed, after every tenant was tried."""
    project = config if isinstance(config, Project) else open_project(config, env, None, bind=bind)
    names = None if tenants is True or tenants == "all" else [tenants] if isinstance(tenants, str) else tenants
    if names is False:
        raise ConfigError("tenants must be True, 'all', a tenant name or a list of tenant names")
    report = upgrade(project, target, tenants=names, parallel=parallel, yes=True)
    for line in report.lines()[-1:]:
        out(line)
    if report.failed:
        raise FleetFailed(report)
    return report


__all__ = [
    "Fleet",
    "FleetFailed",
    "FleetReport",
    "Progress",
    "SchemaCatalog",
    "Tenant",
    "TenantCommand",
    "TenantResult",
    "configured_tenants",
    "diff",
    "downgrade",
    "migrate_fleet",
    "revision_of",
    "run_fleet",
    "run_tenant",
    "schema_catalogs",
    "schema_states",
    "select_tenants",
    "settled",
    "startup_upgrade",
    "status",
    "upgrade",
    "verify",
    "warm",
]
