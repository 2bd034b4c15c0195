"""The Python API: every command the CLI offers, as functions on a `Project`.

A `Project` is a loaded configuration with one selected environment and,
optionally, a SQLAlchemy bind given by the caller. The CLI is a thin layer over
these functions; `schemashift.upgrade(engine)` and friends wrap them too.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import sqlalchemy as sa

from schemashift.planning import backups
from schemashift import config as config_module
from schemashift.dialects import REGISTRY, dialect_of, get_dialect
from schemashift.dialects.base import Dialect
from schemashift.autodetect.differ import RenameDecisions, diff as diff_schemas
from schemashift.errors import (
    ConfigError,
    ConnectionFailed,
    DatabaseStateError,
    DifferencesFound,
    SchemashiftError,
    UnmanagedDatabase,
    mask_secrets,
    remember_secret,
)
from schemashift.history.cache import schema_names_through, state_at
from schemashift.support.gcpause import paused
from schemashift.operations import Operation
from schemashift.planning.plan import DOWN, UP, Plan, build_plan, states_along
from schemashift.model.schema import Schema
from schemashift.model.validate import check_buildable
from schemashift.history.chain import History
from schemashift.history.loader import Migration
from schemashift.history.writer import write_migration
from schemashift.runtime.versions import AppliedRevision, Recorder

if TYPE_CHECKING:
    from schemashift.planning.lint import Finding
    from schemashift.support.progress import Reporter
    from schemashift.autodetect.filters import ObjectFilter

Output = Callable[[str], None]
Bind = sa.Engine | sa.Connection | str


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass
class Project:
    """A configuration, its selected environment and an optional caller-supplied bind."""

    config: config_module.Config
    env: config_module.EnvConfig
    url: str | None = None
    bind: sa.Engine | sa.Connection | None = None
    _history: History | None = field(default=None, repr=False)
    _filter: "ObjectFilter | None" = field(default=None, repr=False)

    # -- migrations and models --------------------------------------------

    def history(self) -> History:
        """The migration files, loaded once (unchanged files import lazily; see `schemashift.history.manifest`)."""
        if self._history is None:
            from schemashift.history.manifest import load_history

            self._history = load_history(self.config.migrations_dir, self.config.root, create_manifest=True)
        return self._history

    def reload_history(self) -> History:
        """The migration files, loaded again (after a command wrote one)."""
        self._history = None
        return self.history()

    def models(self) -> list[sa.MetaData]:
        """The configured models' MetaData objects."""
        return config_module.load_models(self.config)

    def model_schema(self) -> Schema:
        """The neutral schema of the models."""
        return _schema_of(self.models())

    # -- database ---------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection to the environment's database (or the caller's bind)."""
        if isinstance(self.bind, sa.Connection):
            yield self.bind
            return
        engine = self.bind if isinstance(self.bind, sa.Engine) else _engine(self.url, self.env)
        try:
            connection = _open(engine, self.url)
        except BaseException:
            if engine is not self.bind:
                engine.dispose()
            raise
        try:
            dialect_of(connection).session_setup(connection, self.env)  # schema, statement_timeout
            yield connection
        finally:
            connection.close()
            if engine is not self.bind:
                engine.dispose()

    def object_filter(self) -> "ObjectFilter":
        """What `exclude` and `include_object` leave out of comparisons (see `schemashift.autodetect.filters`)."""
        from schemashift.autodetect.filters import object_filter

        if self._filter is None:
            self._filter = object_filter([*self.config.exclude, *self.env.exclude], self.config.include_object,
                                         root=str(self.config.root))
        return self._filter

    def recorder(self, connection: sa.Connection) -> Recorder:
        """The version/history tables of this environment on `connection`."""
        return Recorder(connection, self.env.version_table, self.env.schema)

    @property
    def lock_name(self) -> str:
        """The name of the migration lock for this environment's version table."""
        return f"schemashift:{self.env.schema or ''}:{self.env.version_table}"


@paused()
def _schema_of(metadata: list[sa.MetaData]) -> Schema:
    """The neutral schema of SQLAlchemy `metadata` (no cyclic GC while thousands of objects are built)."""
    from schemashift.sqla.from_metadata import from_metadata

    return from_metadata(metadata)


def open_project(config_path: "str | Path | config_module.Config | None" = None, env: str | None = None, url: str | None = None,
                 *, bind: Bind | None = None) -> Project:
    """Load the configuration, select the environment and the database."""
    config = config_path if isinstance(config_path, config_module.Config) else config_module.load_config(config_path)
    if isinstance(bind, str):
        url, bind = bind, None
    env_config = config.env(env, url=url)
    resolved = url or env_config.url
    if bind is not None and not isinstance(bind, (sa.Engine, sa.Connection)):
        raise ConfigError(f"bind must be an SQLAlchemy Engine, Connection or URL string, not {type(bind).__name__}")
    if bind is not None:  # mask the caller's password too, wherever a message or log might quote it
        password = bind.engine.url.password
        remember_secret(password if isinstance(password, str) else None)
    return Project(config, env_config, resolved, bind)


