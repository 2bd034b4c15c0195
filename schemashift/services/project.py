"""The `Project` every command works on, and the checks of a database's version table against the migrations.

A `Project` is a loaded configuration with one selected environment and,
optionally, a SQLAlchemy bind given by the caller (`open_project`). It loads
the migration files once, opens connections to the environment's database
(`connect`: engine from the URL, the dialect's session set-up) and names the
version table and the migration lock. The functions below read the version
table's rows against the migration files: a partly applied revision, an edited
or missing file, a squash only partly run (`all_problems`), and the revision
the database stands at (`current_revision`, `checked_current`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift import config as config_module
from schemashift.dialects import dialect_of, get_dialect
from schemashift.errors import ConfigError, ConnectionFailed, DatabaseStateError, mask_secrets, remember_secret
from schemashift.model.schema import Schema
from schemashift.planning.plan import UP
from schemashift.runtime.versions import AppliedRevision, Recorder
from schemashift.services.squash import covered_squashes, reparented_only, replaced_by, squash_problems
from schemashift.support.gcpause import paused

if TYPE_CHECKING:
    from schemashift.autodetect.filters import ObjectFilter
    from schemashift.history.chain import History
    from schemashift.runtime.executor import MigrationContext

Output = Callable[[str], None]
Bind = sa.Engine | sa.Connection | str


def print_line(line: str) -> None:
    """The default `Output` of commands: the line on stdout, flushed."""
    print(line, flush=True)


@dataclass
class Project:
    """A configuration, its selected environment and an optional caller-supplied bind."""

    config: config_module.Config
    env: config_module.EnvConfig
    url: str | None = None
    bind: sa.Engine | sa.Connection | None = None
    _history: History | None = field(default=None, init=False, repr=False)
    _filter: ObjectFilter | None = field(default=None, init=False, repr=False)

    # -- migrations and models --------------------------------------------

    def history(self) -> History:
        """The migration files, loaded once (unchanged files import lazily; see `schemashift.history.manifest`)."""
        if self._history is None:
            from schemashift.history.manifest import load_history

            self._history = load_history(self.config.migrations_dir, self.config.root, create_manifest=True)
        return self._history

    def reload_history(self) -> History:
        """The migration files, loaded again (after a command wrote one)."""
        self.forget_history()
        return self.history()

    def forget_history(self) -> None:
        """Load the migration files again when next asked (a command changed the folder)."""
        self._history = None

    def use_history(self, history: History) -> None:
        """Use `history`, already loaded by the caller, as this project's migrations."""
        self._history = history

    @property
    def manifest_state(self) -> str | None:
        """How ``schemashift.sum`` compared when the migrations were loaded (None: not loaded or not checked)."""
        state = getattr(self._history, "manifest_state", None)
        return state if isinstance(state, str) else None

    def models(self) -> list[sa.MetaData]:
        """The configured models' MetaData objects."""
        return config_module.load_models(self.config)

    def model_schema(self) -> Schema:
        """The neutral schema of the models."""
        return schema_of(self.models())

    # -- database ---------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection to the environment's database (or the caller's bind)."""
        if isinstance(self.bind, sa.Connection):
            yield self.bind
            return
        engine = self.bind if isinstance(self.bind, sa.Engine) else open_engine(self.url, self.env)
        try:
            with self._session(engine) as connection:
                yield connection
        finally:
            if engine is not self.bind:
                engine.dispose()

    @contextmanager
    def connect_beside(self, connection: sa.Connection) -> Iterator[sa.Connection]:
        """Another connection to the database of `connection`, on its engine (which knows the server already),
        set up as `connect` sets one up; the caller's bind when that is a connection."""
        if isinstance(self.bind, sa.Connection):
            yield self.bind
            return
        with self._session(connection.engine) as other:
            yield other

    @contextmanager
    def _session(self, engine: sa.Engine) -> Iterator[sa.Connection]:
        """A connection from `engine` with this environment's session settings (schema, statement_timeout)."""
        connection = open_connection(engine)
        try:
            dialect_of(connection).session_setup(connection, self.env)
            yield connection
        finally:
            connection.close()

    def object_filter(self) -> ObjectFilter:
        """What `exclude` and `include_object` leave out of comparisons (see `schemashift.autodetect.filters`)."""
        from schemashift.autodetect.filters import object_filter

        if self._filter is None:
            self._filter = object_filter([*self.config.exclude, *self.env.exclude], self.config.include_object,
                                         root=str(self.config.root))
        return self._filter

    def recorder(self, connection: sa.Connection) -> Recorder:
        """The version/history tables of this environment on `connection`."""
        return Recorder(connection, self.env.version_table, self.env.schema)

    def migration_context(self, connection: sa.Connection) -> MigrationContext:
        """What migration code sees while it runs on `connection` (environment name and vars)."""
        from schemashift.runtime.executor import MigrationContext

        return MigrationContext(connection, connection.dialect.name, self.env.name, dict(self.env.vars))

    @property
    def lock_name(self) -> str:
        """The name of the migration lock for this environment's version table."""
        return f"schemashift:{self.env.schema or ''}:{self.env.version_table}"


@paused()
def schema_of(metadata: list[sa.MetaData]) -> Schema:
    """The neutral schema of SQLAlchemy `metadata` (no cyclic GC while thousands of objects are built)."""
    from schemashift.sqla.from_metadata import from_metadata

    return from_metadata(metadata)


def open_project(config_path: str | Path | config_module.Config | None = None, env: str | None = None,
                 url: str | None = None, *, bind: Bind | None = None) -> Project:
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


