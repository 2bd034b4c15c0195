"""`status` exit codes for scripts: 0 up to date and clean, 1 pending or drift, 2 a problem needing action."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli, execute, write_project

MODELS = '''
import sqlalchemy as sa

Base = sa.MetaData()
item = sa.Table("item", Base, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)))
'''


def test_status_exit_codes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    directory = write_project(tmp_path, url, MODELS)
    cli(directory, "generate", "-m", "create item")
    pending = cli(directory, "status", check=False)
    assert pending.returncode == 1 and "Pending: 1" in pending.stdout, pending.stdout
    assert json.loads(cli(directory, "status", "--json", check=False).stdout)["exit_code"] == 1
    cli(directory, "upgrade")
    assert cli(directory, "status").returncode == 0
    execute(url, "ALTER TABLE item ADD COLUMN sneaky INTEGER")
    drift = cli(directory, "status", check=False)
    assert drift.returncode == 1 and "DRIFTS" in drift.stdout, drift.stdout
    execute(url, "ALTER TABLE item DROP COLUMN sneaky")
    for path in (directory / "migrations").glob("0001_*.py"):
        path.unlink()
    missing = cli(directory, "status", check=False)
    assert missing.returncode == 2 and "PROBLEM" in missing.stdout, missing.stdout
    assert "Current revision: base" not in missing.stdout and "no such migration file" in missing.stdout


def test_status_and_envs_leave_a_missing_sqlite_file_uncreated(tmp_path: Path) -> None:
    directory = write_project(tmp_path, "sqlite:///app.db", MODELS)
    cli(directory, "generate", "-m", "create item")
    result = cli(directory, "status", check=False)
    assert result.returncode == 1 and "does not exist yet" in result.stdout and "Pending: 1" in result.stdout
    cli(directory, "envs")
    assert not (directory / "app.db").exists()
    cli(directory, "upgrade")
    assert (directory / "app.db").exists() and cli(directory, "status").returncode == 0


def test_status_exit_2_for_a_partly_applied_or_edited_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    directory = write_project(tmp_path, url, MODELS)
    cli(directory, "generate", "-m", "create item")
    cli(directory, "upgrade")
    execute(url, "UPDATE schemashift_version SET state = 'failed', statements_done = 0, error = 'boom'")
    partly = cli(directory, "status", check=False)
    assert partly.returncode == 2 and "PARTLY applied" in partly.stdout, partly.stdout
    assert "Pending: 0" not in partly.stdout and "run `schemashift repair`" in partly.stdout
    assert "after 0 statement(s)" not in partly.stdout and "before any of its statements completed" in partly.stdout
    assert json.loads(cli(directory, "status", "--json", check=False).stdout)["exit_code"] == 2
    execute(url, "UPDATE schemashift_version SET state = 'applied', error = NULL")
    assert cli(directory, "status").returncode == 0
    migration = next((directory / "migrations").glob("0001_*.py"))
    migration.write_text(migration.read_text().replace('message = "create item"', 'message = "create items"'))
    edited = cli(directory, "status", check=False)
    assert edited.returncode == 2 and "was edited after it was applied" in edited.stdout, edited.stdout