def _engine(url: str | None, env: config_module.EnvConfig | None = None) -> sa.Engine:
    if not url:
        raise ConfigError("no database URL: set `url` for this environment or pass --url")
    try:
        parsed = sa.make_url(url)
    except Exception:  # noqa: BLE001 - sa raises several kinds for bad URLs
        raise ConfigError(f"invalid database URL {mask_secrets(url)!r}") from None
    remember_secret(parsed.password if isinstance(parsed.password, str) else None)
    dialect = get_dialect(parsed.get_backend_name())
    connect_timeout = env.connect_timeout if env is not None else config_module.ENV_DEFAULTS["connect_timeout"]
    try:
        engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool, **dialect.engine_options(parsed, connect_timeout))
    except ModuleNotFoundError as exc:
        extra = dialect.driver_extra
        hint = f"pip install 'schemashift[{extra}]'" if extra else "install the database driver"
        raise ConfigError(f"the driver for {parsed.drivername} is not installed ({exc.name}); {hint}") from None
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"cannot use database URL {parsed.render_as_string()}: {exc}") from None
    dialect.prepare_engine(engine, env.read_timeout if env is not None else None)
    return engine


def _open(engine: sa.Engine, url: str | None) -> sa.Connection:
    try:
        connection = engine.connect()
    except sa.exc.DBAPIError as exc:
        reason = " ".join(str(exc.orig).split())[:300]
        raise ConnectionFailed(f"cannot connect to {engine.url.render_as_string()}: {reason}") from None
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"invalid database URL: {exc}") from None
    dialect_of(connection).check_connection(connection)
    return connection


# -- reading the database's state --------------------------------------------


def integrity_problems(applied: dict[str, AppliedRevision], history: History) -> list[str]:
    """Differences between the version table and the migration files, one message each."""
    from schemashift.services.squash import replaced_by, reparented_only, squash_problems

    problems: list[str] = squash_problems(applied, history)
    replaced = replaced_by(history) if any(revision not in history for revision in applied) else {}
    for row in applied.values():
        migration = history.get(row.revision) if row.revision in history else None
        if migration is None and row.revision in replaced:
            continue  # stands for the squashed migration that replaces it (see `schemashift.services.squash`)
        if migration is None:
            problems.append(
                f"revision {row.revision} ({row.message!r}) is recorded in the database but its migration file "
                "is missing: restore it from version control"
            )
        elif migration.checksum != row.checksum and row.complete and not reparented_only(migration, history, row.checksum):
            problems.append(
                f"{migration.path.name} was edited after it was applied (checksum differs): revert the edit, "
                "or run `schemashift verify --accept` to record it"
            )
    return problems


def partial_problem(applied: dict[str, AppliedRevision]) -> str | None:
    """A message when a revision is partly applied, else None."""
    for row in applied.values():
        if not row.complete:
            how = "crashed" if row.state == "running" else "failed"
            detail = f" at: {row.failed_statement.strip().splitlines()[0][:100]}: {row.error}" if row.failed_statement else ""
            return (
                f"revision {row.revision} ({row.message!r}) is PARTLY {'applied' if row.direction == UP else 'reverted'}: "
                f"the run {how} after {row.statements_done} statement(s){detail}; run `schemashift repair`"
            )
    return None


def all_problems(applied: dict[str, AppliedRevision], history: History) -> list[str]:
    """A partly applied revision first, then every integrity problem."""
    partial = partial_problem(applied)
    return ([partial] if partial else []) + integrity_problems(applied, history)


def current_revision(applied: dict[str, AppliedRevision], history: History) -> str | None:
    """The newest applied revision of the chain (None: base); a squashed one counts once all it replaces ran."""
    from schemashift.services.squash import covered_squashes

    best: str | None = None
    best_index = -1
    covered = [m.revision for m in covered_squashes(applied, history)]
    for revision in [revision for revision, row in applied.items() if row.complete] + covered:
        if revision in history:
            index = history.index(revision)
            if index > best_index:
                best, best_index = revision, index
    return best


def _record_squashes(recorder: Recorder, history: History, out: Output) -> None:
    """Record each squashed migration whose replaced revisions all ran as applied, and drop their rows."""
    from schemashift.services.squash import covered_squashes
    from schemashift.runtime.versions import now

    covered = covered_squashes(recorder.applied(), history)
    if not covered:
        return
    with recorder.connection.begin():
        for migration in covered:
            started = now()
            recorder.insert(migration.revision, migration.parent, migration.checksum, migration.message, "applied")
            recorder.log(migration.revision, "squash", migration.checksum, migration.message, started, 0, "ok")
            for revision in migration.replaces:
                recorder.delete(revision)
            out(f"Recorded {migration.path.name} as applied: the database ran every migration it replaces.")


def checked_current(recorder: Recorder, history: History, *, strict: bool = True) -> str | None:
    applied = recorder.applied()
    problem = partial_problem(applied)
    if problem:
        raise DatabaseStateError(problem)
    if strict:
        problems = integrity_problems(applied, history)
        if problems:
            raise DatabaseStateError(problems[0] + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""))
    return current_revision(applied, history)


# -- upgrade / downgrade ------------------------------------------------------


def _confirm(project: Project, yes: bool, what: str) -> None:
    if not project.env.confirm or yes:
        return
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise SchemashiftError(f"environment {project.env.name!r} requires confirmation: pass --yes to {what}")
    answer = _answer(f"{what.capitalize()} on environment {project.env.name!r} ({masked_url(project)})? [y/N] ")
    if answer not in ("y", "yes"):
        raise SchemashiftError("aborted: not confirmed")


def _answer(prompt: str) -> str:
    """The user's answer to `prompt`, lower-cased; end of input is no answer (``""``)."""
    try:
        return input(prompt).strip().lower()
    except EOFError:
        print()
        return ""


def _context(project: Project, connection: sa.Connection):  # type: ignore[no-untyped-def]
    from schemashift.runtime.executor import MigrationContext

    return MigrationContext(connection, connection.dialect.name, project.env.name, dict(project.env.vars))


