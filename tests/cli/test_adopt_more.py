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


def _custom_table_project(tmp_path: Path, url: str, *, in_ini: bool) -> Path:
    from cli.test_baseline import ALEMBIC_ENV, V1, _alembic_project

    project = write_project(tmp_path / ("ini" if in_ini else "env"), url, V1)
    _alembic_project(project, url)
    if in_ini:  # read by env.py from alembic.ini, as some projects do
        env = ALEMBIC_ENV.replace("target_metadata=None",
                                  'target_metadata=None, version_table=config.get_main_option("version_table")')
        (project / "alembic.ini").write_text((project / "alembic.ini").read_text() + "version_table = app_versions\n")
    else:
        env = ALEMBIC_ENV.replace("target_metadata=None", "target_metadata=None, version_table='app_versions'")
    (project / "alembic" / "env.py").write_text(env)
    return project


def test_custom_alembic_version_table(tmp_path: Path) -> None:
    """``version_table`` in env.py or alembic.ini: detected, checked against the heads, recorded, then ignored."""
    from cli.test_baseline import ROWS, _alembic_upgrade

    for in_ini in (False, True):
        url = f"sqlite:///{tmp_path / f'alembic_{in_ini}.db'}"
        project = _custom_table_project(tmp_path, url, in_ini=in_ini)
        _alembic_upgrade(project, url, "a1")
        assert fetch_rows(url, "SELECT version_num FROM app_versions") == [("a1",)]
        refused = cli(project, "baseline", check=False)
        assert refused.returncode == 2 and "not at the head of its Alembic scripts (b2)" in refused.stderr, refused
        _alembic_upgrade(project, url)
        execute(url, *ROWS)
        adopted = cli(project, "baseline", "-m", "from alembic")
        assert "Alembic revision b2 recorded in the history table; app_versions is left alone" in adopted.stdout
        assert "app_versions" not in next((project / "migrations").glob("0001_*.py")).read_text()
        assert "app_versions" not in cli(project, "status").stdout
        diff = cli(project, "diff", check=False)
        assert "app_versions" not in diff.stdout, diff.stdout

        second = f"sqlite:///{tmp_path / f'copy_{in_ini}.db'}"
        _alembic_upgrade(project, second, "a1")
        refused = cli(project, "stamp", "head", "--url", second, check=False)
        assert refused.returncode == 2 and "Alembic revision a1" in refused.stderr
        _alembic_upgrade(project, second)
        stamped = cli(project, "stamp", "head", "--url", second, "--drop-alembic-version")
        assert "app_versions dropped" in stamped.stdout
        assert not sa.inspect(sa.create_engine(second)).has_table("app_versions")
