"""The pytest plugin, run by pytester in a subprocess: fixtures, the runner, and the built-in checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import SERVER_URLS, require_backend
from helpers import cli, set_models

pytest_plugins = ["pytester"]

V1 = '''
import sqlalchemy as sa

Base = sa.MetaData()
users = sa.Table("users", Base, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)))
'''
V2 = V1.replace('sa.Column("name", sa.String(40)))', 'sa.Column("name", sa.String(40)), sa.Column("shout", sa.String(40)))')

DATA_TEST = '''
def test_data_migration(schemashift_runner):
    first, second, third = schemashift_runner.revisions
    schemashift_runner.upgrade(first)
    schemashift_runner.execute("INSERT INTO users (id, name) VALUES (1, 'ada')")
    schemashift_runner.upgrade("+2")
    assert schemashift_runner.current == third
    assert schemashift_runner.rows("SELECT name, shout FROM users") == [("ada", "ADA")]
    schemashift_runner.downgrade("-1")
    assert schemashift_runner.scalar("SELECT count(*) FROM users") == 1


def test_head_database(schemashift_head_url, schemashift_runner):
    assert schemashift_runner.current == schemashift_runner.revisions[-1]
    built = "fresh build from the schema at " + schemashift_runner.revisions[1]
    assert schemashift_runner.rows("SELECT revision, outcome, error FROM schemashift_version_history") == [
        (schemashift_runner.revisions[0], "ok", built), (schemashift_runner.revisions[1], "ok", built),
        (schemashift_runner.revisions[2], "ok", None)]  # a fresh build up to the data migration, then step by step
    assert schemashift_runner.rows("SELECT count(*) FROM users") == [(0,)]


def test_each_test_gets_its_own_database(schemashift_url, schemashift_runner):
    assert schemashift_runner.current is None
    assert schemashift_runner.project.url == schemashift_url
'''


def server_for(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'unused.db'}"
    require_backend(backend)
    return SERVER_URLS[backend]


def make_project(root: Path, server: str) -> None:
    """A project with three migrations: a table, a column, and a data migration filling it."""
    (root / "app").mkdir()
    (root / "app" / "__init__.py").write_text("")
    (root / "migrations").mkdir()
    (root / "schemashift.toml").write_text(
        f'models = "app.models:Base"\nmigrations = "migrations"\ndefault_env = "test"\n\n[env.test]\nurl = "{server}"\n'
        'statement_timeout = 30\n')  # (lint_clean: PostgreSQL flags a migration run with no statement bound, SS209;
    # the data migration's UPDATEs say WHERE: a whole-table UPDATE is SS212)
    set_models(root, V1)
    cli(root, "generate", "-m", "users")
    set_models(root, V2)
    cli(root, "generate", "-m", "shout")
    cli(root, "generate", "--empty", "-m", "fill shout")
    path = next((root / "migrations").glob("0003_*.py"))
    path.write_text(path.read_text().replace("operations = []", textwrap.dedent('''
        operations = [ExecuteSQL("UPDATE users SET shout = UPPER(name) WHERE shout IS NULL",
                                reverse="UPDATE users SET shout = NULL WHERE shout IS NOT NULL")]
    ''')))
    cli(root, "manifest")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_fixtures_and_checks(pytester: pytest.Pytester, backend: str) -> None:
    make_project(pytester.path, server_for(backend, pytester.path))
    pytester.makepyfile(test_data=DATA_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--schemashift-checks", "-v")
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["*schemashift::stairway PASSED*", "*schemashift::downgrade_leaves_no_trace PASSED*",
                                 "*schemashift::lint_clean PASSED*"])
    assert_no_scratch_databases_left(backend)


def test_a_failing_check_names_the_revision(pytester: pytest.Pytester) -> None:
    make_project(pytester.path, server_for("sqlite", pytester.path))
    path = next((pytester.path / "migrations").glob("0002_*.py"))
    path.write_text(path.read_text().replace("operations = [", 'operations = [ExecuteSQL("CREATE TABLE stray (id INTEGER)", reverse=""),', 1))
    cli(pytester.path, "manifest")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--schemashift-checks")
    result.assert_outcomes(passed=4, failed=2)  # lint_clean passes: raw SQL is not judged
    result.stdout.fnmatch_lines(["*schemashift check stairway failed:*", "*0002_shout.py*", "*stray*"])


def test_models_out_of_date_fail_their_check(pytester: pytest.Pytester) -> None:
    make_project(pytester.path, server_for("sqlite", pytester.path))
    set_models(pytester.path, V2.replace('sa.String(40)))', 'sa.String(40)), sa.Column("age", sa.Integer))'))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--schemashift-checks", "-k", "models_match")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*models_match_migrations failed*", "*age*"])


def test_a_lint_finding_fails_its_check(pytester: pytest.Pytester) -> None:
    make_project(pytester.path, server_for("sqlite", pytester.path))
    set_models(pytester.path, V1)
    cli(pytester.path, "generate", "-m", "drop shout")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--schemashift-checks", "-k", "lint_clean")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*schemashift check lint_clean failed:*", "*SS102*0004_drop_shout.py*"])


def assert_no_scratch_databases_left(backend: str) -> None:
    if backend == "sqlite":
        return
    engine = sa.create_engine(SERVER_URLS[backend])
    query = ("SELECT datname FROM pg_database" if backend == "postgresql" else "SHOW DATABASES")
    with engine.connect() as connection:
        names = [row[0] for row in connection.exec_driver_sql(query)]
    engine.dispose()
    assert not [name for name in names if name.startswith("schemashift_tmp_")], names