def _migrate(project: Project, target: str, direction: str, *, sql: bool, dry_run: bool, yes: bool,
             allow_data_loss: bool, out: Output, from_revision: str | None = None,
             reporter: "Reporter | None" = None) -> None:
    history = project.history()
    if from_revision is not None:
        if not sql:
            raise SchemashiftError("--from REV goes with --sql (offline SQL for a database at REV)")
        _print_offline(project, history, target, direction, from_revision, out, allow_data_loss=allow_data_loss)
        return
    if sql:
        _print_sql(project, history, target, direction, out, allow_data_loss=allow_data_loss)
        return
    with project.connect() as connection:
        dialect = dialect_of(connection)
        recorder = project.recorder(connection)
        if dry_run:
            current = checked_current(recorder, history)
            plan = _plan(history, dialect, current, target, direction)
            _refuse_unmanaged(connection, recorder, plan)
            plan = backups.prepare(connection, plan, project.env, allow_data_loss=allow_data_loss, dry_run=True)
            for line in plan.lines() + backups.rows_at_risk(connection, plan):
                out(line)
            return
        with dialect.lock(connection, project.lock_name, project.env.lock_timeout):
            current = checked_current(recorder, history)
            _record_squashes(recorder, history, out)
            plan = _plan(history, dialect, current, target, direction)
            _refuse_unmanaged(connection, recorder, plan)
            plan = backups.prepare(connection, plan, project.env, allow_data_loss=allow_data_loss)
            if plan.empty:
                out(f"Nothing to do: the database is at {current or 'base'}.")
                return
            _confirm(project, yes, f"{'upgrade' if direction == UP else 'downgrade'} to {plan.target or 'base'}")
            dialect.ensure_schema(connection, project.env.schema)  # confirmed: now the database may change
            recorder.ensure()
            from schemashift.runtime.executor import Executor

            Executor(connection, recorder, _context(project, connection), out, reporter).run(plan)
            if plan.target is not None:
                _remember_fingerprint(project, connection, plan.target, plan.steps[-1].after, check=True)
            out(f"Database is at {plan.target or 'base'}.")


def _created_tables(plan: Plan) -> set[str]:
    """The keys of every table the steps of an upgrade `plan` create (or rename a table to)."""
    from schemashift.operations import CreateTable, RenameTable
    from schemashift.model.schema import qualify

    created: set[str] = set()
    for step in plan.steps:
        for operation in step.operations:
            if isinstance(operation, CreateTable):
                created.add(operation.table.key)
            elif isinstance(operation, RenameTable):
                created.add(qualify(operation.new_name, operation.schema))
    return created


def unmanaged_problem(connection: sa.Connection, recorder: Recorder, wanted: set[str]) -> str | None:
    """Why the database cannot be upgraded from base: it already holds tables of `wanted`, with no history.

    Only when the version table is missing or empty: a database that schemashift
    never migrated. Tables the migrations never create may be there (another
    application's, say) and do not count. None when there is no such collision.
    """
    if not wanted or recorder.applied():
        return None
    from schemashift.planning.backups import PREFIX, REGISTRY
    from schemashift.model.schema import qualify

    inspector = sa.inspect(connection)
    own = recorder.own_tables | {REGISTRY}
    live: list[str] = []
    for schema in sorted({key.rsplit(".", 1)[0] if "." in key else None for key in wanted} | {None},
                         key=lambda name: name or ""):
        try:
            names = inspector.get_table_names(schema=schema)
        except sa.exc.DBAPIError:  # a schema that does not exist yet
            if connection.in_transaction():
                connection.rollback()
            continue
        live += [qualify(name, schema) for name in names if name not in own and not name.startswith(PREFIX)]
    if connection.in_transaction():
        connection.commit()
    clashes = sorted(key for key in live if key in wanted)
    if not clashes:
        return None
    alembic = "alembic_version" in live and "alembic_version" not in wanted
    tables = [key for key in live if not (alembic and key == "alembic_version")]
    named = clashes + sorted(set(tables) - set(clashes))
    shown = ", ".join(named[:4]) + (f" and {len(named) - 4} more" if len(named) > 4 else "")
    return (f"the database already holds {len(tables)} table(s) not created by schemashift ({shown}), "
            f"{len(clashes)} of which the migrations create{' (and an Alembic alembic_version table)' if alembic else ''}"
            ": bring it under schemashift with `schemashift baseline` (or `schemashift stamp REV`)")


def _refuse_unmanaged(connection: sa.Connection, recorder: Recorder, plan: Plan) -> None:
    """Stop an upgrade from base before its first statement when its tables already exist (see `unmanaged_problem`)."""
    if plan.direction != UP or plan.start is not None or plan.empty:
        return
    problem = unmanaged_problem(connection, recorder, _created_tables(plan))
    if problem:
        raise UnmanagedDatabase(f"cannot upgrade: {problem}; nothing was changed")


def _plan(history: History, dialect: Dialect, current: str | None, target: str, direction: str) -> Plan:
    goal = history.resolve(target, current)
    plan = build_plan(history, dialect, current, goal)
    if not plan.empty and plan.direction != direction:
        verb = "upgrade" if direction == UP else "downgrade"
        raise SchemashiftError(
            f"cannot {verb} to {target}: the database is at {current or 'base'}, use "
            f"`schemashift {'downgrade' if direction == UP else 'upgrade'} {target}`"
        )
    return plan


def _print_sql(project: Project, history: History, target: str, direction: str, out: Output, *,
               allow_data_loss: bool = False) -> None:
    from schemashift.planning.offline import offline_script

    with project.connect() as connection:
        dialect = dialect_of(connection)
        recorder = project.recorder(connection)
        current = checked_current(recorder, history)
        plan = _plan(history, dialect, current, target, direction)
        plan = backups.prepare(connection, plan, project.env, allow_data_loss=allow_data_loss)
        out(offline_script(plan, recorder))


