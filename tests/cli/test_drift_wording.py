"""Drift told as what the database has, not as the change that would remove it (`status`, `diff`, both --json).

A column, an index and a type change made by hand on each database: the lines say "the database has column
item.sneaky that the migrations do not" and "column item.name differs: the database has type string(80), the
models type string(40)"; JSON carries both the description (`differences`) and the fix (`changes`).
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli, execute, write_project

MODELS = '''
import sqlalchemy as sa

Base = sa.MetaData()
item = sa.Table("item", Base, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)))
'''

WIDEN = {"postgresql": "ALTER TABLE item ALTER COLUMN name TYPE VARCHAR(80)",
         "mysql": "ALTER TABLE item MODIFY name VARCHAR(80)"}


def test_drift_names_what_the_database_has(backend: str, fresh_db: str, tmp_path: Path) -> None:
    project = write_project(tmp_path, fresh_db, MODELS)
    cli(project, "generate", "-m", "create item")
    cli(project, "upgrade")
    execute(fresh_db, "ALTER TABLE item ADD COLUMN sneaky INTEGER")
    execute(fresh_db, "CREATE INDEX ix_sneaky ON item (sneaky)")
    if backend in WIDEN:  # SQLite cannot change a column's type in place
        execute(fresh_db, WIDEN[backend])

    status = cli(project, "status", check=False)
    assert status.returncode == 1, status.stdout + status.stderr
    assert "  - the database has column item.sneaky that the migrations do not" in status.stdout, status.stdout
    assert "  - the database has index ix_sneaky on item that the migrations do not" in status.stdout
    assert "drop column" not in status.stdout and "drop index" not in status.stdout
    report = json.loads(cli(project, "status", "--json", check=False).stdout)
    assert report["exit_code"] == 1 and report["schema_matches"] is False
    assert "drop column item.sneaky" in report["changes"]
    assert "the database has column item.sneaky that the migrations do not" in report["differences"]

    diff = cli(project, "diff", check=False)
    assert diff.returncode == 1 and "the database has column item.sneaky that the models do not" in diff.stdout
    data = json.loads(cli(project, "diff", "--json", check=False).stdout)
    assert len(data["differences"]) == len(data["changes"]) == len(data["operations"])
    if backend in WIDEN:
        line = "column item.name differs: the database has type string(80), the migrations type string(40)"
        assert f"  - {line}" in status.stdout, status.stdout
        assert "alter column item.name (type string(80) -> string(40))" in report["changes"]
