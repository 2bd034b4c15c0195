"""Safe mode (lock-safe execution) on PostgreSQL and MariaDB.

For a catalogue of one-change migrations on an existing table holding rows:
the statements safe mode runs (snapshot of ``upgrade --sql``), the schema it
leaves (equal to the plain form's, reflected), a lock timeout retried while a
second connection holds a conflicting lock (released when the first retry is
announced: no sleeps), the INVALID index a failed ``CREATE INDEX CONCURRENTLY``
leaves removed and rebuilt by ``repair``, and squawk as an oracle: the safe
script of every catalogue entry raises none of squawk's locking rules.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers import cli, execute, fetch_rows, inspect_schema, scalar, set_models, write_project
from schemashift import api
from schemashift.errors import ExecutionError

BASE = '''
import sqlalchemy as sa

Base = sa.MetaData()
u = sa.Table("u", Base, sa.Column("id", sa.Integer, primary_key=True))
t = sa.Table("t", Base, sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.String(80)),
             sa.Column("b", sa.Integer), sa.Column("c", sa.String(20)) {extra_cols})
w = sa.Table("w", Base, sa.Column("id", sa.Integer, nullable=False, autoincrement=False))
{extra}
'''


def models(extra_cols: str = "", extra: str = "") -> str:
    return BASE.format(extra_cols=extra_cols, extra=extra)


#: name -> models after the change
CATALOGUE = {
    "add_index": models(extra='sa.Index("ix_t_a", t.c.a)'),
    "add_unique": models(extra='sa.UniqueConstraint(t.c.a, name="uq_t_a")'),
    "add_fk": models(extra='sa.ForeignKeyConstraint([t.c.b], [u.c.id], name="fk_t_b")'),
    "add_check": models(extra='sa.CheckConstraint("b > 0", name="ck_t_b", table=t)'),
    "set_not_null": models().replace('sa.Column("b", sa.Integer)', 'sa.Column("b", sa.Integer, nullable=False)'),
    "add_column": models(extra_cols=', sa.Column("d", sa.Integer)'),
    "add_primary_key": models(extra='sa.PrimaryKeyConstraint(w.c.id, name="w_pkey")'),
    "drop_column": models().replace(', sa.Column("c", sa.String(20))', ''),
}
#: name -> (PostgreSQL statements, MariaDB statements) safe mode runs, in order (bookkeeping left out)
EXPECTED = {
    "add_index": (["CREATE INDEX CONCURRENTLY ix_t_a ON t (a)"],
                  ["CREATE INDEX ix_t_a ON t (a) ALGORITHM=INPLACE LOCK=NONE"]),
    "add_unique": (["CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_t_a ON t (a)",
                    "ALTER TABLE t ADD CONSTRAINT uq_t_a UNIQUE USING INDEX uq_t_a"],
                   ["ALTER TABLE t ADD CONSTRAINT uq_t_a UNIQUE (a), ALGORITHM=INPLACE, LOCK=NONE"]),
    "add_fk": (["ALTER TABLE t ADD CONSTRAINT fk_t_b FOREIGN KEY(b) REFERENCES u (id) NOT VALID",
                "ALTER TABLE t VALIDATE CONSTRAINT fk_t_b"],
               ["ALTER TABLE t ADD CONSTRAINT fk_t_b FOREIGN KEY(b) REFERENCES u (id)"]),
    "add_check": (["ALTER TABLE t ADD CONSTRAINT ck_t_b CHECK (b > 0) NOT VALID",
                   "ALTER TABLE t VALIDATE CONSTRAINT ck_t_b"],
                  ["ALTER TABLE t ADD CONSTRAINT ck_t_b CHECK (b > 0)"]),
    "set_not_null": (["CHECK (b IS NOT NULL) NOT VALID", "VALIDATE CONSTRAINT ss_nn_", "ALTER COLUMN b SET NOT NULL",
                      "DROP CONSTRAINT ss_nn_"],
                     ["ALTER TABLE t MODIFY COLUMN b INTEGER NOT NULL, ALGORITHM=INSTANT"]),
    "add_primary_key": (["CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS w_pkey ON w (id)",
                         "ALTER TABLE w ADD CONSTRAINT w_pkey PRIMARY KEY USING INDEX w_pkey"],
                        ["ALTER TABLE w ADD CONSTRAINT w_pkey PRIMARY KEY (id), ALGORITHM=INPLACE, LOCK=NONE"]),
    "add_column": (["ALTER TABLE t ADD COLUMN d INTEGER"], ["ALTER TABLE t ADD COLUMN d INTEGER, ALGORITHM=INSTANT"]),
    "drop_column": (["ALTER TABLE t DROP COLUMN c"], ["ALTER TABLE t DROP COLUMN c, ALGORITHM=INSTANT"]),
}
LOCK_SETTING = {"postgresql": "lock_timeout = '200ms'", "mysql": "SET SESSION lock_wait_timeout = 1"}
CONFIG = 'safe = "${SAFE:-true}"\nddl_lock_timeout = 0.2\nddl_retries = 3\nddl_backoff = 0.05\n'
ROWS = 200
#: URLs that name the dialect only (`upgrade --sql --from` never connects)
PG_OFFLINE = "postgresql+psycopg://nobody@127.0.0.1:1/none"
MYSQL_OFFLINE = "mysql+pymysql://nobody@127.0.0.1:1/none"


@pytest.fixture(scope="module", params=("postgresql", "mysql"))
def backend(request: pytest.FixtureRequest) -> str:
    """Safe mode concerns the servers only."""
    from conftest import require_backend

    require_backend(request.param)
    return str(request.param)


def project_at_base(tmp_path: Path, url: str, after: str) -> Path:
    """Tables t and u with rows (every b set), upgraded; the change to `after` generated, not applied."""
    directory = write_project(tmp_path, url, models(), extra_config=CONFIG)
    cli(directory, "generate", "-m", "base")
    cli(directory, "upgrade")
    execute(url, "INSERT INTO u (id) VALUES (1)", "INSERT INTO w (id) VALUES (1), (2), (3)",
            "INSERT INTO t (id, a, b, c) VALUES " + ", ".join(f"({i}, 'a{i}', 1, 'c')" for i in range(1, ROWS + 1)))
    set_models(directory, after)
    cli(directory, "generate", "-m", "change", "--no-rename")
    return directory


def reflected(url: str) -> dict[str, object]:
    """Columns, keys, checks (`inspect_schema`) plus indexes, unique constraints and foreign keys of t."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            extra = {
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in inspector.get_indexes("t")),
                "uniques": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints("t")),
                "fks": sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"])
                              for f in inspector.get_foreign_keys("t")),
            }
    finally:
        engine.dispose()
    return {"tables": inspect_schema(url), **extra}