def _print_offline(project: Project, history: History, target: str, direction: str, start: str, out: Output, *,
                   allow_data_loss: bool = False) -> None:
    """`--sql --from REV`: the script for a database at `start`, with no connection (the URL names the dialect)."""
    from schemashift.planning.offline import ScriptKey, offline_script, safe_key
    from schemashift.planning.safe import make_safe, settings_of

    backend = _backend_name(project)
    dialect = get_dialect(backend)
    current = history.resolve(start)
    plan = _plan(history, dialect, current, target, direction)
    allow = allow_data_loss or project.env.allow_data_loss
    plan = make_safe(plan, settings_of(project.env, dialect))
    plan = backups.protect(plan, keep=project.env.keep_data, allow_data_loss=allow, kept={},
                           registry_schema=project.env.schema)
    plan = dialect.adapt_offline(plan)
    recorder = Recorder(None, project.env.version_table, project.env.schema)  # type: ignore[arg-type] - tables only
    key = ScriptKey(backend, project.env.version_table, project.env.schema, project.env.keep_data, allow,
                    safe_key(project.env))
    out(offline_script(plan, recorder, create_version_table=current is None, remember=(history, key)))  # see cached_script


def _backend_name(project: Project) -> str:
    """The database kind of the project's bind or URL, without connecting."""
    if isinstance(project.bind, (sa.Engine, sa.Connection)):
        return project.bind.dialect.name
    if not project.url:
        raise ConfigError("no database URL: set `url` for this environment or pass --url (it names the SQL dialect)")
    try:
        return sa.make_url(project.url).get_backend_name()
    except Exception:  # noqa: BLE001 - sa raises several kinds for bad URLs
        raise ConfigError(f"invalid database URL {mask_secrets(project.url)!r}") from None


def upgrade(project: Project, target: str = "head", *, sql: bool = False, dry_run: bool = False, yes: bool = False,
            allow_data_loss: bool = False, out: Output = _print, from_revision: str | None = None,
            reporter: "Reporter | None" = None) -> None:
    """Upgrade the database to `target` (default head), under the migration lock.

    With `sql` and `from_revision` (a revision, or ``base``) the SQL is printed for
    a database at that revision, without connecting. `reporter` is told of each
    migration and statement as it starts (default: a line through `out` per migration).
    """
    _migrate(project, target, UP, sql=sql, dry_run=dry_run, yes=yes, allow_data_loss=allow_data_loss, out=out,
             from_revision=from_revision, reporter=reporter)


def downgrade(project: Project, target: str, *, sql: bool = False, dry_run: bool = False, yes: bool = False,
              allow_data_loss: bool = False, out: Output = _print, from_revision: str | None = None,
              reporter: "Reporter | None" = None) -> None:
    """Downgrade the database to `target` (``-N``, a revision or prefix, or ``base``); `reporter` as for `upgrade`."""
    _migrate(project, target, DOWN, sql=sql, dry_run=dry_run, yes=yes, allow_data_loss=allow_data_loss, out=out,
             from_revision=from_revision, reporter=reporter)


# -- generate / check ---------------------------------------------------------


def head_schema(history: History) -> Schema:
    """The schema the migrations produce at head, with no database (cached: `schemashift.history.cache`)."""
    from schemashift.history.cache import state_at

    return state_at(history, history.head)


def _decisions(project: Project, rename_tables: list[tuple[str, str]], rename_columns: list[tuple[str, str, str]],
               no_rename: bool, interactive: bool, defaults: Mapping[str, object] | None = None,
               settle_fills: bool = False) -> RenameDecisions:
    from schemashift.autodetect.questioner import TerminalQuestioner
    from schemashift.sqla.from_metadata import rename_hints
    from schemashift.model.schema import qualify

    decisions = RenameDecisions(no_rename=no_rename, fills=dict(defaults or {}), settle_fills=settle_fills)
    if interactive:
        decisions.questioner = TerminalQuestioner()
    hints = rename_hints(project.models())
    for new_key, old_name in hints.tables.items():
        schema = new_key.rsplit(".", 1)[0] if "." in new_key else None
        decisions.tables[qualify(old_name, schema)] = new_key.rsplit(".", 1)[-1]
    for (table_key, new_name), old_name in hints.columns.items():
        decisions.columns[(table_key, old_name)] = new_name
    for old, new in rename_tables:
        decisions.tables[old] = new.rsplit(".", 1)[-1]
    for table, old, new in rename_columns:
        decisions.columns[(table, old)] = new
    return decisions


@paused()
def pending_operations(project: Project, *, rename_tables: list[tuple[str, str]] | None = None,
                       rename_columns: list[tuple[str, str, str]] | None = None, no_rename: bool = False,
                       interactive: bool = False, defaults: Mapping[str, object] | None = None,
                       settle_fills: bool = False) -> list[Operation]:
    """Operations that bring the migrations' head schema to the models.

    `defaults` and `settle_fills`: one-off values for the existing rows of added NOT NULL columns (see `differ`).
    """
    history = project.history()
    decisions = _decisions(project, rename_tables or [], rename_columns or [], no_rename, interactive, defaults,
                           settle_fills)
    head, models, keep = head_schema(history), project.model_schema(), project.object_filter()
    check_buildable(models, {
        dialect.name: (dialect.max_identifier_length, dialect.identifier_length_in_bytes)
        for dialect in target_dialects(project)
    })
    head, models = keep.apply(head, reflected=False, other=models), keep.apply(models, reflected=False, other=head)
    return diff_schemas(head, models, decisions)


