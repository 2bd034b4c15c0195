"""`downgrade base` keeps data only where there is some: no backup table for an empty table or an empty column.

A schema of eight tables, two of them with rows and one with a column that holds only NULLs, is taken to base
and back on each database: backups exist for the two filled tables only, and the upgrade puts their rows back.
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from helpers import cli, execute, fetch_rows, run_script, write_project

TABLES = 8

MODELS = "import sqlalchemy as sa\n\nBase = sa.MetaData()\n" + "".join(
    f't{n} = sa.Table("t{n}", Base, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), '
    f'sa.Column("name", sa.String(20)))\n' for n in range(TABLES)
)
WITHOUT_NAME = MODELS.replace('t7 = sa.Table("t7", Base, sa.Column("id", sa.Integer, primary_key=True, '
                              'autoincrement=False), sa.Column("name", sa.String(20)))',
                              't7 = sa.Table("t7", Base, sa.Column("id", sa.Integer, primary_key=True, '
                              'autoincrement=False))')


def backup_tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return {name for name in sa.inspect(engine).get_table_names() if name.startswith("_schemashift_bk_")}
    finally:
        engine.dispose()


def test_only_tables_with_rows_are_kept(fresh_db: str, tmp_path: Path) -> None:
    project = write_project(tmp_path, fresh_db, MODELS)
    cli(project, "generate", "-m", "tables")
    cli(project, "upgrade")
    execute(fresh_db, "INSERT INTO t1 (id, name) VALUES (1, 'one'), (2, 'two')")
    execute(fresh_db, "INSERT INTO t5 (id, name) VALUES (5, 'five')")

    cli(project, "downgrade", "base")
    listed = json.loads(cli(project, "backups", "list", "--json").stdout)
    assert sorted(row["source_table"] for row in listed) == ["t1", "t5"], listed
    assert len(backup_tables(fresh_db)) == 2

    cli(project, "upgrade")
    assert fetch_rows(fresh_db, "SELECT id, name FROM t1 ORDER BY id") == [(1, "one"), (2, "two")]
    assert fetch_rows(fresh_db, "SELECT id, name FROM t5") == [(5, "five")]
    assert backup_tables(fresh_db) == set() and json.loads(cli(project, "backups", "list", "--json").stdout) == []


def test_a_column_holding_only_nulls_needs_no_backup(fresh_db: str, tmp_path: Path) -> None:
    project = write_project(tmp_path, fresh_db, MODELS)
    cli(project, "generate", "-m", "tables")
    cli(project, "upgrade")
    execute(fresh_db, "INSERT INTO t7 (id) VALUES (1), (2)")
    (project / "app" / "models.py").write_text(WITHOUT_NAME)
    cli(project, "generate", "-m", "drop t7.name")
    cli(project, "upgrade")  # drops t7.name: only NULLs, nothing to keep
    assert backup_tables(fresh_db) == set()
    cli(project, "downgrade", "-1")
    assert fetch_rows(fresh_db, "SELECT id, name FROM t7 ORDER BY id") == [(1, None), (2, None)]
    script = cli(project, "downgrade", "base", "--sql").stdout
    assert "-- Python: drop_backup_if_empty()" not in script
    run_script(fresh_db, script)  # as a DBA runs it: the empty tables' backups are dropped where SQL can say so
    listed = {row[0] for row in fetch_rows(fresh_db, "SELECT source_table FROM _schemashift_backups")}
    if fresh_db.startswith("sqlite"):  # no conditional DROP in SQLite: every backup stays, and the script says so
        assert "stays even when it holds no row (sqlite cannot drop a table on a condition" in script
        assert len(backup_tables(fresh_db)) == TABLES and len(listed) == TABLES
    else:
        assert len(backup_tables(fresh_db)) == 1 and listed == {"t7"}
