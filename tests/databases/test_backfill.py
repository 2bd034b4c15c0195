"""`Backfill`: batched updates by primary-key ranges on SQLite, PostgreSQL and MariaDB.

A table of ROWS rows gets a hand-written migration with a `Backfill` that also
adds 1 to a counter column (``touched = touched + 1``), so every row's counter
says how many times a batch updated it: after a run killed in the middle
(``SCHEMASHIFT_FAULT_KILL_AT``, which counts each batch as a statement) and
``repair continue``, every counter is 1, so no finished batch ran twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corpus_schema import table_names
from helpers import cli, execute, fetch_rows, scalar, set_models, write_project

MODELS = '''
import sqlalchemy as sa

Base = sa.MetaData()
t = sa.Table("t", Base, sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.String(20)),
             sa.Column("n", sa.Integer), sa.Column("touched", sa.Integer, nullable=False, server_default="0"))
k = sa.Table("k", Base, sa.Column("a", sa.Integer, primary_key=True), sa.Column("b", sa.Integer, primary_key=True),
             sa.Column("v", sa.Integer))
s = sa.Table("s", Base, sa.Column("code", sa.String(10), primary_key=True), sa.Column("v", sa.Integer))
'''
ROWS = 25
SIZE = 10
MIGRATION = '''"""Backfill."""
from schemashift.migration import *  # noqa: F401,F403

revision = "b0ac0f111e02"
parent = {parent!r}
message = "backfill"

operations = [
    {operation},
]
'''
BACKFILL = ('Backfill("t", values={{"a": "done"}}, expressions={{"touched": "touched + 1"}}, where={where!r}, '
            'batch_size=10{extra})')


@pytest.fixture(params=("sqlite", "postgresql", "mysql"))
def backend(request: pytest.FixtureRequest) -> str:
    from conftest import require_backend

    require_backend(request.param)
    return str(request.param)


def project(tmp_path: Path, url: str, operation: str, *, safe: bool = False) -> Path:
    """The tables at base with ROWS rows in t (n = id), and migration 0002 holding `operation`, not applied."""
    directory = write_project(tmp_path, url, MODELS, extra_config=f"safe = {str(safe).lower()}\n")
    cli(directory, "generate", "-m", "base")
    cli(directory, "upgrade")
    execute(url, "INSERT INTO t (id, a, n) VALUES " + ", ".join(f"({i}, 'old', {i})" for i in range(1, ROWS + 1)),
            "INSERT INTO s (code, v) VALUES " + ", ".join(f"('c{i:02d}', 0)" for i in range(ROWS)))
    parent = json.loads(cli(directory, "history", "--json").stdout)[0]["revision"]
    (directory / "migrations" / "0002_backfill.py").write_text(MIGRATION.format(parent=parent, operation=operation))
    return directory


def rows(url: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in fetch_rows(url, "SELECT id, a, touched FROM t ORDER BY id")]


def test_values_where_and_batches(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """Every row `where` selects gets the values once, the others none; ceil(ROWS / SIZE) batches, with
    progress lines; the journal row ends applied with the position cleared."""
    directory = project(tmp_path, fresh_db, BACKFILL.format(where="n > 3", extra=""))
    out = cli(directory, "upgrade").stdout
    assert rows(fresh_db) == [(i, "old", 0) for i in range(1, 4)] + [(i, "done", 1) for i in range(4, ROWS + 1)]
    assert "backfill t: 3 batches, 22 rows (100%)" in out, out
    assert scalar(fresh_db, "SELECT running_statement FROM schemashift_version WHERE revision = 'b0ac0f111e02'") \
        is None
    assert cli(directory, "status", check=False).returncode == 0


def test_safe_mode_runs_it_the_same(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """With safe = true (PostgreSQL, MariaDB) the backfill runs batch by batch as well."""
    if backend == "sqlite":
        pytest.skip("safe mode concerns the servers")
    directory = project(tmp_path, fresh_db, BACKFILL.format(where=None, extra=""), safe=True)
    out = cli(directory, "upgrade").stdout
    assert rows(fresh_db) == [(i, "done", 1) for i in range(1, ROWS + 1)]
    assert "3 batches, 25 rows" in out, out


@pytest.mark.parametrize("kill", ["2", "2+"])
def test_resume_after_a_kill_redoes_no_finished_batch(kill: str, backend: str, fresh_db: str,
                                                      tmp_path: Path) -> None:
    """Killed before the third batch (or after it ran, before its commit): two batches are in; `repair
    continue` resumes after them, and every row was updated exactly once."""
    directory = project(tmp_path, fresh_db, BACKFILL.format(where=None, extra=""))
    killed = cli(directory, "upgrade", check=False, env={"SCHEMASHIFT_FAULT_KILL_AT": kill})
    assert killed.returncode != 0
    done = 2 * SIZE
    assert rows(fresh_db) == [(i, "done", 1) for i in range(1, done + 1)] + \
        [(i, "old", 0) for i in range(done + 1, ROWS + 1)]
    journal = str(scalar(fresh_db, "SELECT running_statement FROM schemashift_version WHERE revision = 'b0ac0f111e02'"))
    assert '"batches": 2' in journal and f'"start": {done + 1}' in journal, journal
    status = cli(directory, "status", check=False)
    assert status.returncode != 0 and "repair" in status.stdout + status.stderr
    repaired = cli(directory, "repair", "continue").stdout
    assert "resumes after 2 finished batch(es) (20 rows)" in repaired, repaired
    assert rows(fresh_db) == [(i, "done", 1) for i in range(1, ROWS + 1)]
    assert cli(directory, "status", check=False).returncode == 0


def test_resume_after_a_failed_batch(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """A batch that fails (a value too long for one row) leaves the position of the batches before it in the
    journal; once the cause is fixed (the column widened), `repair continue` goes on from there."""
    directory = project(tmp_path, fresh_db, 'Backfill("t", expressions={"a": "CASE WHEN id = 15 THEN '
                                            "'this value is too long for a' ELSE 'x' END\", \"touched\": "
                                            '"touched + 1"}, batch_size=10)')
    if backend == "sqlite":
        execute(fresh_db, "CREATE TRIGGER t_len BEFORE UPDATE ON t WHEN length(NEW.a) > 20 "
                          "BEGIN SELECT RAISE(ABORT, 'too long'); END")
    failed = cli(directory, "upgrade", check=False)
    assert failed.returncode != 0 and "repair" in failed.stderr, failed.stderr
    assert [r[2] for r in rows(fresh_db)] == [1] * 10 + [0] * 15
    if backend == "sqlite":
        execute(fresh_db, "DROP TRIGGER t_len")
    else:
        execute(fresh_db, "ALTER TABLE t ALTER COLUMN a TYPE VARCHAR(40)" if backend == "postgresql"
                else "ALTER TABLE t MODIFY a VARCHAR(40)")
    out = cli(directory, "repair", "continue").stdout
    assert "resumes after 1 finished batch(es) (10 rows)" in out, out
    assert all(touched == 1 for _, _, touched in rows(fresh_db))


def test_rows_inserted_during_the_backfill_are_left_alone(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """Every batch stops at the largest key there was when the backfill started: a row inserted after the first
    batch (while the backfill pauses) is not touched, every earlier row is, once; the journal holds the bound."""
    directory = project(tmp_path, fresh_db, BACKFILL.format(where=None, extra=", pause=0.5"))
    environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    upgrade = subprocess.Popen([sys.executable, "-m", "schemashift", "upgrade"], cwd=directory, env=environ,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while scalar(fresh_db, "SELECT count(*) FROM t WHERE touched = 1") == 0:
            assert upgrade.poll() is None and time.monotonic() < deadline, upgrade.communicate()
            time.sleep(0.02)
        journal = str(scalar(fresh_db, "SELECT running_statement FROM schemashift_version "
                                       "WHERE revision = 'b0ac0f111e02'"))
        execute(fresh_db, f"INSERT INTO t (id, a, n) VALUES ({ROWS + 1}, 'new', {ROWS + 1})")
    finally:
        out, err = upgrade.communicate(timeout=120)
    assert upgrade.returncode == 0, (out, err)
    assert rows(fresh_db) == [(i, "done", 1) for i in range(1, ROWS + 1)] + [(ROWS + 1, "new", 0)]
    assert f'"last": {ROWS}' in journal and '"batches": 1' in journal, journal
    assert "3 batches, 25 rows" in out, out


#: backend -> how long a session waits for a row lock, at most (a second)
ROW_LOCK_WAIT = {"postgresql": "SET lock_timeout = '1s'", "mysql": "SET SESSION innodb_lock_wait_timeout = 1"}


def test_last_batch_leaves_the_end_of_the_table_unlocked(backend: str, fresh_db: str) -> None:
    """While the last batch's transaction is open, a writer appends a row at once: the batch updated its largest
    key on its own, not by a range ending there (InnoDB would hold the gap after it, the end of the table)."""
    import sqlalchemy as sa

    from schemashift.dialects.base import BatchSql
    from schemashift.runtime.backfill import BatchRunner, Position, bounded

    if backend == "sqlite":
        pytest.skip("one writer at a time")
    execute(fresh_db, "CREATE TABLE r (id INTEGER PRIMARY KEY, a VARCHAR(20))",
            "INSERT INTO r (id, a) VALUES " + ", ".join(f"({i}, 'old')" for i in range(1, ROWS + 1)))
    engine = sa.create_engine(fresh_db, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as backfill, engine.connect() as writer:
            runner = BatchRunner(backfill, BatchSql("r", "id", "a = 'done'", None), SIZE)
            with backfill.begin():
                position = bounded(Position(), runner.span()[1])
            while not position.done:
                with backfill.begin():
                    position = runner.batch(position)
                    if position.done:
                        writer.exec_driver_sql(ROW_LOCK_WAIT[backend])
                        writer.exec_driver_sql(f"INSERT INTO r (id, a) VALUES ({ROWS + 1}, 'new')")
                        writer.commit()
    finally:
        engine.dispose()
    assert position.rows == ROWS and position.batches == 3, position
    assert fetch_rows(fresh_db, "SELECT id, a FROM r ORDER BY id") == \
        [(i, "done") for i in range(1, ROWS + 1)] + [(ROWS + 1, "new")]


def test_sql_and_dry_run(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """`--sql` prints one UPDATE with a comment saying how it runs online; `--dry-run` names the batches."""
    directory = project(tmp_path, fresh_db, BACKFILL.format(where="n > 3", extra=""))
    script = cli(directory, "upgrade", "--sql").stdout
    update = next(line for line in script.splitlines() if line.startswith("UPDATE t SET"))
    assert update.startswith("UPDATE t SET a = 'done', touched = touched + 1 WHERE (n > 3) /* schemashift runs "
                             "this in batches of 10 rows by id ranges"), update
    dry = cli(directory, "upgrade", "--dry-run").stdout
    assert "- backfill t: set a = 'done', touched = touched + 1 where n > 3 (batches of 10 by id)" in dry, dry
    assert rows(fresh_db)[0] == (1, "old", 0)


def test_downgrade_no_op_or_reverse_values(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """Without `reverse_values` the downgrade changes no row; with them it sets them back in batches."""
    directory = project(tmp_path, fresh_db, BACKFILL.format(where="n > 3", extra=', reverse_values={"a": "old"}'))
    cli(directory, "upgrade")
    cli(directory, "downgrade", "-1")
    assert rows(fresh_db) == [(i, "old", 0 if i <= 3 else 1) for i in range(1, ROWS + 1)]
    path = directory / "migrations" / "0002_backfill.py"
    path.write_text(path.read_text().replace(', reverse_values={"a": "old"}', ""))
    cli(directory, "upgrade")
    cli(directory, "downgrade", "-1")
    assert rows(fresh_db) == [(i, "done" if i > 3 else "old", 0 if i <= 3 else 2) for i in range(1, ROWS + 1)]


def test_text_key(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """Any orderable single-column key: text keys batch and resume the same way."""
    directory = project(tmp_path, fresh_db, 'Backfill("s", expressions={"v": "v + 1"}, batch_size=10)')
    cli(directory, "upgrade", check=False, env={"SCHEMASHIFT_FAULT_KILL_AT": "1"})
    assert [row[0] for row in fetch_rows(fresh_db, "SELECT v FROM s ORDER BY code")] == [1] * 10 + [0] * 15
    cli(directory, "repair", "continue")
    assert [row[0] for row in fetch_rows(fresh_db, "SELECT v FROM s ORDER BY code")] == [1] * ROWS


@pytest.mark.parametrize(("operation", "message"), [
    ('Backfill("nope", values={"a": 1})', "table 'nope' does not exist"),
    ('Backfill("t", values={"nope": 1})', "no column 'nope'"),
    ('Backfill("k", values={"v": 1})', "composite primary key (a, b)"),
    ('Backfill("t", values={"a": "x"}, batch_size=0)', "batch_size must be at least 1"),
])
def test_bad_input_is_one_line_and_changes_nothing(operation: str, message: str, backend: str, fresh_db: str,
                                                    tmp_path: Path) -> None:
    directory = project(tmp_path, fresh_db, operation)
    before = rows(fresh_db)
    result = cli(directory, "upgrade", check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert rows(fresh_db) == before
    assert scalar(fresh_db, "SELECT count(*) FROM schemashift_version") == 1


NEW_TABLE_MODELS = MODELS + '''
n = sa.Table("n", Base, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), sa.Column("x", sa.Integer),
             sa.Index("ix_n_x", "x"))
'''
NEW_TABLE = ('Backfill("t", values={"a": "done"}, expressions={"touched": "touched + 1"}, batch_size=10),\n    '
             'CreateTable(Table("n", (Column("id", Type("integer"), nullable=False, autoincrement=False), '
             'Column("x", Type("integer"))), primary_key=PrimaryKey(("id",)), indexes=(Index("ix_n_x", ("x",)),))),\n'
             '    ExecuteSQL("INSERT INTO n (id, x) SELECT n, id FROM t", reverse="DELETE FROM n")')


def test_statements_after_a_backfill_share_one_transaction(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """A backfill makes its step journaled; the statements after it (a new table, its index, an insert into it)
    run in one transaction where DDL is transactional (SQLite, PostgreSQL): the insert failing on duplicate
    keys leaves nothing of n and the journal right after the backfill. MariaDB commits each DDL statement: n
    stays, the journal counts it. Either way `repair continue` completes once the rows are fixed."""
    directory = project(tmp_path, fresh_db, NEW_TABLE)
    execute(fresh_db, "UPDATE t SET n = 1 WHERE id = 2")  # a duplicate key for n
    failed = cli(directory, "upgrade", check=False)
    assert failed.returncode == 2 and "repair" in failed.stderr, failed.stderr
    transactional = backend != "mysql"
    assert ("n" in table_names(fresh_db)) != transactional
    state, done = fetch_rows(fresh_db, "SELECT state, statements_done FROM schemashift_version "
                                       "WHERE revision = 'b0ac0f111e02'")[0]
    assert state == "failed" and (done == 1 if transactional else done > 1), (state, done)
    assert [r[2] for r in rows(fresh_db)] == [1] * ROWS  # the backfill stays done
    execute(fresh_db, "UPDATE t SET n = 2 WHERE id = 2")
    cli(directory, "repair", "continue")
    assert scalar(fresh_db, "SELECT count(*) FROM n") == ROWS
    assert [r[2] for r in rows(fresh_db)] == [1] * ROWS
    set_models(directory, NEW_TABLE_MODELS)
    assert cli(directory, "status", check=False).returncode == 0