def target_dialects(project: Project) -> list[Dialect]:
    """The databases the project's environments use (those whose URL resolves); all supported ones when none does.

    `generate` has no database: it checks the models against these (see `schema.validate`).
    """
    found: dict[str, Dialect] = {}
    config = project.config
    for name in config.env_names:
        try:
            url = config.env(name).url
            backend = sa.make_url(url).get_backend_name() if url else None
            if backend:
                dialect = get_dialect(backend)
                found[dialect.name] = dialect
        except (SchemashiftError, sa.exc.ArgumentError, ValueError):
            continue  # e.g. ${DATABASE_URL} unset here
    if not found:
        found = {dialect.name: dialect for dialect in map(get_dialect, sorted(REGISTRY))}
    return list(found.values())


def generate(project: Project, message: str, *, empty: bool = False, rename_tables: list[tuple[str, str]] | None = None,
             rename_columns: list[tuple[str, str, str]] | None = None, no_rename: bool = False,
             interactive: bool = False, defaults: Mapping[str, object] | None = None,
             out: Output = _print) -> Path | None:
    """Write a migration for the difference between models and migrations (None when there is none).

    A NOT NULL column without a default added to an existing table needs a one-off value for the rows
    already there: from `defaults` (``{"table.column": value}``), else asked when `interactive`, else
    `differ.FillUndecided` is raised and nothing is written.
    """
    if not message.strip():
        raise SchemashiftError("a migration needs a message: -m 'what it does'")
    history = project.history()
    operations: list[Operation] = []
    if not empty:
        operations = pending_operations(project, rename_tables=rename_tables, rename_columns=rename_columns,
                                        no_rename=no_rename, interactive=interactive, defaults=defaults,
                                        settle_fills=True)
        if not operations:
            out("No changes: the models match the migrations. Nothing written.")
            return None
    migration = write_migration(project.config.migrations_dir, message, operations, parent=history.head)
    project._history = None
    out(f"Wrote {_relative(migration.path)} ({migration.revision}):")
    for operation in operations:
        out(f"  - {operation.describe()}")
    return migration.path


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def check(project: Project, *, out: Output = _print) -> bool:
    """True when the models and the migrations agree; prints what differs otherwise."""
    operations = pending_operations(project, no_rename=True)
    if not operations:
        out("OK: the models match the migrations.")
        return True
    out(f"The models differ from the migrations ({len(operations)} change(s)); run `schemashift generate`:")
    for operation in operations:
        out(f"  - {operation.describe()}")
    return False


# -- status / history / diff ----------------------------------------------------


@dataclass
class StatusReport:
    """What `status` shows."""

    env: str
    url: str
    current: str | None
    head: str | None
    pending: list[str]
    problems: list[str]
    schema_matches: bool | None
    differences: list[str]
    unknown: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "env": self.env, "url": self.url, "current": self.current, "head": self.head,
            "pending": self.pending, "problems": self.problems, "schema_matches": self.schema_matches,
            "differences": self.differences, "unknown_revisions": self.unknown, "notes": self.notes,
            "exit_code": self.exit_code,
        }

    @property
    def exit_code(self) -> int:
        """For scripts: 0 up to date and clean, 1 pending migrations or drift, 2 a problem needing action."""
        if self.problems:
            return 2
        return 1 if self.pending or self.schema_matches is False else 0

    def lines(self) -> list[str]:
        """Human-readable lines."""
        current = self.current or "base"
        if self.unknown:
            current = f"{', '.join(self.unknown)} (recorded in the database; no such migration file here)"
        out = [f"Environment: {self.env} ({self.url})", f"Current revision: {current}",
               f"Head revision: {self.head or 'base'}"]
        out.append(f"Pending: {len(self.pending)}" + ("" if not self.pending else ": " + ", ".join(self.pending)))
        out.extend(f"Note: {note}" for note in self.notes)
        out.extend(f"PROBLEM: {p}" for p in self.problems)
        if self.schema_matches is not None:
            out.append("Live schema matches the migrations." if self.schema_matches else "Live schema DRIFTS from the migrations:")
            out.extend(f"  - {d}" for d in self.differences)
        return out


def masked_url(project: Project) -> str:
    """The database URL with its password hidden."""
    if isinstance(project.bind, (sa.Engine, sa.Connection)):
        return project.bind.engine.url.render_as_string(hide_password=True)
    return mask_secrets(project.url or "")


def status(project: Project) -> StatusReport:
    """The database's revision, pending migrations, problems and drift (a database not created yet stays so)."""
    history = project.history()
    if _not_created(project):
        pending = [m.revision for m in history.chain]
        return StatusReport(project.env.name, masked_url(project), None, history.head, pending, [], None, [],
                            notes=["the database does not exist yet: `schemashift upgrade` creates it"])
    with project.connect() as connection:
        recorder = project.recorder(connection)
        applied = recorder.applied()
        problems = all_problems(applied, history)
        partial = partial_problem(applied)
        current = current_revision(applied, history)
        pending = [m.revision for m in history.upgrade_path(current, history.head)]
        unknown = [row.revision for row in applied.values() if row.complete and row.revision not in history]
        expected = state_at(history, current)
        unmanaged = None if partial or current is not None else \
            unmanaged_problem(connection, recorder, set(state_at(history, history.head).tables))
        if unmanaged:
            problems.append(unmanaged)  # instead of its drift, which would list every table as a drop
        differences = live_differences(project, connection, expected) if not (partial or unmanaged) else []
        if current is not None and current == history.head and not differences and not problems:
            _remember_fingerprint(project, connection, current, expected, check=False)
    return StatusReport(project.env.name, masked_url(project), current, history.head, pending, problems,
                        None if partial or unmanaged or unknown else not differences, differences, unknown)


