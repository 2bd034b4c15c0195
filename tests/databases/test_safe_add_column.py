"""Safe mode adds a NOT NULL column with a volatile default to a large table in steps, around a batched backfill.

On a table above ``safe_rewrite_rows`` (lowered here to simulate a large table),
``ADD COLUMN d … NOT NULL DEFAULT gen_random_uuid()`` (PostgreSQL: a rewrite under
ACCESS EXCLUSIVE) or ``DEFAULT uuid()`` (MariaDB: a copy, no INSTANT/INPLACE) runs
as: the column added nullable without its default, the default set (new rows get
it), a `Backfill` of the NULL rows with the default's expression, then NOT NULL
the lock-safe way. Checked: the statements (``--sql``, ``--dry-run``), every row
filled with its own value, the schema equal to the models' and to the plain
form's, the downgrade, a kill in the middle of the backfill resumed by ``repair
continue`` without redoing a finished batch; the plain statement on a small table,
for constant and once-evaluated defaults, and on SQLite (safe mode means nothing there).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import cli, execute, inspect_schema, scalar, set_models, write_project

MODELS = '''
import sqlalchemy as sa

Base = sa.MetaData()
t = sa.Table("t", Base, sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.String(20)) {extra})
'''
#: backend -> the column added: NOT NULL, with a default the database evaluates row by row
VOLATILE = {
    "postgresql": 'sa.Column("d", sa.Uuid, nullable=False, server_default=sa.text("gen_random_uuid()"))',
    "mysql": 'sa.Column("d", sa.String(36), nullable=False, server_default=sa.text("uuid()"))',
    "sqlite": 'sa.Column("d", sa.Integer, nullable=False, server_default=sa.text("(abs(random()))"))',
}
#: backend -> the statements safe mode runs on a large table, in order (each a prefix of the statement)
EXPECTED = {
    "postgresql": ["ALTER TABLE t ADD COLUMN d UUID", "ALTER TABLE t ALTER COLUMN d SET DEFAULT gen_random_uuid()",
                   "UPDATE t SET d = gen_random_uuid() WHERE (d IS NULL) /* schemashift runs this in batches",
                   "ALTER TABLE t ADD CONSTRAINT ss_nn_", "ALTER TABLE t VALIDATE CONSTRAINT ss_nn_",
                   "ALTER TABLE t ALTER COLUMN d SET NOT NULL", "ALTER TABLE t DROP CONSTRAINT ss_nn_"],
    "mysql": ["ALTER TABLE t ADD COLUMN d VARCHAR(36), ALGORITHM=INSTANT",
              "ALTER TABLE t MODIFY COLUMN d VARCHAR(36) DEFAULT (uuid()), ALGORITHM=INSTANT",
              "UPDATE t SET d = uuid() WHERE (d IS NULL) /* schemashift runs this in batches",
              "ALTER TABLE t MODIFY COLUMN d VARCHAR(36) NOT NULL DEFAULT (uuid()), ALGORITHM=INSTANT"],
}
ROWS = 2500  # three batches of 1000
CONFIG = 'safe = "${SAFE:-true}"\nddl_lock_timeout = 0.2\nddl_retries = 3\nddl_backoff = 0.05\n'
SKIP = ("BEGIN", "COMMIT", "SET ", "RESET ", "--", "INSERT", "WITH", "(")


@pytest.fixture(params=("postgresql", "mysql"))
def backend(request: pytest.FixtureRequest) -> str:
    """Safe mode concerns the servers; SQLite has its own test."""
    from conftest import require_backend

    require_backend(request.param)
    return str(request.param)


def project(tmp_path: Path, url: str, column: str, *, limit: int | None = 100) -> Path:
    """Table t with ROWS rows at base; the change adding `column` generated, not applied; ``safe_rewrite_rows``
    set to `limit` (None: the default, 10000)."""
    config = CONFIG + (f"safe_rewrite_rows = {limit}\n" if limit is not None else "")
    directory = write_project(tmp_path, url, MODELS.format(extra=""), extra_config=config)
    cli(directory, "generate", "-m", "base")
    cli(directory, "upgrade")
    execute(url, "INSERT INTO t (id, a) VALUES " + ", ".join(f"({i}, 'a')" for i in range(1, ROWS + 1)))
    set_models(directory, MODELS.format(extra=f", {column}"))
    cli(directory, "generate", "-m", "change")
    return directory


def change_statements(script: str) -> list[str]:
    """The statements of the change's block in an ``upgrade --sql`` script, without bookkeeping."""
    block = script.split("-- apply 0002_")[1]
    return [line.rstrip(";") for line in block.splitlines()[1:]
            if line and not line.startswith(SKIP) and "schemashift_" not in line]


