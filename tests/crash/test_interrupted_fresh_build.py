"""A fresh build killed half-way, where it commits in parts: its marker row tells `status` what happened, `upgrade`
takes the empty tables back and builds again, and nothing is dropped while one of them holds a row.

On MariaDB every CREATE TABLE commits itself; on PostgreSQL a long build commits
every `CHUNK` statements (here 1, so every table). A child process runs
`upgrade` on an empty database and SIGKILLs itself as the build's third
CREATE TABLE is sent: tables are left with only the build's marker row. `status`
names the interrupted build (not `baseline`: schemashift made those tables);
while one of them holds a row `upgrade` and `repair undo` refuse (one line naming
`repair`, which can finish the build keeping it); once empty, `upgrade` takes
them back and reaches head with a fresh build.
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
    assert fetch_rows(fresh_db, "SELECT state FROM schemashift_version") == [("building",)]  # the marker

    status = cli(project, "status", check=False)
    assert status.returncode == 2 and "is running or was interrupted" in status.stdout + status.stderr

    first = sorted(left)[0]
    execute(fresh_db, f"INSERT INTO {first} (id) VALUES (1)")  # a row written since: nothing is dropped
    for command in (("upgrade",), ("repair", "undo")):
        refused = cli(project, *command, check=False)
        message = " ".join(refused.stderr.split())
        assert refused.returncode == 2 and "Traceback" not in message and "baseline" not in message, message
        assert f"its table {first} holds rows" in message and "`schemashift repair`" in message, message
        assert set(inspect_schema(fresh_db)) == left
    execute(fresh_db, f"DELETE FROM {first}")

    upgraded = cli(project, "upgrade")
    assert "did not finish: taking back the tables it created" in upgraded.stdout, upgraded.stdout
    assert "as one fresh build" in upgraded.stdout, upgraded.stdout
    assert set(inspect_schema(fresh_db)) == {f"t{n}" for n in range(TABLES + 1)}
    assert cli(project, "status").returncode == 0
    assert fetch_rows(fresh_db, "SELECT count(*) FROM schemashift_version WHERE state = 'building'") == [(0,)]