def _not_created(project: Project) -> bool:
    """True when the project's URL names a database that connecting would create (a new SQLite file)."""
    if project.bind is not None or not project.url:
        return False
    try:
        url = sa.make_url(project.url)
        dialect = get_dialect(url.get_backend_name())
    except Exception:  # noqa: BLE001 - a bad URL is reported where the database is opened
        return False
    dialect.check_settings(project.env)
    return dialect.database_missing(url)


def _live_schemas(project: Project, expected: Schema) -> list[str | None]:
    """The schemas to reflect: the default one (the env's `schema`, via search_path) and every other one
    the expected schema or any revision of the migrations puts tables or sequences in (so that what a
    removed schema still holds shows up)."""
    named = set(expected.schema_names)
    try:
        history = project.history()
        named |= schema_names_through(history, history.head)
    except SchemashiftError:
        pass  # unreadable migrations: the expected schema alone decides
    return [None, *sorted(named - {project.env.schema, None})]


def _live_operations(project: Project, connection: sa.Connection, expected: Schema) -> list[Operation]:
    """Operations that would turn the live schema into `expected`, both normalised for this database."""
    schemas = _live_schemas(project, expected)
    return compare_schemas(connection, expected, schemas=schemas, exclude=project.recorder(connection).own_tables,
                           keep=project.object_filter())


@paused()
def compare_schemas(connection: sa.Connection, expected: Schema, *, schemas: list[str | None] | None = None,
                    exclude: "set[str] | frozenset[str]" = frozenset(),
                    keep: "ObjectFilter | None" = None) -> list[Operation]:
    """Operations that turn the database behind `connection` into `expected` (renames never guessed).

    Reflects `schemas` (default: the default schema) leaving out `exclude`d tables
    and, on both sides, what `keep` leaves out; normalises both sides for the
    database and diffs them. Commits a transaction the reflection opened.
    """
    dialect = dialect_of(connection)
    live = _reflect_live(connection, schemas or [None], exclude)
    if keep is not None:
        live, expected = (keep.apply(live, reflected=True, other=expected),
                          keep.apply(expected, reflected=False, other=live))
    return diff_schemas(dialect.normalize(live), dialect.normalize(expected), RenameDecisions(no_rename=True))


def _reflect_live(connection: sa.Connection, schemas: list[str | None],
                  exclude: "set[str] | frozenset[str]" = frozenset()) -> Schema:
    """The live schema of `schemas`, committing the transaction the reflection opened."""
    live = dialect_of(connection).reflect(connection, schemas=schemas, exclude=exclude)
    if connection.in_transaction():
        connection.commit()
    return live


def _schemas_to_compare(schema_names: "set[str | None]") -> list[str | None]:
    return [None, *sorted(name for name in schema_names if name is not None)]


@paused()
def compare(connection: sa.Connection, metadata: "sa.MetaData | list[sa.MetaData]") -> list[Operation]:
    """Operations that turn the database behind `connection` into the models of `metadata`.

    The counterpart of Alembic's ``compare_metadata``, without a project or a
    configuration: ``[op.describe() for op in schemashift.api.compare(conn, Base.metadata)]``.
    Where the catalogue comes from a server (and the connection is not async),
    it is read on a worker thread while this one converts and normalises the
    models; the connection is used by one thread at a time.
    """
    metadatas = metadata if isinstance(metadata, list) else [metadata]
    dialect = dialect_of(connection)
    if not dialect.remote_catalogue or getattr(connection.dialect, "is_async", False):
        expected = _schema_of(metadatas)
        return compare_schemas(connection, expected, schemas=_schemas_to_compare(expected.schema_names))
    from concurrent.futures import ThreadPoolExecutor

    from schemashift.sacompat import metadata_sequences

    named = {t.schema for m in metadatas for t in m.tables.values()} | {s.schema for m in metadatas
                                                                         for s in metadata_sequences(m)}
    schemas = _schemas_to_compare(named)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="schemashift-reflect") as worker:
        reading = worker.submit(_reflect_live, connection, schemas)
        try:
            expected = _schema_of(metadatas)
            canonical = dialect.normalize(expected)
        finally:
            live = reading.result()  # the worker is done with the connection before anything else uses it
    wanted = _schemas_to_compare(expected.schema_names)
    if wanted != schemas:  # a schema only the conversion names
        live = _reflect_live(connection, wanted)
    return diff_schemas(dialect.normalize(live), canonical, RenameDecisions(no_rename=True))


def live_differences(project: Project, connection: sa.Connection, expected: Schema) -> list[str]:
    return [op.describe() for op in _live_operations(project, connection, expected)]


def _remember_fingerprint(project: Project, connection: sa.Connection, revision: str, expected: Schema, *,
                          check: bool) -> None:
    """Store the live catalog fingerprint with `revision` when the live schema matches `expected`.

    With `check` the real drift check runs first (the caller has not). The fast
    `status` (`schemashift.runtime.fast`) trusts a matching fingerprint instead of
    reflecting. Best effort: any failure only leaves the fast path unused.
    """
    from schemashift.runtime.fingerprint import fingerprint, stored_value

    if project.config.exclude or project.env.exclude or project.config.include_object:
        return  # the fast `status` knows nothing of exclude/include_object: a change to them must not go unseen
    recorder = project.recorder(connection)
    try:
        if check and live_differences(project, connection, expected):
            return
        if not recorder.has_fingerprint_column():
            return
        schemas = _live_schemas(project, expected)
        if connection.in_transaction():
            connection.commit()
        with connection.begin():
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                digest = fingerprint(cursor, connection.dialect.name, schemas, sorted(recorder.own_tables))
            finally:
                cursor.close()
            value = stored_value(digest, [name for name in schemas if name is not None])
            if len(value) <= recorder.version.c.fingerprint.type.length:
                recorder.update(revision, fingerprint=value)
    except Exception:  # noqa: BLE001 - an optional speed-up must never fail the command
        if connection.in_transaction():
            connection.rollback()


