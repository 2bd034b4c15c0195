"""Throw-away databases for the benchmark: created on demand, all dropped at the end."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

#: Admin URLs of the servers (override with the same variables the test suite uses).
SERVER_URLS = {
    "postgresql": os.environ.get("SCHEMASHIFT_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mysql": os.environ.get("SCHEMASHIFT_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/mysql"),
}
BACKENDS = ("sqlite", "postgresql", "mysql")


def server_error(backend: str) -> str | None:
    """None when `backend` answers, else a one-line reason."""
    if backend == "sqlite":
        return None
    try:
        engine = sa.create_engine(SERVER_URLS[backend], connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return None


class Databases:
    """Creates uniquely named databases under one run id and drops every one of them in `drop_all`."""

    def __init__(self, temp_dir: Path) -> None:
        self.temp_dir = temp_dir
        self.run_id = uuid.uuid4().hex[:8]
        self.created: list[tuple[str, str]] = []

    def create(self, backend: str, purpose: str) -> str:
        """A fresh empty database on `backend`; returns its URL."""
        name = f"ssbench_{self.run_id}_{purpose}"[:60]
        self.created.append((backend, name))
        if backend == "sqlite":
            return f"sqlite:///{self.temp_dir / (name + '.db')}"
        with _admin(backend) as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        return sa.make_url(SERVER_URLS[backend]).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> list[str]:
        """Drop every database created; returns one message per failure."""
        errors: list[str] = []
        for backend, name in reversed(self.created):
            try:
                if backend == "sqlite":
                    (self.temp_dir / (name + ".db")).unlink(missing_ok=True)
                    continue
                with _admin(backend) as conn:
                    force = " WITH (FORCE)" if backend == "postgresql" else ""
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
            except Exception as exc:  # noqa: BLE001 - keep dropping the others
                errors.append(f"could not drop {backend} database {name}: {str(exc).splitlines()[0]}")
        self.created.clear()
        return errors


@contextmanager
def _admin(backend: str) -> Iterator[sa.Connection]:
    """An AUTOCOMMIT connection to the server's admin database."""
    engine = sa.create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