def change_statements(sql: str) -> list[str]:
    """The statements of the change's block in an ``upgrade --sql`` script, without bookkeeping."""
    block = sql.split("-- apply 0002_")[1]
    skip = ("BEGIN", "COMMIT", "SET ", "RESET ", "--", "INSERT", "WITH", "(")
    ours = ("schemashift_version", "_schemashift_")
    return [line.rstrip(";") for line in block.splitlines()[1:]
            if line and not line.startswith(skip) and not any(word in line for word in ours)]


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_statements_and_result_equal_plain(name: str, backend: str, fresh_db: str, tmp_path: Path) -> None:
    """The safe statements (snapshot), each locking one under the lock timeout; applied, the schema equals the
    plain form's (reflected), and the rows stay."""
    directory = project_at_base(tmp_path, fresh_db, CATALOGUE[name])
    script = cli(directory, "upgrade", "--sql").stdout
    statements = change_statements(script)
    expected = EXPECTED[name][0 if backend == "postgresql" else 1]
    assert len(statements) == len(expected), statements
    for got, want in zip(statements, expected, strict=True):
        assert want in got, (got, want)
    assert LOCK_SETTING[backend] in script, script
    dry_run = cli(directory, "upgrade", "--dry-run").stdout
    if backend == "postgresql" and name.startswith(("add_index", "add_unique", "add_fk", "add_check", "set_")):
        assert f"safe mode: {statements[-1]}" in dry_run, dry_run
    applied = cli(directory, "upgrade")
    refused = "the server refused" in applied.stdout  # MariaDB: SET NOT NULL is INPLACE, not INSTANT
    assert refused == (backend == "mysql" and name == "set_not_null"), applied.stdout
    safe = reflected(fresh_db)
    cli(directory, "downgrade", "-1", env={"SAFE": "false"})
    cli(directory, "upgrade", env={"SAFE": "false"})
    assert reflected(fresh_db) == safe
    assert scalar(fresh_db, "SELECT count(*) FROM t") == ROWS


BIGINT_B = models().replace('sa.Column("b", sa.Integer)', 'sa.Column("b", sa.BigInteger)')


def b_type(url: str) -> str:
    """t.b's type, in lower case, in this database (MariaDB's information_schema spans every database)."""
    schema = "current_schema()" if url.startswith("postgresql") else "DATABASE()"
    return str(scalar(url, "SELECT data_type FROM information_schema.columns WHERE table_name = 't' "
                           f"AND column_name = 'b' AND table_schema = {schema}")).lower()


def limit_rows(directory: Path, rows: int) -> None:
    """Set the environment's ``safe_rewrite_rows``."""
    config = directory / "schemashift.toml"
    config.write_text(config.read_text().replace("ddl_backoff = 0.05\n", f"ddl_backoff = 0.05\nsafe_rewrite_rows = {rows}\n"))