def history(project: Project, *, applied: bool = False) -> list[dict[str, Any]]:
    """The migration chain (base to head), or with `applied` the database's apply/revert log."""
    chain = project.history()
    if applied:
        with project.connect() as connection:
            return project.recorder(connection).history_rows()
    rows: list[dict[str, Any]] = []
    for migration in chain.chain:
        rows.append({"revision": migration.revision, "parent": migration.parent, "message": migration.message,
                     "file": migration.path.name, "checksum": migration.checksum})
    return rows


def lint(project: Project, spec: str | None = None, *, every: bool = False) -> "list[Finding]":
    """Lint findings for migrations: `spec` (``REV`` or ``REV..REV``), all with `every`, else those not yet
    applied to the environment's database; judged for the environment's database (no connection needed
    unless the pending ones are asked for)."""
    from schemashift.planning.lint import lint_migration
    from schemashift.planning.safe import settings_of

    history = project.history()
    dialect = get_dialect(_backend_name(project))
    migrations = _lint_selection(project, history, spec, every)
    states = states_along(history)
    findings = []
    for migration in migrations:
        findings.extend(lint_migration(migration, states[migration.parent], dialect,
                                       statement_timeout=project.env.statement_timeout,
                                       safe=settings_of(project.env, dialect) is not None))
    return findings


def _lint_selection(project: Project, history: History, spec: str | None, every: bool) -> list[Migration]:
    if every:
        return list(history.chain)
    if spec is None:
        with project.connect() as connection:
            current = checked_current(project.recorder(connection), history, strict=False)
        return history.upgrade_path(current, history.head)
    first, sep, last = spec.partition("..")
    if not sep:
        revision = history.resolve(first)
        if revision is None:
            raise SchemashiftError("lint REV: name a revision, not base")
        return [history.get(revision)]
    start = history.resolve(first) if first else None
    end = history.resolve(last) if last else history.head
    chain = history.chain
    low = history.index(start) if start else 0
    return chain[low : history.index(end) + 1]


def erd(project: Project, *, fmt: str = "mermaid", live: bool = False) -> str:
    """A diagram of the models (or, with `live`, of the database) as Mermaid or Graphviz text."""
    from schemashift.services.erd import FORMATS, render

    if fmt not in FORMATS:
        raise SchemashiftError(f"erd --format takes {' or '.join(FORMATS)}, not {fmt!r}")
    keep = project.object_filter()  # what `exclude`/`include_object` leave out of diff, status… is left out here too
    if not live:
        return render(keep.apply(project.model_schema(), reflected=False), fmt)
    with project.connect() as connection:
        schema = _reflect_live(connection, [None], set(project.recorder(connection).own_tables))
    return render(keep.apply(schema, reflected=True), fmt)


@dataclass
class DiffReport:
    """What `diff` found between the live database and the models or the migrations."""

    against: str
    operations: list[Operation]

    @property
    def empty(self) -> bool:
        """True when nothing differs."""
        return not self.operations

    def lines(self) -> list[str]:
        """Human-readable lines."""
        if self.empty:
            return [f"No differences between the database and the {self.against}."]
        return [f"The database differs from the {self.against}:"] + [f"  - {op.describe()}" for op in self.operations]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"against": self.against, "differences": [op.describe() for op in self.operations],
                "operations": [type(op).__name__ for op in self.operations]}


def diff(project: Project, *, against: str = "models") -> DiffReport:
    """Differences between the live database and the models (or the migrations at its revision)."""
    if against not in ("models", "migrations"):
        raise SchemashiftError("--against takes 'models' or 'migrations'")
    history = project.history()
    with project.connect() as connection:
        if against == "models":
            expected = project.model_schema()
        else:
            expected = state_at(history, checked_current(project.recorder(connection), history, strict=False))
        return DiffReport(against, _live_operations(project, connection, expected))


def require_clean(report: DiffReport) -> None:
    """Raise DifferencesFound when `report` is not empty."""
    if not report.empty:
        raise DifferencesFound(f"{len(report.operations)} difference(s) found")


def envs(project: "Project | config_module.Config | str | Path | None" = None) -> list[dict[str, Any]]:
    """Every configured environment: masked URL, reachable, revision, pending count, drift (see `environments`)."""
    from schemashift.services.environments import envs as _envs

    return _envs(project)


# -- integrity: verify / repair --------------------------------------------------


def verify(project: Project, *, accept: bool = False, out: Output = _print) -> bool:
    """Check the version table against the migration files; `accept` records edited checksums."""
    history = project.history()
    with project.connect() as connection:
        recorder = project.recorder(connection)
        applied = recorder.applied()
        problems = all_problems(applied, history)
        if accept:
            problems = _accept_edits(project, connection, recorder, applied, history, problems, out)
    for problem in problems:
        out(f"PROBLEM: {problem}")
    if not problems:
        out(f"OK: {len(applied)} applied revision(s) match their migration files; the chain of "
            f"{len(history.chain)} migration(s) is linear.")
    return not problems


