"""How the executor commits: deferred durability on PostgreSQL, shared journal commits elsewhere.

* PostgreSQL: every migration but the last of a run commits with
  ``synchronous_commit = off``; the last one, and a failure's history row, commit
  durably; the session's own setting is back afterwards, also after a failure.
* Every database: the version and history tables after a run (and after a failure
  in its middle) say exactly what they said before commits were shared: each
  applied migration once, in order, with its statement count and an "ok" history
  row, the failed one "failed" and nothing after it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers import fetch_rows

from schemashift import api
from schemashift.errors import ExecutionError

STEPS = 4

MIGRATION = '''
from schemashift.migration import *

revision = "{revision}"
parent = {parent!r}
message = "step {number}"


def forward(ctx):
    value = ctx.execute("{setting}").scalar()
    ctx.execute("INSERT INTO seen (step, value) VALUES (:step, :value)", {{"step": {number}, "value": str(value)}})
    if {fail}:
        ctx.execute("SELECT * FROM no_such_table")


operations = [
    {first}AddColumn("seen", Column("c{number}", Type("integer"))),
    RunPython(forward),
]
'''

SETTING = {
    "postgresql": "SELECT current_setting('synchronous_commit')",
    "mysql": "SELECT 'n/a'",
    "sqlite": "SELECT 'n/a'",
}


def _project(root: Path, url: str, backend: str, fail_at: int | None = None) -> Path:
    folder = root / "migrations"
    folder.mkdir(parents=True)
    parent = None
    for number in range(1, STEPS + 1):
        revision = f"{number:04d}aaaabbbb"
        first = ('CreateTable(Table("seen", columns=(Column("step", Type("integer")), '
                 'Column("value", Type("string", length=20))))),\n    ') if number == 1 else ""
        (folder / f"{number:04d}_step.py").write_text(MIGRATION.format(
            revision=revision, parent=parent, number=number, setting=SETTING[backend], fail=number == fail_at,
            first=first))
        parent = revision
    (root / "schemashift.toml").write_text(textwrap.dedent(f'''
        migrations = "migrations"
        default_env = "t"
        [env.t]
        url = "{url}"
    '''))
    return root


def _drop_all(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for name in sa.inspect(conn).get_table_names():
                conn.exec_driver_sql(f"DROP TABLE {conn.dialect.identifier_preparer.quote(name)}")
    finally:
        engine.dispose()


@pytest.mark.parametrize("fail_at", [None, 3])
def test_commits_and_journal(db_url: str, backend: str, tmp_path: Path, fail_at: int | None) -> None:
    _drop_all(db_url)
    root = _project(tmp_path / "proj", db_url, backend, fail_at)
    project = api.open_project(str(root / "schemashift.toml"))
    lines: list[str] = []
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        setting_before = connection.exec_driver_sql(SETTING[backend]).scalar()
        connection.commit()
        bound = api.open_project(str(root / "schemashift.toml"), bind=connection)
        if fail_at is None:
            api.upgrade(bound, yes=True, out=lines.append)
        else:
            with pytest.raises(ExecutionError):
                api.upgrade(bound, yes=True, out=lines.append)
        assert connection.exec_driver_sql(SETTING[backend]).scalar() == setting_before  # the session is as it was
        connection.rollback()
    engine.dispose()
    done = STEPS if fail_at is None else fail_at - 1
    assert [line.split(" in ")[0] for line in lines if line.startswith("applied")] == \
        [f"applied {number:04d}_step ({number:04d}aaaabbbb)" for number in range(1, done + 1)]
    versions = fetch_rows(db_url, "SELECT revision, state, statements_done FROM schemashift_version ORDER BY revision")
    expected_versions = [(f"{number:04d}aaaabbbb", "applied", 3 if number == 1 else 2) for number in range(1, done + 1)]
    if fail_at is not None and backend == "mysql":  # journaled: the failed step says how far it got
        expected_versions.append((f"{fail_at:04d}aaaabbbb", "failed", 1))
    assert versions == expected_versions
    history = fetch_rows(db_url, "SELECT revision, direction, outcome FROM schemashift_version_history ORDER BY id")
    expected = [(f"{number:04d}aaaabbbb", "up", "ok") for number in range(1, done + 1)]
    if fail_at is not None:
        expected.append((f"{fail_at:04d}aaaabbbb", "up", "failed"))
    assert history == expected
    seen = fetch_rows(db_url, "SELECT step, value FROM seen ORDER BY step")
    if backend == "postgresql":
        # deferred durability for all but the last step of the run; a failed run leaves nothing of the failed step
        assert seen == [(number, "off" if number < STEPS else "on") for number in range(1, done + 1)]
    else:
        assert [step for step, _ in seen] == list(range(1, done + 1))
    problems = api.status(project).problems
    assert (problems == []) if fail_at is None or backend != "mysql" else "PARTLY" in problems[0]
