"""The pytest plugin: throw-away databases, a migration runner, and built-in checks of the migrations.

Loaded by its ``pytest11`` entry point alone (no conftest needed). Fixtures:

* ``schemashift_config`` — the project's configuration (``--schemashift-config PATH`` or the
  ``schemashift_config`` ini value, else ``schemashift.toml`` / ``pyproject.toml`` in the rootdir);
* ``schemashift_url`` — a fresh, empty database for one test on the server of the environment
  named by ``--schemashift-env`` (default: the configuration's default), or of
  ``--schemashift-url``; dropped afterwards. On SQLite, a file in the test's temporary folder;
* ``schemashift_runner`` — a `MigrationRunner` on that database: step to a revision, insert
  rows, step on, assert (for data migrations);
* ``schemashift_head_url`` — a fresh database already at head, for tests of the application.

An empty database brought to head (the runner's ``upgrade()``, ``schemashift_head_url``) is
built from the head's schema in one pass where no data migration lies on the way, as
``schemashift upgrade`` does (`schemashift.planning.fresh`); the ``upgrade_from_base`` check
runs every migration step by step, since running them is what it checks.

Built-in checks run with ``--schemashift-checks`` (or ``schemashift_checks = true`` in the ini
file), each collected as one test item ``schemashift::<check>``: a linear history, upgrade from
base, models match the migrations, the stairway (every revision up, down and up again, the live
schema equal to the replayed one after each move), a downgrade to base that leaves none of
the application's tables, and `lint --all` clean (every finding allowed in its migration). A
failure reports what differs and names the revision.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import sqlalchemy as sa

    from schemashift.api import Project
    from schemashift.config import Config
    from schemashift.services.stepping import Stepper

CHECK_NAMES = ("single_head", "upgrade_from_base", "models_match_migrations", "stairway", "downgrade_leaves_no_trace",
               "lint_clean")


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's command-line options and ini values."""
    group = parser.getgroup("schemashift", "schemashift migrations")
    group.addoption("--schemashift-config", metavar="PATH", help="the schemashift configuration file")
    group.addoption("--schemashift-env", metavar="NAME", help="environment whose server holds throw-away databases")
    group.addoption("--schemashift-url", metavar="URL", help="server URL for throw-away databases")
    group.addoption("--schemashift-checks", action="store_true", help="run schemashift's built-in migration checks")
    parser.addini("schemashift_checks", "run schemashift's built-in migration checks", type="bool", default=False)
    parser.addini("schemashift_config", "the schemashift configuration file", default="")


# --------------------------------------------------------------------------- where things are


def project_config(config: pytest.Config) -> Config:
    """The schemashift configuration named by the options, or found in the rootdir."""
    from schemashift.config import load_config
    from schemashift.errors import SchemashiftError

    given = config.getoption("schemashift_config") or config.getini("schemashift_config") or None
    try:
        return load_config(given, cwd=Path(config.rootpath))
    except SchemashiftError as exc:
        raise pytest.UsageError(f"schemashift: {exc}") from None


def server_url(config: pytest.Config, project: Config) -> str:
    """The URL whose server holds the throw-away databases."""
    from schemashift.errors import SchemashiftError

    url = config.getoption("schemashift_url")
    if url:
        return str(url)
    try:
        url = project.env(config.getoption("schemashift_env")).url
    except SchemashiftError as exc:
        raise pytest.UsageError(f"schemashift: {exc}") from None
    if not url:
        raise pytest.UsageError("schemashift: the environment has no URL; pass --schemashift-url")
    return url


@contextmanager
def scratch_database(server: str, folder: Path) -> Iterator[str]:
    """A new empty database on `server`'s server (a file in `folder` on SQLite), dropped on exit; its URL."""
    import sqlalchemy as sa

    from schemashift.dialects import get_dialect

    url = sa.make_url(server)
    dialect = get_dialect(url.get_backend_name())
    name = f"schemashift_tmp_{uuid.uuid4().hex[:12]}"
    created = dialect.create_scratch_database(url, name, folder)
    try:
        yield created
    finally:
        dialect.drop_scratch_database(url, name, folder)


def open_scratch_project(project: Config, url: str, env: str | None) -> Project:
    """`project` bound to the throw-away database `url` (never asks for confirmation)."""
    from schemashift.api import open_project

    opened = open_project(project, env, url)
    opened.env.confirm = False
    return opened


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def schemashift_config(request: pytest.FixtureRequest) -> Config:
    """The project's schemashift configuration."""
    return project_config(request.config)