def _accept_edits(project: Project, connection: sa.Connection, recorder: Recorder,
                  applied: dict[str, AppliedRevision], history: History, problems: list[str], out: Output) -> list[str]:
    from schemashift.runtime.versions import now

    edited = [row for row in applied.values()
              if row.complete and row.revision in history and history.get(row.revision).checksum != row.checksum]
    with connection.begin():
        for row in edited:
            migration = history.get(row.revision)
            recorder.update(row.revision, checksum=migration.checksum)
            recorder.log(row.revision, "accept", migration.checksum, migration.message, now(), 0, "accepted")
            out(f"accepted the edit of {migration.path.name} (new checksum recorded)")
    return [p for p in integrity_problems(recorder.applied(), history)] + [p for p in problems if "PARTLY" in p]


def repair(project: Project, *, action: str | None = None, out: Output = _print,
           reporter: "Reporter | None" = None) -> None:
    """Continue or undo a partly applied migration (see `schemashift.runtime.repair`); `reporter` as for `upgrade`."""
    from schemashift.runtime.executor import Executor
    from schemashift.runtime.repair import ACTIONS, describe_partial, run_repair

    history = project.history()
    with project.connect() as connection:
        dialect = dialect_of(connection)
        recorder = project.recorder(connection)
        with dialect.lock(connection, project.lock_name, project.env.lock_timeout):
            partial = [row for row in recorder.applied().values() if not row.complete]
            if not partial:
                out("Nothing to repair: no migration is partly applied.")
                return
            row = partial[0]
            out(describe_partial(row))
            if action is None:
                action = _ask_repair_action()
            if action not in ACTIONS:
                raise SchemashiftError(f"repair takes 'continue' or 'undo', not {action!r}")
            executor = Executor(connection, recorder, _context(project, connection), out, reporter)
            run_repair(project, connection, executor, row, action, out)
            current = current_revision(recorder.applied(), history)
            out(f"Repaired: the database is at {current or 'base'}.")


def _ask_repair_action() -> str:
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise SchemashiftError(
            "choose how to repair: `schemashift repair continue` (run the rest once the cause is fixed) "
            "or `schemashift repair undo` (revert the statements that ran)"
        )
    answer = _answer("Continue from the failed statement, or undo what ran? [continue/undo] ")
    return {"c": "continue", "u": "undo"}.get(answer, answer)


def rebase(project: Project, *, out: Output = _print) -> None:
    """Make a forked migrations folder linear again (see `schemashift.history.rebase.rebase`); no database access."""
    from schemashift.history.chain import load_all
    from schemashift.history.rebase import rebase as rebase_folder

    folder = project.config.migrations_dir
    parents_before = {migration.revision: migration.parent for migration in load_all(folder)}
    rebase_folder(folder, out=out)
    project._history = None
    history = project.history()
    for migration in history:
        old_parent = parents_before.get(migration.revision, migration.parent)
        if old_parent == migration.parent:
            continue
        skipped = history.chain[history.index(old_parent) + 1 : history.index(migration.revision)]
        out(f"Note: {migration.path.name} was edited (new parent). A database that already applied "
            f"{migration.revision} needs `schemashift verify --accept`, and lacks "
            f"{', '.join(m.path.name for m in skipped)}, which `upgrade` will not apply there.")


def squash(project: Project, message: str, *, start: str | None = None, end: str | None = None,
           out: Output = _print) -> Path:
    """Replace the migrations from `start` (default: the first) to `end` (default: head) by one; no database access."""
    from schemashift.services.squash import squash as squash_folder

    migration = squash_folder(project.config.migrations_dir, project.history(), message, start=start, end=end, out=out)
    project._history = None
    return migration.path


def baseline(project: Project, message: str = "baseline", *, after: str | None = None,
             alembic_dir: "str | Path | None" = None, drop_alembic_version: bool = False,
             out: Output = _print) -> Path | None:
    """Write a first migration that creates the database's existing schema and record it as applied without
    running it (`after` ``"head"``: the difference from the existing chain's head); see `schemashift.services.baseline`."""
    from schemashift.services.baseline import baseline as _baseline

    return _baseline(project, message, after=after, alembic_dir=alembic_dir,
                     drop_alembic_version=drop_alembic_version, out=out)


def stamp(project: Project, revision: str, *, force: bool = False, alembic_dir: "str | Path | None" = None,
          drop_alembic_version: bool = False, out: Output = _print) -> None:
    """Record `revision` as applied where the live schema is its state (`force`: anyway, noted); no DDL."""
    from schemashift.services.baseline import stamp as _stamp

    _stamp(project, revision, force=force, alembic_dir=alembic_dir, drop_alembic_version=drop_alembic_version,
           out=out)


def backups_list(project: Project) -> list[dict[str, Any]]:
    """Every backup of dropped or narrowed data, oldest first (see `schemashift.planning.backups`)."""
    return backups.list_backups(project)


def backups_prune(project: Project, older_than: str, out: Output = _print) -> int:
    """Drop backups older than `older_than` (``30d``, ``12h``, ``90m``, ``1w``); returns how many."""
    return backups.prune(project, older_than, out)


def test_migrations(project: Project, *, out: Output = _print) -> bool:
    """The stairway check: upgrade, downgrade and upgrade again each revision (see `schemashift.services.stairway`)."""
    from schemashift.services.stairway import test_migrations as _test_migrations

    return _test_migrations(project, out=out)


__all__ = [
    "Project", "open_project", "upgrade", "downgrade", "generate", "check", "status", "history", "diff",
    "StatusReport", "DiffReport", "pending_operations", "head_schema", "Migration", "verify", "repair",
    "envs", "baseline", "stamp",
]
