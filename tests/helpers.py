"""Helpers for end-to-end tests: throw-away projects and running the CLI for real."""

from __future__ import annotations

import os
import select
import sqlite3
import subprocess
import sys
import textwrap
import time
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


def inspect_schema(url: str, *, exclude: tuple[str, ...] = ("schemashift_",)) -> dict[str, dict[str, object]]:
    """Every table of the database at `url` as SQLAlchemy's own inspector sees it, for comparing two databases.

    Per table: columns (type compiled for the database, nullability, default, collation), the primary key,
    and the CHECK constraints (SQL text; names only when given). Tables whose name starts with one of
    `exclude` (schemashift's bookkeeping) are left out.
    """
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables: dict[str, dict[str, object]] = {}
            for name in sorted(inspector.get_table_names()):
                if name.startswith(exclude) or name.startswith("_schemashift"):
                    continue
                columns = {
                    column["name"]: (
                        column["type"].compile(dialect=conn.dialect),
                        column["nullable"],
                        None if column.get("default") is None else str(column["default"]),
                        getattr(column["type"], "collation", None),
                    )
                    for column in inspector.get_columns(name)
                }
                checks = sorted(
                    (" ".join(str(check["sqltext"]).split()), check.get("name") if _named(check) else None)
                    for check in inspector.get_check_constraints(name)
                )
                tables[name] = {
                    "columns": columns,
                    "primary_key": tuple(inspector.get_pk_constraint(name).get("constrained_columns") or ()),
                    "checks": checks,
                }
            return tables
    finally:
        engine.dispose()


def _named(check: dict[str, object]) -> bool:
    """False for the names databases generate for unnamed CHECKs (MariaDB ``CONSTRAINT_1``, MySQL ``t_chk_1``)."""
    import re

    name = str(check.get("name") or "")
    return bool(name) and re.fullmatch(r"CONSTRAINT_\d+|.+_chk_\d+", name) is None


def run_in_pty(directory: Path, args: list[str], *, env: dict[str, str] | None = None, answer: str | None = None,
               drop: tuple[str, ...] = ("SCHEMASHIFT_ENV",)) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal; (exit code, everything it showed).

    `answer` is typed at the first ``[y/N]`` prompt (``"\\x04"``: end of input); `env` goes over the process
    environment, less the variables in `drop`.
    """
    environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    for name in drop:
        environ.pop(name, None)
    master, slave = os.openpty()
    process = subprocess.Popen([sys.executable, "-m", "schemashift", *args], cwd=directory, env=environ,
                               stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    shown = b""
    try:
        deadline = time.monotonic() + 120
        while True:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"timed out; shown so far: {shown!r}")
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if answer is not None and b"[y/N]" in shown:
                os.write(master, answer.encode() + (b"" if answer == "\x04" else b"\n"))
                answer = None
        return process.wait(timeout=120), shown.decode(errors="replace")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()


def run_script(url: str, script: str) -> None:
    """Run `script` as a client would: the whole text, statements separated by ``;``."""
    address = sa.make_url(url)
    if address.get_backend_name() == "sqlite":
        with sqlite3.connect(str(address.database)) as connection:
            connection.executescript(script)
        return
    if address.get_backend_name() == "postgresql":
        import psycopg

        with psycopg.connect(host=address.host, port=address.port, user=address.username, dbname=address.database,
                             autocommit=True) as connection:
            connection.execute(script.encode())  # no parameters: the statements go as one simple query
        return
    import pymysql
    from pymysql.constants import CLIENT

    connection = pymysql.connect(host=address.host, port=address.port or 3306, user=address.username,
                                 database=address.database, client_flag=CLIENT.MULTI_STATEMENTS, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(script)
            while cursor.nextset():
                pass
    finally:
        connection.close()