# -- engines and connections --------------------------------------------------


def open_engine(url: str | None, env: config_module.EnvConfig | None = None) -> sa.Engine:
    """An engine (no pool) for `url` with the dialect's options and `env`'s timeouts; bad input is a ConfigError."""
    if not url:
        raise ConfigError("no database URL: set `url` for this environment or pass --url")
    try:
        parsed = sa.make_url(url)
    except Exception:  # noqa: BLE001 - broad on purpose: sa raises several kinds for bad URLs
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
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several kinds for unusable URLs
        raise ConfigError(f"cannot use database URL {parsed.render_as_string()}: {exc}") from None
    dialect.prepare_engine(engine, env.read_timeout if env is not None else None)
    return engine


def open_connection(engine: sa.Engine) -> sa.Connection:
    """A connection from `engine`; a server that does not answer or a bad URL is one clear error."""
    try:
        connection = engine.connect()
    except sa.exc.DBAPIError as exc:
        reason = " ".join(str(exc.orig).split())[:300]
        raise ConnectionFailed(f"cannot connect to {engine.url.render_as_string()}: {reason}") from None
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"invalid database URL: {exc}") from None
    dialect_of(connection).check_connection(connection)
    return connection


def backend_name(project: Project) -> str:
    """The database kind of the project's bind or URL, without connecting."""
    if isinstance(project.bind, (sa.Engine, sa.Connection)):
        return project.bind.dialect.name
    if not project.url:
        raise ConfigError("no database URL: set `url` for this environment or pass --url (it names the SQL dialect)")
    try:
        return sa.make_url(project.url).get_backend_name()
    except Exception:  # noqa: BLE001 - broad on purpose: sa raises several kinds for bad URLs
        raise ConfigError(f"invalid database URL {mask_secrets(project.url)!r}") from None


def masked_url(project: Project) -> str:
    """The database URL with its password hidden."""
    if isinstance(project.bind, (sa.Engine, sa.Connection)):
        return project.bind.engine.url.render_as_string(hide_password=True)
    return mask_secrets(project.url or "")


def not_created(project: Project) -> bool:
    """True when the project's URL names a database that connecting would create (a new SQLite file)."""
    if project.bind is not None or not project.url:
        return False
    try:
        url = sa.make_url(project.url)
        dialect = get_dialect(url.get_backend_name())
    except Exception:  # noqa: BLE001 - broad on purpose: a bad URL is reported where the database is opened
        return False
    dialect.check_settings(project.env)
    return dialect.database_missing(url)


# -- reading the database's state --------------------------------------------


def integrity_problems(applied: dict[str, AppliedRevision], history: History) -> list[str]:
    """Differences between the version table and the migration files, one message each."""
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
        elif (migration.checksum != row.checksum and row.complete
              and not reparented_only(migration, history, row.checksum)):
            problems.append(
                f"{migration.path.name} was edited after it was applied (checksum differs): revert the edit, "
                "or run `schemashift verify --accept` to record it"
            )
    return problems


def partial_problem(applied: dict[str, AppliedRevision]) -> str | None:
    """A message when a revision is partly applied (or a fresh build did not finish), else None."""
    for row in applied.values():
        if row.building:
            return (f"a fresh build to revision {row.revision} ({row.message!r}) is running or was interrupted: "
                    "`schemashift upgrade` takes back the tables it created and builds again "
                    "(`schemashift repair` when one of them holds rows)")
        if not row.complete:
            how = "crashed" if row.state == "running" else "failed"
            statement = row.failed_statement.strip().splitlines()[0][:100] if row.failed_statement else ""
            detail = f" at: {statement}: {row.error}" if row.failed_statement else ""
            partly = "applied" if row.direction == UP else "reverted"
            ran = (f"the run {how} after {row.statements_done} statement(s){detail}" if row.statements_done else
                   f"the run {how} before any of its statements completed{detail}")
            return f"revision {row.revision} ({row.message!r}) is PARTLY {partly}: {ran}; run `schemashift repair`"
    return None


def all_problems(applied: dict[str, AppliedRevision], history: History) -> list[str]:
    """A partly applied revision first, then every integrity problem."""
    partial = partial_problem(applied)
    return ([partial] if partial else []) + integrity_problems(applied, history)


def current_revision(applied: dict[str, AppliedRevision], history: History) -> str | None:
    """The newest applied revision of the chain (None: base); a squashed one counts once all it replaces ran."""
    best: str | None = None
    best_index = -1
    covered = [m.revision for m in covered_squashes(applied, history)]
    for revision in [revision for revision, row in applied.items() if row.complete] + covered:
        if revision in history:
            index = history.index(revision)
            if index > best_index:
                best, best_index = revision, index
    return best


def checked_current(recorder: Recorder, history: History, *, strict: bool = True) -> str | None:
    """The database's revision; a partly applied one (and, when `strict`, any integrity problem) raises."""
    applied = recorder.applied()
    problem = partial_problem(applied)
    if problem:
        raise DatabaseStateError(problem)
    if strict:
        problems = integrity_problems(applied, history)
        if problems:
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise DatabaseStateError(problems[0] + more)
    return current_revision(applied, history)


def relative(path: Path) -> str:
    """`path` relative to the working directory when it is below it, else as it is."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


__all__ = [
    "Bind", "Output", "Project", "all_problems", "backend_name", "checked_current", "current_revision",
    "integrity_problems", "masked_url", "not_created", "open_connection", "open_engine", "open_project",
    "partial_problem", "print_line", "relative", "schema_of",
]