def test_rewriting_type_change_refused_on_a_large_table_unless_allowed(backend: str, fresh_db: str,
                                                                       tmp_path: Path) -> None:
    """A table rewrite (PostgreSQL) or copy (MariaDB) on a table above ``safe_rewrite_rows`` is refused in safe
    mode (expand/contract advice), nothing changed; allowed, it runs."""
    directory = project_at_base(tmp_path, fresh_db, BIGINT_B)
    limit_rows(directory, ROWS - 1)
    refused = cli(directory, "upgrade", check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert f"holds more than {ROWS - 1} rows (safe_rewrite_rows)" in refused.stderr, refused.stderr
    assert "add a new column" in refused.stderr and "bigint" not in b_type(fresh_db)
    assert cli(directory, "status", check=False).returncode == 1  # pending, nothing partly applied
    code = "SS205" if backend == "postgresql" else "SS401"
    path = sorted((directory / "migrations").glob("0002_*.py"))[0]
    lines = path.read_text().splitlines()
    lines = [f'    allow({line.strip().rstrip(",")}, {code}="t is small"),' if line.startswith("    AlterColumn(")
             else line for line in lines]
    path.write_text("\n".join(lines) + "\n")
    cli(directory, "manifest")
    cli(directory, "upgrade")
    assert "bigint" in b_type(fresh_db)


@pytest.mark.parametrize("name", ["add_fk", "add_check"])
def test_mariadb_validated_constraint_refused_on_a_large_table_unless_allowed(name: str, backend: str, fresh_db: str,
                                                                              tmp_path: Path) -> None:
    """MariaDB validates a new foreign key or CHECK while writes wait (no online form): refused above
    ``safe_rewrite_rows`` with the reason (SS403), nothing changed; allowed, it runs."""
    if backend != "mysql":
        pytest.skip("PostgreSQL has NOT VALID + VALIDATE")
    directory = project_at_base(tmp_path, fresh_db, CATALOGUE[name])
    limit_rows(directory, ROWS - 1)
    refused = cli(directory, "upgrade", check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "validates every row while writes wait" in refused.stderr and "SS403" in refused.stderr, refused.stderr
    assert cli(directory, "status", check=False).returncode == 1
    path = sorted((directory / "migrations").glob("0002_*.py"))[0]
    lines = [f'    allow({line.strip().rstrip(",")}, SS403="t is small"),' if line.startswith("    AddConstraint(")
             else line for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")
    cli(directory, "manifest")
    cli(directory, "upgrade")
    assert cli(directory, "status", check=False).returncode == 0


def test_rewriting_type_change_runs_on_a_small_table(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """At or below ``safe_rewrite_rows`` (default 10000) the rewrite runs, plain, under the lock timeout; its
    downgrade (narrowing again) too; rows kept."""
    directory = project_at_base(tmp_path, fresh_db, BIGINT_B)
    script = cli(directory, "upgrade", "--sql").stdout
    statements = change_statements(script)
    assert len(statements) == 1 and "BIGINT" in statements[0].upper(), statements
    assert LOCK_SETTING[backend] in script and "ALGORITHM" not in statements[0], script
    cli(directory, "upgrade")
    assert "bigint" in b_type(fresh_db)
    cli(directory, "downgrade", "-1")
    assert "bigint" not in b_type(fresh_db)
    assert scalar(fresh_db, "SELECT count(*) FROM t") == ROWS
    limit_rows(directory, ROWS)  # exactly at the limit: still runs
    cli(directory, "upgrade")
    assert cli(directory, "status", check=False).returncode == 0


def upgrade_counting(directory: Path) -> tuple[list[str], list[str]]:
    """``upgrade`` in this process: (the statements the driver saw, the output lines)."""
    statements: list[str] = []
    lines: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        api.upgrade(api.open_project(directory / "schemashift.toml"), out=lines.append)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    return statements, lines


def test_online_change_counts_no_rows(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """A change the server runs online (MariaDB: ADD COLUMN, INSTANT) asks neither the estimate nor a count:
    the rows matter only if the server refuses the online algorithm."""
    directory = project_at_base(tmp_path, fresh_db, CATALOGUE["add_column"])
    statements, _ = upgrade_counting(directory)
    assert not [sql for sql in statements if "TABLE_ROWS" in sql or "SELECT 1 FROM t LIMIT" in sql], statements
    assert scalar(fresh_db, "SELECT count(*) FROM t") == ROWS


@pytest.mark.parametrize("limit", [ROWS, ROWS - 1])
def test_refused_online_algorithm_falls_back_by_the_rows_counted_then(limit: int, backend: str, fresh_db: str,
                                                                     tmp_path: Path) -> None:
    """MariaDB refuses INSTANT for SET NOT NULL: only then are t's rows asked; at most ``safe_rewrite_rows``,
    the plain statement runs (the server's own algorithm), above it the INPLACE, LOCK=NONE form."""
    if backend != "mysql":
        pytest.skip("an algorithm fallback is MariaDB/MySQL's")
    directory = project_at_base(tmp_path, fresh_db, CATALOGUE["set_not_null"])
    limit_rows(directory, limit)
    statements, lines = upgrade_counting(directory)
    refused = [line for line in lines if "the server refused" in line]
    assert len(refused) == 1, lines
    assert ("ALGORITHM=INPLACE, LOCK=NONE" in refused[0].split(": running ")[1]) == (limit < ROWS), refused
    asked = [index for index, sql in enumerate(statements) if "TABLE_ROWS" in sql or "SELECT 1 FROM t LIMIT" in sql]
    instant = next(index for index, sql in enumerate(statements) if "ALGORITHM=INSTANT" in sql)
    assert asked and all(index > instant for index in asked), statements  # estimated or counted after the refusal
    assert cli(directory, "status", check=False).returncode == 0
    assert scalar(fresh_db, "SELECT count(*) FROM t") == ROWS


def test_widen_then_downgrade_with_default_settings(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """The ordinary round trip with no safe-mode setting at all: widen a column, `downgrade -1`, upgrade again."""
    directory = write_project(tmp_path, fresh_db, models())
    cli(directory, "generate", "-m", "base")
    cli(directory, "upgrade")
    execute(fresh_db, "INSERT INTO t (id, a, b, c) VALUES (1, 'x', 1, 'short')")
    set_models(directory, models().replace("sa.String(20)", "sa.String(200)").replace("sa.Integer)", "sa.BigInteger)"))
    cli(directory, "generate", "-m", "widen", "--no-rename")
    cli(directory, "upgrade")
    cli(directory, "downgrade", "-1")
    cli(directory, "upgrade")
    assert cli(directory, "status", check=False).returncode == 0
    assert scalar(fresh_db, "SELECT c FROM t WHERE id = 1") == "short"


def test_large_table_renamed_earlier_in_the_plan_is_counted_under_its_new_name(backend: str, fresh_db: str,
                                                                                 tmp_path: Path) -> None:
    """A rename in one migration, the rewrite in the next, both pending: the rows counted are the renamed
    table's (refused above the limit), not a missing table's."""
    directory = write_project(tmp_path, fresh_db, models(), extra_config=CONFIG)
    cli(directory, "generate", "-m", "base")
    cli(directory, "upgrade")
    execute(fresh_db, "INSERT INTO t (id, a, b, c) VALUES " + ", ".join(f"({i}, 'a', 1, 'c')" for i in range(1, ROWS + 1)))
    renamed = models().replace('sa.Table("t"', 'sa.Table("t2"').replace("t.c.", "t2.c.")
    set_models(directory, renamed)
    cli(directory, "generate", "-m", "rename", "--rename-table", "t:t2")
    limit_rows(directory, 10)
    set_models(directory, renamed.replace('sa.Column("b", sa.Integer)', 'sa.Column("b", sa.BigInteger)'))
    cli(directory, "generate", "-m", "widen", "--no-rename")
    refused = cli(directory, "upgrade", check=False)
    assert refused.returncode == 2 and "t2.b" in refused.stderr and "more than 10 rows" in refused.stderr, refused.stderr
    assert scalar(fresh_db, "SELECT count(*) FROM t") == ROWS  # nothing ran, not even the rename


def test_offline_sql_marks_the_rewrite(tmp_path: Path) -> None:
    """`--sql --from` cannot count rows: the plain rewrite is written with a comment saying safe mode refuses it
    online above the limit."""
    directory = write_project(tmp_path, PG_OFFLINE, models())
    cli(directory, "generate", "-m", "base")
    set_models(directory, BIGINT_B)
    cli(directory, "generate", "-m", "change", "--no-rename")
    first = json.loads(cli(directory, "history", "--json").stdout)[0]["revision"]
    sql = cli(directory, "upgrade", "--sql", "--from", first).stdout
    lines = sql.splitlines()
    at = next(i for i, line in enumerate(lines) if "TYPE BIGINT" in line.upper())
    assert "rewrites or copies table t" in lines[at - 1] and "10000 rows (safe_rewrite_rows)" in lines[at - 1], sql
    assert any("lock_timeout" in line for line in lines[at - 3:at]), sql


@pytest.mark.parametrize("url", [PG_OFFLINE, MYSQL_OFFLINE], ids=["postgresql", "mysql"])
def test_table_created_in_the_same_migration_keeps_the_plain_forms(url: str, tmp_path: Path) -> None:
    """A table the migration creates gets its index, foreign key and check in plain forms (no CONCURRENTLY,
    NOT VALID, ALGORITHM or lock timeout); the index on the existing table t, in the same migration, the safe one."""
    directory = write_project(tmp_path, url, models(), extra_config="safe = true\n")
    cli(directory, "generate", "-m", "base")
    set_models(directory, models(extra='v = sa.Table("v", Base, sa.Column("id", sa.Integer, primary_key=True), '
                                       'sa.Column("x", sa.Integer, sa.ForeignKey("u.id", name="fk_v_x")), '
                                       'sa.CheckConstraint("x > 0", name="ck_v_x"))\n'
                                       'sa.Index("ix_v_x", v.c.x)\nsa.Index("ix_t_a", t.c.a)'))
    cli(directory, "generate", "-m", "change", "--no-rename")
    first = json.loads(cli(directory, "history", "--json").stdout)[0]["revision"]
    lines = cli(directory, "upgrade", "--sql", "--from", first).stdout.split("-- apply 0002_")[1].splitlines()
    new_table = [line for line in lines if " v " in line or " v (" in line or "ON v" in line]
    assert any("CREATE INDEX ix_v_x ON v (x)" in line for line in new_table), lines
    assert not any(word in line for line in new_table for word in ("CONCURRENTLY", "NOT VALID", "ALGORITHM")), lines
    at = lines.index(next(line for line in lines if line.startswith("CREATE TABLE v")))
    assert "lock_timeout" not in lines[at - 1], lines
    online = "CONCURRENTLY ix_t_a" if url == PG_OFFLINE else "ALGORITHM=INPLACE LOCK=NONE"
    assert any("ix_t_a" in line and online in line for line in lines), lines


def test_failed_safe_migration_is_unchanged_or_repairable(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """A CHECK the rows break: the upgrade fails with one error; the database is either unchanged or recorded
    as partly applied, and once the rows are fixed `repair` + `upgrade` reach head with the CHECK in force."""
    directory = project_at_base(tmp_path, fresh_db, CATALOGUE["add_check"])
    execute(fresh_db, "UPDATE t SET b = -1 WHERE id = 1")
    failed = cli(directory, "upgrade", check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr
    status = cli(directory, "status", check=False)
    execute(fresh_db, "UPDATE t SET b = 1 WHERE id = 1")
    if status.returncode == 2:
        assert "PARTLY" in (status.stdout + status.stderr).upper(), status.stdout
        cli(directory, "repair", "continue")
    else:
        assert status.returncode == 1, status.stdout
        execute(fresh_db, "UPDATE t SET b = -2 WHERE id = 2", "UPDATE t SET b = 1 WHERE id = 2")  # no CHECK yet
    cli(directory, "upgrade")
    assert cli(directory, "status", check=False).returncode == 0
    with pytest.raises(sa.exc.DBAPIError):
        execute(fresh_db, "UPDATE t SET b = -5 WHERE id = 2")


def holder_sql(backend: str) -> list[str]:
    """Statements that, in an open transaction, hold a lock the first statement of every safe form must wait for
    (PostgreSQL: a writer's ROW EXCLUSIVE lock, which a concurrent index build waits out too)."""
    if backend == "postgresql":
        return ["UPDATE t SET b = b WHERE id = 1", "UPDATE w SET id = id WHERE id = 1"]
    return ["SELECT count(*) FROM t", "SELECT count(*) FROM w"]  # the open transaction keeps their metadata locks


#: the safe forms that build an index CONCURRENTLY (a timed-out build leaves it INVALID: removed before the retry)
CONCURRENT = ("add_index", "add_primary_key", "add_unique")


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_lock_timeout_retried_while_another_session_holds_the_table(name: str, backend: str, fresh_db: str,
                                                                     tmp_path: Path) -> None:
    """Each safe form's first statement times out behind an open transaction's lock, is retried after the backoff,
    and passes once that transaction (told by the retry announcement) ends; a concurrent build's INVALID index is
    removed first."""
    directory = project_at_base(tmp_path, fresh_db, CATALOGUE[name])
    locked, retried, released = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        engine = sa.create_engine(fresh_db, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                for sql in holder_sql(backend):
                    connection.exec_driver_sql(sql)
                locked.set()
                if not retried.wait(60):
                    errors.append(AssertionError("no retry announced while the lock was held"))
                connection.rollback()
                released.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            locked.set()
        finally:
            engine.dispose()

    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        if "lock not granted" in line:
            retried.set()
            released.wait(30)  # the retry starts once the holder is gone

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(30)
    try:
        api.upgrade(api.open_project(directory / "schemashift.toml"), out=out)
    finally:
        retried.set()
        holder.join(30)
    assert not errors
    assert released.is_set()
    assert any("retry 1 of 3" in line for line in lines), lines
    removed = [line for line in lines if "removed what the failed statement left" in line]
    assert len(removed) == (1 if backend == "postgresql" and name in CONCURRENT else 0), lines
    assert cli(directory, "status", check=False).returncode == 0
    assert scalar(fresh_db, "SELECT count(*) FROM t") == ROWS


def test_lock_timeout_retries_exhausted(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """With the lock held throughout, the statement fails after its retries with one clear error."""
    directory = project_at_base(tmp_path, fresh_db, CATALOGUE["add_column"])
    (directory / "schemashift.toml").write_text((directory / "schemashift.toml").read_text()
                                                .replace("ddl_retries = 3", "ddl_retries = 1"))
    engine = sa.create_engine(fresh_db, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            for sql in holder_sql(backend):
                connection.exec_driver_sql(sql)
            lines: list[str] = []
            with pytest.raises(ExecutionError):
                api.upgrade(api.open_project(directory / "schemashift.toml"), out=lines.append)
            connection.rollback()
    finally:
        engine.dispose()
    assert sum("lock not granted" in line for line in lines) == 1, lines
    assert "d" not in inspect_schema(fresh_db)["t"]["columns"]  # type: ignore[operator]


def test_invalid_index_of_failed_concurrent_build_is_removed_and_rebuilt(backend: str, fresh_db: str,
                                                                         tmp_path: Path) -> None:
    """Duplicates make CREATE UNIQUE INDEX CONCURRENTLY fail: its INVALID index is dropped at once; once the
    duplicates are gone, `repair continue` builds it and finishes the migration."""
    if backend != "postgresql":
        pytest.skip("CONCURRENTLY is PostgreSQL's")
    directory = project_at_base(tmp_path, fresh_db, CATALOGUE["add_unique"])
    execute(fresh_db, "UPDATE t SET a = 'same' WHERE id <= 2")
    failed = cli(directory, "upgrade", check=False)
    assert failed.returncode != 0 and "recorded as failed" in failed.stderr, failed.stderr  # the first one failed
    assert scalar(fresh_db, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                            "WHERE c.relname = 'uq_t_a'") == 0
    execute(fresh_db, "UPDATE t SET a = 'other' WHERE id = 2")
    cli(directory, "repair", "continue")
    assert scalar(fresh_db, "SELECT count(*) FROM pg_constraint WHERE conname = 'uq_t_a'") == 1
    assert scalar(fresh_db, "SELECT bool_and(indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                            "WHERE c.relname = 'uq_t_a'") is True


def test_invalid_index_is_never_counted_as_present(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """A concurrent build that timed out behind a writer at every try leaves an INVALID index: the run fails
    (the step recorded as failed) and `repair continue` drops and rebuilds it. An INVALID index under the name the migrations
    expect is drift for `status` and `diff` (the fast path too), not the index."""
    if backend != "postgresql":
        pytest.skip("CONCURRENTLY is PostgreSQL's")
    directory = project_at_base(tmp_path, fresh_db, CATALOGUE["add_index"])
    valid = "SELECT bool_and(indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE relname = 'ix_t_a'"
    engine = sa.create_engine(fresh_db, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as writer:
            writer.exec_driver_sql(holder_sql(backend)[0])
            failed = cli(directory, "upgrade", check=False)
            assert failed.returncode != 0 and "recorded as failed" in failed.stderr, failed.stderr
            assert scalar(fresh_db, valid) is False  # its removal timed out too: left to repair
            writer.rollback()
        cli(directory, "repair", "continue")
        assert scalar(fresh_db, valid) is True
        assert cli(directory, "status", check=False).returncode == 0  # stores the fingerprint of a clean check
        execute(fresh_db, "DROP INDEX ix_t_a")
        with engine.connect() as writer, engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
            writer.exec_driver_sql(holder_sql(backend)[0])
            other.exec_driver_sql("SET lock_timeout = '100ms'")
            with pytest.raises(sa.exc.OperationalError):
                other.exec_driver_sql("CREATE INDEX CONCURRENTLY ix_t_a ON t (a)")
            writer.rollback()
    finally:
        engine.dispose()
    assert scalar(fresh_db, valid) is False
    status = cli(directory, "status", check=False)
    assert status.returncode == 1 and "ix_t_a" in status.stdout, status.stdout
    assert cli(directory, "diff", "--against", "migrations", check=False).returncode == 1


# -- squawk as an oracle (no database: `upgrade --sql --from`) ------------------------------------------------

#: squawk's rules about locks and blocking (their plain-SQL findings are what safe mode exists for)
LOCKING_RULES = {
    "require-concurrent-index-creation", "require-concurrent-index-deletion", "constraint-missing-not-valid",
    "adding-foreign-key-constraint", "adding-not-nullable-field", "disallowed-unique-constraint",
    "require-timeout-settings", "require-lock-timeout",
}


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_squawk_finds_no_locking_rule_in_safe_sql(name: str, squawk: str, tmp_path: Path) -> None:
    directory = write_project(tmp_path, PG_OFFLINE, models(), extra_config="safe = true\nstatement_timeout = 30\n")
    cli(directory, "generate", "-m", "base")
    set_models(directory, CATALOGUE[name])
    cli(directory, "generate", "-m", "change", "--no-rename")
    first = json.loads(cli(directory, "history", "--json").stdout)[0]["revision"]
    sql = cli(directory, "upgrade", "--sql", "--from", first).stdout
    script = tmp_path / f"{name}.sql"
    ours = ("schemashift_version", "_schemashift_")
    script.write_text("\n".join(line for line in sql.splitlines() if not any(word in line for word in ours)))
    report = subprocess.run([squawk, "--reporter", "json", str(script)], capture_output=True,
                            text=True, timeout=60)
    rules = {item["rule_name"] for item in json.loads(report.stdout or "[]")}
    assert not rules & LOCKING_RULES, (name, rules, script.read_text())


def test_repair_continues_the_safe_statements_after_a_kill(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """Killed right after the concurrent index build, `repair continue` runs the rest of the safe form
    (ADD CONSTRAINT … USING INDEX on PostgreSQL), not the plain one."""
    if backend != "postgresql":
        pytest.skip("the two-statement unique key is PostgreSQL's")
    directory = project_at_base(tmp_path, fresh_db, CATALOGUE["add_unique"])
    killed = cli(directory, "upgrade", check=False, env={"SCHEMASHIFT_FAULT_KILL_AT": "0+"})
    assert killed.returncode != 0
    assert scalar(fresh_db, "SELECT count(*) FROM pg_constraint WHERE conname = 'uq_t_a'") == 0
    cli(directory, "repair", "continue")
    assert scalar(fresh_db, "SELECT count(*) FROM pg_constraint c JOIN pg_class i ON i.oid = c.conindid "
                            "WHERE c.conname = 'uq_t_a' AND i.relname = 'uq_t_a'") == 1
    assert cli(directory, "status", check=False).returncode == 0


def test_settings_from_the_config(tmp_path: Path) -> None:
    """`safe` and the ddl_* settings per environment; SQLite has no lock timeout, so safe mode means nothing there;
    a bad value is one line, exit 2."""
    from schemashift.config import load_config
    from schemashift.dialects import get_dialect
    from schemashift.planning.safe import SafeSettings, settings_of

    (tmp_path / "schemashift.toml").write_text(
        'models = "app:Base"\n[env.a]\nurl = "sqlite:///x.db"\nsafe = true\nddl_lock_timeout = 0.5\n'
        'ddl_retries = 2\nddl_backoff = 0.1\nsafe_rewrite_rows = 50\n[env.b]\nextends = "a"\nsafe = false\n')
    config = load_config(cwd=tmp_path)
    a, b = config.env("a"), config.env("b")
    assert settings_of(a, get_dialect("postgresql")) == SafeSettings(0.5, 2, 0.1, 50)
    assert settings_of(a, get_dialect("sqlite")) is None
    assert settings_of(b, get_dialect("postgresql")) is None
    default = load_config(cwd=tmp_path).env("a")
    default.safe = None
    assert settings_of(default, get_dialect("postgresql")) is not None  # on by default
    assert settings_of(default, get_dialect("mysql")) is not None
    (tmp_path / "schemashift.toml").write_text('models = "app:Base"\n[env.a]\nurl = "sqlite:///x.db"\n'
                                               'safe_rewrite_rows = -1\n')
    result = cli(tmp_path, "status", check=False)
    assert result.returncode == 2 and "safe_rewrite_rows must not be negative" in result.stderr, result.stderr
    (tmp_path / "schemashift.toml").write_text('models = "app:Base"\n[env.a]\nurl = "sqlite:///x.db"\nsafe = "maybe"\n')
    result = cli(tmp_path, "status", check=False)
    assert result.returncode == 2 and "safe must be true or false" in result.stderr and "Traceback" not in result.stderr


#: a table the migration creates, with a foreign key to u and an index, beside an index built on t
NEW_TABLE = models(extra='n = sa.Table("n", Base, sa.Column("id", sa.Integer, primary_key=True), '
                         'sa.Column("x", sa.Integer, sa.ForeignKey("u.id", name="fk_n_x")))\n'
                         'sa.Index("ix_n_x", n.c.x)\nsa.Index("ix_t_a", t.c.a)')


def project_with_new_table(tmp_path: Path, url: str) -> tuple[Path, str]:
    """At base with rows; the next migration builds ix_t_a (CONCURRENTLY: the step is journaled), creates n
    with its key and index, then inserts a row into n whose key u lacks (fails until u has row 99)."""
    from schemashift.history.writer import write_migration
    from schemashift.migration import (
        Column, CreateIndex, CreateTable, ExecuteSQL, ForeignKey, Index, PrimaryKey, Table, Type,
    )

    directory = project_at_base(tmp_path, url, models())
    for leftover in (directory / "migrations").glob("*change*"):
        leftover.unlink()
    integer = Type("integer")
    table = Table("n", (Column("id", integer, nullable=False), Column("x", integer)), primary_key=PrimaryKey(("id",)),
                  foreign_keys=(ForeignKey(("x",), "u", ("id",), name="fk_n_x"),),
                  indexes=(Index("ix_n_x", ("x",)),))
    head = api.open_project(directory / "schemashift.toml").history().head
    revision = write_migration(directory / "migrations", "new table", [
        CreateIndex("t", Index("ix_t_a", ("a",))),
        CreateTable(table),
        ExecuteSQL("INSERT INTO n (id, x) VALUES (1, 99)", reverse="DELETE FROM n"),
    ], parent=head).revision
    set_models(directory, NEW_TABLE)
    return directory, revision


def new_table_objects(url: str) -> list[object]:
    """What exists of n: the table, its index, its key."""
    return [scalar(url, f"SELECT count(*) FROM pg_class WHERE relname = '{name}'") for name in ("n", "ix_n_x")] + \
        [scalar(url, "SELECT count(*) FROM pg_constraint WHERE conname = 'fk_n_x'")]


@pytest.mark.parametrize("action", ["continue", "undo"])
def test_new_table_statements_commit_together_in_a_journaled_step(action: str, backend: str, fresh_db: str,
                                                                  tmp_path: Path) -> None:
    """PostgreSQL: beside the CONCURRENTLY build on t, the plain statements of the new table n and the insert
    after them run in one transaction with the journal's count: the insert failing leaves nothing of n, the
    journal at the statement after the index build; `repair continue` (the cause fixed) or `undo` completes."""
    if backend != "postgresql":
        pytest.skip("transactional DDL: PostgreSQL's (MariaDB commits each DDL statement)")
    directory, revision = project_with_new_table(tmp_path, fresh_db)
    failed = cli(directory, "upgrade", check=False)
    assert failed.returncode == 2 and "PARTLY upgraded (1 of its statements ran)" in failed.stderr, failed.stderr
    assert "rolled back" in failed.stderr, failed.stderr
    assert new_table_objects(fresh_db) == [0, 0, 0]
    assert scalar(fresh_db, "SELECT count(*) FROM pg_index JOIN pg_class ON pg_class.oid = indexrelid "
                            "WHERE relname = 'ix_t_a' AND indisvalid") == 1
    row = fetch_rows(fresh_db, "SELECT state, statements_done, failed_statement, running_statement "
                               f"FROM schemashift_version WHERE revision = '{revision}'")
    assert row == [("failed", 1, "INSERT INTO n (id, x) VALUES (1, 99)", None)], row
    if action == "continue":
        again = cli(directory, "repair", "continue", check=False)  # the cause is still there
        assert again.returncode == 2 and new_table_objects(fresh_db) == [0, 0, 0], again.stderr
        execute(fresh_db, "INSERT INTO u (id) VALUES (99)")
        cli(directory, "repair", "continue")
        assert new_table_objects(fresh_db) == [1, 1, 1]
        assert fetch_rows(fresh_db, "SELECT id, x FROM n") == [(1, 99)]
    else:
        cli(directory, "repair", "undo")
        assert new_table_objects(fresh_db) == [0, 0, 0]
        assert scalar(fresh_db, "SELECT count(*) FROM pg_class WHERE relname = 'ix_t_a'") == 0
        execute(fresh_db, "INSERT INTO u (id) VALUES (99)")
        cli(directory, "upgrade")
    assert cli(directory, "status", check=False).returncode == 0
    assert scalar(fresh_db, f"SELECT count(*) FROM schemashift_version WHERE revision = '{revision}' "
                            "AND state = 'applied'") == 1


def test_kill_inside_the_new_table_statements_leaves_none_of_them(backend: str, fresh_db: str,
                                                                  tmp_path: Path) -> None:
    """Killed after n's index was built (before the shared commit): n is not there, the journal says the
    step stands after the index build on t, and `repair continue` completes it."""
    if backend != "postgresql":
        pytest.skip("transactional DDL: PostgreSQL's")
    directory, revision = project_with_new_table(tmp_path, fresh_db)
    execute(fresh_db, "INSERT INTO u (id) VALUES (99)")
    killed = cli(directory, "upgrade", check=False, env={"SCHEMASHIFT_FAULT_KILL_AT": "2+"})
    assert killed.returncode != 0
    assert new_table_objects(fresh_db) == [0, 0, 0]
    row = fetch_rows(fresh_db, "SELECT state, statements_done, running_statement "
                               f"FROM schemashift_version WHERE revision = '{revision}'")
    assert len(row) == 1 and row[0][:2] == ("running", 1) and str(row[0][2]).startswith("CREATE TABLE n"), row
    cli(directory, "repair", "continue")
    assert new_table_objects(fresh_db) == [1, 1, 1]
    assert cli(directory, "status", check=False).returncode == 0