@pytest.fixture
def schemashift_url(request: pytest.FixtureRequest, schemashift_config: Config, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for this test (dropped afterwards)."""
    with scratch_database(server_url(request.config, schemashift_config), tmp_path) as url:
        yield url


@pytest.fixture
def schemashift_head_url(request: pytest.FixtureRequest, schemashift_config: Config, schemashift_url: str) -> str:
    """A fresh database at head (built in one pass where it can be, see `schemashift.planning.fresh`)."""
    from schemashift import api

    project = open_scratch_project(schemashift_config, schemashift_url, request.config.getoption("schemashift_env"))
    api.upgrade(project, yes=True, out=_quiet)
    return schemashift_url


@pytest.fixture
def schemashift_runner(request: pytest.FixtureRequest, schemashift_config: Config,
                       schemashift_url: str) -> Iterator[MigrationRunner]:
    """A migration runner on a fresh database, at base."""
    runner = MigrationRunner(open_scratch_project(schemashift_config, schemashift_url,
                                                  request.config.getoption("schemashift_env")))
    try:
        yield runner
    finally:
        runner.dispose()


class MigrationRunner:
    """Moves a throw-away database along the migrations, so a test can insert rows in between.

        runner.upgrade("0002")              # a revision, a unique prefix, "head", "+1"
        runner.execute("INSERT INTO users (name) VALUES (:n)", {"n": "ada"})
        runner.upgrade("+1")                # the data migration under test
        assert runner.scalar("SELECT count(*) FROM users") == 1
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        self.engine: sa.Engine | None = None
        self._stepper: Stepper | None = None  # on one connection kept open between steps

    @property
    def revisions(self) -> list[str]:
        """Every revision, base to head."""
        return [migration.revision for migration in self.project.history().chain]

    @property
    def current(self) -> str | None:
        """The revision the database is at (None: base)."""
        return self._stepping().current

    def upgrade(self, target: str = "head") -> None:
        """Upgrade to `target`: a revision or prefix, ``head``, or ``+N`` revisions from here."""
        from schemashift.planning.plan import UP

        self._stepping().move(self._resolve(target), UP, allow_data_loss=False)

    def downgrade(self, target: str = "-1") -> None:
        """Downgrade to `target`: ``-N``, a revision or prefix, or ``base``."""
        from schemashift.planning.plan import DOWN

        self._stepping().move(target, DOWN, allow_data_loss=True)

    def _stepping(self) -> Stepper:
        """The runner's `Stepper` (`schemashift.services.stepping`): its own connection, the revision carried
        between steps, no fingerprint, so a step costs what its migrations cost (bench `runner`)."""
        if self._stepper is None:
            from schemashift.api import Project
            from schemashift.dialects import dialect_of
            from schemashift.services.stepping import Stepper

            connection = self.connection()
            dialect_of(connection).session_setup(connection, self.project.env)
            stepping = Project(self.project.config, self.project.env, self.project.url, connection)
            stepping.use_history(self.project.history())
            self._stepper = Stepper(stepping, out=_quiet)
        return self._stepper

    def _resolve(self, target: str) -> str:
        if not target.startswith("+"):
            return target
        revisions, current = self.revisions, self.current
        index = (revisions.index(current) if current else -1) + int(target[1:])
        if not 0 <= index < len(revisions):
            raise ValueError(f"{target} from {current or 'base'} is past the end of the {len(revisions)} migrations")
        return revisions[index]

    def connection(self) -> sa.Connection:
        """A new connection to the database (close it, or use it in a ``with`` block)."""
        import sqlalchemy as sa

        if self.engine is None:
            self.engine = sa.create_engine(self.project.url or "", poolclass=sa.pool.NullPool)
        return self.engine.connect()

    def execute(self, sql: str, params: dict[str, Any] | list[dict[str, Any]] | None = None) -> None:
        """Run `sql` (with bound `params`) and commit."""
        import sqlalchemy as sa

        with self.connection() as connection:
            connection.execute(sa.text(sql), params or {})
            connection.commit()

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """The rows `sql` returns."""
        import sqlalchemy as sa

        with self.connection() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql), params or {})]

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        """The first column of the first row `sql` returns."""
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def dispose(self) -> None:
        """Close the runner's connections."""
        if self._stepper is not None:
            self._stepper.close()
            self._stepper = None
        if self.engine is not None:
            self.engine.dispose()


