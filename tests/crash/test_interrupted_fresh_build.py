"""A fresh build killed half-way, where it commits in parts: `upgrade` and `status` say what happened, `repair` takes
it back, `upgrade` builds again.

On MariaDB every CREATE TABLE commits itself; on PostgreSQL a long build commits
every `CHUNK` statements (here 1, so every table). A child process runs
`upgrade` on an empty database and SIGKILLs itself as the build's third
CREATE TABLE is sent: tables are left without any version row. The next `upgrade`
must not point to `baseline` (nothing was adopted: schemashift made them) but
name the interrupted build, its empty tables and `repair`; `repair` drops them
(refusing while one holds rows), and `upgrade` then reaches head with a fresh build.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import cli, execute, fetch_rows, inspect_schema, write_project

TABLES = 6
MODELS = "import sqlalchemy as sa\n\nBase = sa.MetaData()\n" + "".join(
    f't{n} = sa.Table("t{n}", Base, sa.Column("id", sa.Integer, primary_key=True))\n' for n in range(TABLES))
MORE = f't{TABLES} = sa.Table("t{TABLES}", Base, sa.Column("id", sa.Integer, primary_key=True))\n'

KILLED_UPGRADE = """
import os, signal
import sqlalchemy as sa
from schemashift import api
from schemashift.planning import fresh as planning
from schemashift.runtime import fresh

fresh.chunks.__defaults__ = (1,)  # PostgreSQL: a transaction per table, as a build of over CHUNK statements has
planning.TRANSACTION_SIZE = 1
created = []
real = sa.Connection.exec_driver_sql

def dying(connection, sql, *args, **kwargs):
    if "CREATE TABLE t" in sql:
        created.append(sql)
        if len(created) == 3:  # the first two committed
            os.kill(os.getpid(), signal.SIGKILL)
    return real(connection, sql, *args, **kwargs)

sa.Connection.exec_driver_sql = dying
api.upgrade(api.open_project("schemashift.toml"), yes=True)
"""


@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_killed_fresh_build_is_named_and_repaired(fresh_db: str, tmp_path: Path) -> None:
    project = write_project(tmp_path, fresh_db, MODELS)
    cli(project, "generate", "-m", "tables")
    (project / "app" / "models.py").write_text(MODELS + MORE)
    cli(project, "generate", "-m", "one more")  # two migrations: a fresh build

    child = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_UPGRADE)], cwd=project,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr
    left = set(inspect_schema(fresh_db))
    assert left and len(left) < TABLES + 1, left
    assert fetch_rows(fresh_db, "SELECT count(*) FROM schemashift_version") == [(0,)]

    refused = cli(project, "upgrade", check=False)
    assert refused.returncode != 0
    message = " ".join(refused.stderr.split())
    assert "baseline" not in message, message
    assert "a fresh build to " in message and " was interrupted (started " in message, message
    assert f"the {len(left)} table(s) it created so far" in message and ") are empty" in message, message
    assert "`schemashift repair` drops them" in message, message
    status = cli(project, "status", check=False)
    assert status.returncode == 2 and "was interrupted" in status.stdout + status.stderr

    first = sorted(left)[0]
    execute(fresh_db, f"INSERT INTO {first} (id) VALUES (1)")  # a row written since: repair refuses
    held = cli(project, "repair", check=False)
    assert held.returncode != 0 and f"{first} hold rows" in " ".join(held.stderr.split()), held.stderr
    execute(fresh_db, f"DELETE FROM {first}")

    repaired = cli(project, "repair")
    assert "the database is empty again" in repaired.stdout, repaired.stdout
    assert inspect_schema(fresh_db) == {}
    upgraded = cli(project, "upgrade")
    assert "as one fresh build" in upgraded.stdout, upgraded.stdout
    assert set(inspect_schema(fresh_db)) == {f"t{n}" for n in range(TABLES + 1)}
    assert cli(project, "status").returncode == 0
    outcomes = [row[0] for row in fetch_rows(fresh_db, "SELECT outcome FROM schemashift_version_history ORDER BY id")]
    assert outcomes == ["started", "undone", "ok", "ok"], outcomes  # a finished build's own row is gone