def filled(url: str) -> tuple[object, object]:
    """Rows of t whose d is NULL, and the number of distinct values of d."""
    return scalar(url, "SELECT count(*) FROM t WHERE d IS NULL"), scalar(url, "SELECT count(DISTINCT d) FROM t")


def test_large_table_added_in_steps_around_a_batched_backfill(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """The steps (``--sql``, ``--dry-run``, lint without the rewrite's code); every row its own value; the
    schema equal to the models' and to the plain form's; the downgrade drops the column."""
    directory = project(tmp_path, fresh_db, VOLATILE[backend])
    statements = change_statements(cli(directory, "upgrade", "--sql").stdout)
    assert len(statements) == len(EXPECTED[backend]), statements
    for got, want in zip(statements, EXPECTED[backend], strict=True):
        assert got.startswith(want), (got, want)
    dry_run = cli(directory, "upgrade", "--dry-run").stdout
    assert "safe mode: UPDATE t SET d = " in dry_run, dry_run
    lint = cli(directory, "lint", check=False).stdout
    assert "SS206" not in lint and "SS401" not in lint, lint
    out = cli(directory, "upgrade").stdout
    assert f"backfill t: 3 batches, {ROWS} rows (100%)" in out, out
    assert filled(fresh_db) == (0, ROWS)
    execute(fresh_db, f"INSERT INTO t (id, a) VALUES ({ROWS + 1}, 'new')")  # the default serves new rows
    assert scalar(fresh_db, f"SELECT d FROM t WHERE id = {ROWS + 1}") is not None
    assert cli(directory, "diff", check=False).returncode == 0  # the database equals the models
    safe = inspect_schema(fresh_db)
    cli(directory, "downgrade", "-1")
    assert "d" not in inspect_schema(fresh_db)["t"]["columns"]  # type: ignore[operator]
    cli(directory, "upgrade", env={"SAFE": "false"})
    assert inspect_schema(fresh_db) == safe


def test_killed_backfill_resumes_after_its_last_finished_batch(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """Killed before the third batch: the column is there, nullable, two batches filled; `repair continue` runs
    the last batch only and finishes with NOT NULL (`repair undo`: see the next test)."""
    directory = project(tmp_path, fresh_db, VOLATILE[backend])
    # statements counted from 0: ADD COLUMN, SET DEFAULT, then one per batch
    killed = cli(directory, "upgrade", check=False, env={"SCHEMASHIFT_FAULT_KILL_AT": "4"})
    assert killed.returncode != 0
    assert filled(fresh_db) == (ROWS - 2000, 2000)
    journal = str(scalar(fresh_db, "SELECT running_statement FROM schemashift_version WHERE state != 'applied'"))
    assert '"batches": 2' in journal and '"start": 2001' in journal, journal
    repaired = cli(directory, "repair", "continue").stdout
    assert "resumes after 2 finished batch(es) (2000 rows)" in repaired, repaired
    assert filled(fresh_db) == (0, ROWS)
    assert cli(directory, "status", check=False).returncode == 0
    assert cli(directory, "diff", check=False).returncode == 0


def test_killed_backfill_undone(backend: str, fresh_db: str, tmp_path: Path) -> None:
    """Killed in the middle of the backfill, `repair undo` drops the half-added column: back at base, rows kept."""
    directory = project(tmp_path, fresh_db, VOLATILE[backend])
    assert cli(directory, "upgrade", check=False, env={"SCHEMASHIFT_FAULT_KILL_AT": "3"}).returncode != 0
    cli(directory, "repair", "undo")
    assert "d" not in inspect_schema(fresh_db)["t"]["columns"]  # type: ignore[operator]
    assert scalar(fresh_db, "SELECT count(*) FROM t") == ROWS
    cli(directory, "upgrade")
    assert filled(fresh_db) == (0, ROWS)


def test_nullable_column_with_a_volatile_default_is_backfilled_too(backend: str, fresh_db: str,
                                                                  tmp_path: Path) -> None:
    """A nullable column with a volatile default: the same steps without NOT NULL; every row gets its value (as
    the plain ADD COLUMN gives them)."""
    directory = project(tmp_path, fresh_db, VOLATILE[backend].replace("nullable=False", "nullable=True"))
    statements = change_statements(cli(directory, "upgrade", "--sql").stdout)
    assert [s.split(" d ")[0] for s in statements] == [s.split(" d ")[0] for s in EXPECTED[backend][:3]], statements
    cli(directory, "upgrade")
    assert filled(fresh_db) == (0, ROWS)
    assert cli(directory, "diff", check=False).returncode == 0


def test_a_users_volatile_function_in_the_default_is_backfilled_too(fresh_db: str, tmp_path: Path) -> None:
    """PostgreSQL rewrites the table for any VOLATILE function in the default, the users' too: safe mode asks
    ``pg_proc`` (not only its list of the database's own), so such a column goes in steps as well; a STABLE
    function of the user's stays the instant plain form."""
    from conftest import require_backend

    require_backend("postgresql")
    if not fresh_db.startswith("postgresql"):
        pytest.skip("a PostgreSQL function")
    execute(fresh_db, "CREATE FUNCTION next_code() RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT md5(random()::text) $$")
    execute(fresh_db, "CREATE FUNCTION fixed_code() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'x'::text $$")
    column = 'sa.Column("d", sa.String(32), nullable=False, server_default=sa.text("next_code()"))'
    directory = project(tmp_path / "volatile", fresh_db, column)
    statements = change_statements(cli(directory, "upgrade", "--sql").stdout)
    assert any(s.startswith("UPDATE t SET d = next_code() WHERE (d IS NULL)") for s in statements), statements
    out = cli(directory, "upgrade").stdout
    assert f"backfill t: 3 batches, {ROWS} rows (100%)" in out, out
    assert scalar(fresh_db, "SELECT count(DISTINCT d) FROM t") == ROWS
    assert cli(directory, "diff", check=False).returncode == 0
    stable = 'sa.Column("e", sa.String(32), nullable=False, server_default=sa.text("fixed_code()"))'
    set_models(directory, MODELS.format(extra=f", {column}, {stable}"))
    cli(directory, "generate", "-m", "stable")
    statements = change_statements(cli(directory, "upgrade", "--sql").stdout.replace("-- apply 0003_", "-- apply 0002_"))
    assert len(statements) == 1 and statements[0].startswith("ALTER TABLE t ADD COLUMN e"), statements


@pytest.mark.parametrize("column", [
    pytest.param("small", id="volatile-small-table"),
    pytest.param('sa.Column("d", sa.Integer, nullable=False, server_default="5")', id="constant"),
    pytest.param('sa.Column("d", sa.DateTime, nullable=False, server_default=sa.func.now())', id="now"),
])
def test_plain_where_adding_is_instant_or_the_table_small(column: str, backend: str, fresh_db: str,
                                                          tmp_path: Path) -> None:
    """One plain ADD COLUMN: a volatile default on a table within ``safe_rewrite_rows``, and on a large table a
    constant default or ``now()`` (stored once: PostgreSQL 11+ and MariaDB 10.3+ add it instantly)."""
    small = column == "small"
    directory = project(tmp_path, fresh_db, VOLATILE[backend] if small else column, limit=None if small else 100)
    statements = change_statements(cli(directory, "upgrade", "--sql").stdout)
    assert len(statements) == 1 and statements[0].startswith("ALTER TABLE t ADD COLUMN d"), statements
    assert "NOT NULL" in statements[0] and ("ALGORITHM" not in statements[0]) == (small or backend != "mysql")
    cli(directory, "upgrade")
    assert scalar(fresh_db, "SELECT count(*) FROM t WHERE d IS NULL") == 0
    assert cli(directory, "diff", check=False).returncode == 0


def test_sqlite_unchanged(tmp_path: Path) -> None:
    """SQLite: safe mode means nothing; the volatile default is added as before (no backfill), every row filled."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    directory = project(tmp_path, url, VOLATILE["sqlite"])
    script = cli(directory, "upgrade", "--sql").stdout
    assert "schemashift runs this in batches" not in script, script
    out = cli(directory, "upgrade").stdout
    assert "backfill" not in out, out
    assert scalar(url, "SELECT count(*) FROM t WHERE d IS NULL") == 0
    assert cli(directory, "diff", check=False).returncode == 0