def _quiet(line: str) -> None:
    """Moves print nothing."""


# --------------------------------------------------------------------------- built-in checks


class CheckFailed(Exception):
    """A built-in check found a problem; the message is the report."""


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add one item per built-in check when they are switched on."""
    if not (config.getoption("schemashift_checks") or config.getini("schemashift_checks")):
        return
    collector = ChecksCollector.from_parent(session, name="schemashift")
    items.extend(collector.collect())


class ChecksCollector(pytest.Collector):
    """The built-in checks, as test items."""

    def collect(self) -> list[pytest.Item]:
        """One `CheckItem` per check."""
        return [CheckItem.from_parent(self, name=name) for name in CHECK_NAMES]


class CheckItem(pytest.Item):
    """One built-in check, run on its own throw-away database."""

    def runtest(self) -> None:
        """Run the check; raise `CheckFailed` with a readable report."""
        project = project_config(self.config)
        env = self.config.getoption("schemashift_env")
        check: Callable[..., None] = CHECKS[self.name]
        with tempfile.TemporaryDirectory(prefix="schemashift-check-") as folder, \
                scratch_database(server_url(self.config, project), Path(folder)) as url:
            check(open_scratch_project(project, url, env))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The report alone for a failed check; the usual traceback for anything else."""
        if isinstance(excinfo.value, CheckFailed):
            return f"schemashift check {self.name} failed:\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the check is reported."""
        return Path(self.config.rootpath), None, f"schemashift::{self.name}"


def check_single_head(project: Project) -> None:
    """The migration files form one straight line (no fork, no duplicate, one root)."""
    from schemashift.errors import SchemashiftError

    try:
        project.history()
    except SchemashiftError as exc:
        raise CheckFailed(str(exc)) from None


def check_upgrade_from_base(project: Project) -> None:
    """An empty database upgrades to head, every migration run as written (no fresh build)."""
    from schemashift import api
    from schemashift.errors import SchemashiftError

    try:
        api.upgrade(project, yes=True, out=_quiet, step_by_step=True)
    except SchemashiftError as exc:
        raise CheckFailed(f"upgrade from base failed: {exc}") from None


def check_models_match_migrations(project: Project) -> None:
    """`generate` would write nothing: the models and the migrations agree."""
    from schemashift import api

    lines: list[str] = []
    if not api.check(project, out=lines.append):
        raise CheckFailed("\n".join(lines))


def check_stairway(project: Project) -> None:
    """Every revision goes up, down and up again, the live schema as replayed after each move."""
    from schemashift import api

    lines: list[str] = []
    if not api.test_migrations(project, out=lines.append):
        raise CheckFailed("\n".join(line for line in lines if not line.startswith("ok ")))


def check_downgrade_leaves_no_trace(project: Project) -> None:
    """Upgrade to head, downgrade to base: no table, sequence or type of the application remains."""
    from schemashift import api
    from schemashift.errors import SchemashiftError
    from schemashift.model.schema import Schema

    try:
        api.upgrade(project, yes=True, out=_quiet)
        api.downgrade(project, "base", yes=True, allow_data_loss=True, out=_quiet)
    except SchemashiftError as exc:
        raise CheckFailed(f"upgrade then downgrade to base failed: {exc}") from None
    with project.connect() as connection:
        left = api.compare_schemas(connection, Schema(), exclude=set(project.recorder(connection).own_tables))
    if left:
        remaining = "\n".join(f"  - {op.describe()}" for op in left)
        raise CheckFailed(f"after downgrade to base the database still has:\n{remaining}")


def check_lint_clean(project: Project) -> None:
    """`schemashift lint --all` finds nothing that is not allowed (``lint_allow`` in the migration)."""
    from schemashift import api

    findings = [finding for finding in api.lint(project, every=True) if finding.allowed is None]
    if findings:
        raise CheckFailed("\n".join(f"  - {finding.line()}" for finding in findings))


CHECKS: dict[str, Callable[[Project], None]] = {
    "single_head": check_single_head,
    "upgrade_from_base": check_upgrade_from_base,
    "models_match_migrations": check_models_match_migrations,
    "stairway": check_stairway,
    "downgrade_leaves_no_trace": check_downgrade_leaves_no_trace,
    "lint_clean": check_lint_clean,
}
