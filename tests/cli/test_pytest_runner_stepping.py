"""The pytest plugin's runner steps on the lean path (`schemashift.services.stepping`): what it records
equals a plain step-by-step ``upgrade``, ``status`` is clean after it, downgrades work, a failed step is
reported on the next move as ``upgrade`` would report it; the migration lock lingers only briefly after a move, so
the ordinary commands (in this process or another) migrate the same database between moves."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.test_pytest_plugin import make_project
from conftest import create_database, drop_database, require_backend
from helpers import cli, fetch_rows
from schemashift import api
from schemashift.config import load_config
from schemashift.dialects import dialect_of
from schemashift.errors import DatabaseStateError, LockTimeout
from schemashift.pytest_plugin import MigrationRunner, open_scratch_project
from schemashift.services.stepping import Stepper

#: Every column but times and the plain upgrade's live fingerprint (the runner's databases are never deployed).
VERSION_ROWS = ("SELECT revision, parent, checksum, message, state, direction, statements_done, running_statement,"
                " failed_statement, error FROM schemashift_version")
HISTORY_ROWS = ("SELECT revision, direction, checksum, message, outcome, error FROM schemashift_version_history"
                " ORDER BY id")


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A three-migration project (`make_project`) and two empty databases on one backend."""
    backend = request.param
    require_backend(backend)
    names = [f"ss_stepping_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    urls = [create_database(backend, name, tmp_path) for name in names]
    root = tmp_path / "project"
    root.mkdir()
    make_project(root, urls[0])
    try:
        yield root, urls[0], urls[1]
    finally:
        for name in names:
            drop_database(backend, name)


def _project(root: Path, url: str) -> api.Project:
    return open_scratch_project(load_config(root / "schemashift.toml"), url, None)


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    return sorted(fetch_rows(url, sql), key=repr) if "ORDER BY" not in sql else fetch_rows(url, sql)


def test_stepping_records_what_a_step_by_step_upgrade_records(two_databases: tuple[Path, str, str]) -> None:
    root, stepped, plain = two_databases
    runner = MigrationRunner(_project(root, stepped))
    try:
        for _ in runner.revisions:
            runner.upgrade("+1")
        assert runner.current == runner.revisions[-1]
    finally:
        runner.dispose()
    api.upgrade(_project(root, plain), yes=True, out=lambda line: None, step_by_step=True)
    for sql in (VERSION_ROWS, HISTORY_ROWS):
        assert _rows(stepped, sql) == _rows(plain, sql)
    report = api.status(_project(root, stepped))
    assert report.exit_code == 0, report.lines()
    assert report.schema_matches is not False and not report.pending and not report.problems


def test_stepping_down_and_up_again(two_databases: tuple[Path, str, str]) -> None:
    root, url, _ = two_databases
    runner = MigrationRunner(_project(root, url))
    try:
        runner.upgrade("+2")
        runner.execute("INSERT INTO users (id, name) VALUES (1, 'ada')")
        runner.upgrade("+1")
        assert runner.rows("SELECT shout FROM users") == [("ADA",)]
        runner.downgrade("-2")
        assert runner.current == runner.revisions[0]
        runner.upgrade("head")
        assert runner.current == runner.revisions[-1]
        assert runner.rows("SELECT name, shout FROM users") == [("ada", "ADA")]
        runner.downgrade("base")
        assert runner.current is None
        runner.upgrade("+1")
        assert runner.current == runner.revisions[0]
    finally:
        runner.dispose()
    assert api.status(_project(root, url)).problems == []


def test_a_failed_step_is_reported_as_upgrade_reports_it(two_databases: tuple[Path, str, str]) -> None:
    root, url, _ = two_databases
    runner = MigrationRunner(_project(root, url))
    try:
        runner.upgrade("+2")
        runner.execute("DROP TABLE users")  # the data migration's UPDATE now fails
        with pytest.raises(Exception):  # noqa: B017 - the driver's error, whatever the backend
            runner.upgrade("+1")
        try:  # read again after the failure, as `upgrade` reads it
            current = runner.current
        except DatabaseStateError as exc:  # DDL is not transactional (MariaDB): the step is journaled as partial
            assert "PARTLY applied" in str(exc)
        else:
            assert current == runner.revisions[1]
    finally:
        runner.dispose()


def test_kept_values_come_back_between_steps(two_databases: tuple[Path, str, str]) -> None:
    """The backup registry is read again after a step that kept values, so the next step restores them."""
    root, url, _ = two_databases
    runner = MigrationRunner(_project(root, url))
    try:
        runner.upgrade("+2")
        runner.execute("INSERT INTO users (id, name, shout) VALUES (1, 'ada', 'kept')")
        runner.downgrade("-1")  # drops shout, keeping its values
        runner.upgrade("+1")  # re-adds it: the values come back
        assert runner.rows("SELECT shout FROM users") == [("kept",)]
    finally:
        runner.dispose()


def _quiet(line: str) -> None:
    pass


def test_other_commands_migrate_the_database_between_moves(two_databases: tuple[Path, str, str]) -> None:
    """``upgrade``/``downgrade`` in this process and the CLI in another never wait long for the runner's lock, and
    the runner reads the revision again after them."""
    root, url, _ = two_databases
    project = _project(root, url)
    runner = MigrationRunner(_project(root, url))
    first, second, third = runner.revisions
    try:
        runner.upgrade("+1")
        started = time.monotonic()
        api.upgrade(project, "head", yes=True, out=_quiet)  # right after the move: waits for the lingering lock
        assert time.monotonic() - started < project.env.lock_timeout / 2
        assert runner.current == third
        runner.downgrade("-1")
        assert runner.current == second
        cli(root, "downgrade", first, "--yes", "--allow-data-loss")
        runner.upgrade("+1")
        assert runner.current == second
        api.downgrade(project, "base", yes=True, allow_data_loss=True, out=_quiet)
        runner.upgrade("+1")
        assert runner.current == first
        runner.upgrade("head")
    finally:
        runner.dispose()
    assert api.status(project).problems == []


def test_the_lock_is_kept_between_quick_moves_and_freed_when_idle(two_databases: tuple[Path, str, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root, url, _ = two_databases
    monkeypatch.setattr(Stepper, "linger", 2.0)
    project = _project(root, url)
    runner = MigrationRunner(_project(root, url))
    try:
        runner.upgrade("+1")  # from base: the general path, which releases its lock
        runner.upgrade("+1")  # the lean path: the lock lingers
        with project.connect() as other:
            dialect = dialect_of(other)
            with pytest.raises(LockTimeout), dialect.lock(other, project.lock_name, 0):
                pass
            started = time.monotonic()
            with dialect.lock(other, project.lock_name, 30):  # the runner's thread releases it once idle
                other.commit()
            assert time.monotonic() - started < 20
        runner.upgrade("+1")
        assert runner.current == runner.revisions[-1]
    finally:
        runner.dispose()
    with project.connect() as other, dialect_of(other).lock(other, project.lock_name, 0):  # released by dispose
        other.commit()
