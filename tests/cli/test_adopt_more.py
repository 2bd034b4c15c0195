"""baseline/stamp: confirmation on ``confirm = true`` environments, SQLite collations, custom Alembic version tables."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from helpers import cli, execute, fetch_rows, run_in_pty, scalar, write_project

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id = sa.Column(sa.Integer, primary_key=True)
    email = sa.Column(sa.String(80))
"""


def _users(url: str) -> None:
    execute(url, "CREATE TABLE users (id INTEGER NOT NULL PRIMARY KEY, email VARCHAR(80))",
            "INSERT INTO users (id, email) VALUES (1, 'a@b.c')")


def _version_rows(url: str) -> int:
    if not sa.inspect(sa.create_engine(url)).has_table("schemashift_version"):
        return 0
    return int(scalar(url, "SELECT COUNT(*) FROM schemashift_version"))  # type: ignore[arg-type]


def test_baseline_and_stamp_ask_on_a_confirm_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _users(url)
    project = write_project(tmp_path / "p", url, MODELS, extra_config="confirm = true\n")
    refused = cli(project, "baseline", check=False)
    assert refused.returncode == 2 and "requires confirmation: pass --yes" in refused.stderr
    assert "Traceback" not in refused.stderr and not list((project / "migrations").glob("0*.py"))
    code, shown = run_in_pty(project, ["baseline"], answer="n")
    assert code == 2 and "Baseline" in shown and "[y/N]" in shown and "aborted" in shown, shown
    assert _version_rows(url) == 0 and not list((project / "migrations").glob("0*.py"))
    code, shown = run_in_pty(project, ["baseline"], answer="y")
    assert code == 0 and "Recorded" in shown, shown
    assert _version_rows(url) == 1

    second = f"sqlite:///{tmp_path / 'copy.db'}"
    _users(second)
    toml = project / "schemashift.toml"
    toml.write_text(toml.read_text().replace(url, second))
    revision = fetch_rows(url, "SELECT revision FROM schemashift_version")[0][0]
    refused = cli(project, "stamp", str(revision), check=False)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr and _version_rows(second) == 0
    code, shown = run_in_pty(project, ["stamp", str(revision)], answer="n")
    assert code == 2 and f"Stamp {revision}" in shown and _version_rows(second) == 0, shown
    assert "Recorded" in cli(project, "stamp", str(revision), "--yes").stdout
    assert _version_rows(second) == 1
