"""Helpers for end-to-end tests: throw-away projects and running the CLI for real."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent


def write_project(directory: Path, url: str, models: str, *, extra_config: str = "") -> Path:
    """A project folder with schemashift.toml, app/models.py (from `models`) and a migrations folder."""
    (directory / "app").mkdir(parents=True, exist_ok=True)
    (directory / "app" / "__init__.py").write_text("")
    set_models(directory, models)
    (directory / "migrations").mkdir(exist_ok=True)
    config = f'models = "app.models:Base"\nmigrations = "migrations"\ndefault_env = "test"\n\n[env.test]\nurl = "{url}"\n'
    (directory / "schemashift.toml").write_text(config + textwrap.dedent(extra_config))
    return directory


def set_models(directory: Path, models: str) -> None:
    """Replace app/models.py (and drop stale bytecode)."""
    path = directory / "app" / "models.py"
    path.write_text(textwrap.dedent(models))
    for cached in (directory / "app" / "__pycache__").glob("models*.pyc"):
        cached.unlink()


def cli(directory: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m schemashift ARGS` in `directory`; assert exit 0 unless check=False."""
    environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    environ.pop("SCHEMASHIFT_ENV", None) if "SCHEMASHIFT_ENV" not in (env or {}) else None
    result = subprocess.run(
        [sys.executable, "-m", "schemashift", *args], cwd=directory, capture_output=True, text=True,
        env=environ, input=input, timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"schemashift {' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def scalar(url: str, sql: str) -> object:
    """Run one query and return the first column of the first row."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


def fetch_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    """Run one query and return all its rows as tuples."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    """Run statements in one transaction."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
