"""`schemashift.api.compare` gives the same operations whether the catalogue is read beside the model conversion or not.

On PostgreSQL and MariaDB `compare` reads the live catalogue on a worker thread
while it converts the models; `compare_schemas` (one thread) is the reference.
"""

from __future__ import annotations

import threading
from typing import Iterator

import pytest
import sqlalchemy as sa

from schemashift import api
from schemashift.errors import ExecutionError


def _models(changed: bool) -> sa.MetaData:
    metadata = sa.MetaData()
    parent = sa.Table("parent", metadata, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("name", sa.String(40), nullable=False, unique=True))
    columns = [sa.Column("id", sa.Integer, primary_key=True),
               sa.Column("parent_id", sa.Integer, sa.ForeignKey(parent.c.id, name="fk_child_parent")),
               sa.Column("amount", sa.Numeric(10, 2) if changed else sa.Integer)]
    if changed:
        columns.append(sa.Column("note", sa.Text))
    child = sa.Table("child", metadata, *columns)
    sa.Index("ix_child_amount", child.c.amount)
    if changed:
        sa.Table("extra", metadata, sa.Column("id", sa.Integer, primary_key=True))
    return metadata


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        _models(changed=False).create_all(connection)
    yield engine
    engine.dispose()


def _reference(connection: sa.Connection, metadata: sa.MetaData) -> list[str]:
    expected = api._schema_of([metadata])
    return [op.describe() for op in api.compare_schemas(connection, expected, schemas=[None])]


def test_compare_equals_the_one_thread_comparison(engine: sa.Engine, backend: str) -> None:
    threads: set[str] = set()

    def seen(*_: object) -> None:
        threads.add(threading.current_thread().name)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.connect() as connection:
            for changed in (False, True):
                metadata = _models(changed)
                threads.clear()
                found = [op.describe() for op in api.compare(connection, metadata)]
                assert any(name.startswith("schemashift-reflect") for name in threads) is (backend != "sqlite")
                assert found == _reference(connection, metadata)
                assert bool(found) is changed
            connection.exec_driver_sql("SELECT 1")  # the connection is still usable on this thread
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def test_compare_reports_reading_errors(engine: sa.Engine, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has no other schema to fail on")
    metadata = _models(changed=False)
    sa.Table("elsewhere", metadata, sa.Column("id", sa.Integer, primary_key=True), schema="no_such_schema_here")
    with engine.connect() as connection:
        try:
            found = [op.describe() for op in api.compare(connection, metadata)]
        except ExecutionError as exc:
            assert "could not read the database" in str(exc)
        else:  # a missing schema reads as empty: its table is to be created
            assert found == _reference_with(connection, metadata)


def _reference_with(connection: sa.Connection, metadata: sa.MetaData) -> list[str]:
    expected = api._schema_of([metadata])
    schemas = api._schemas_to_compare(expected.schema_names)
    return [op.describe() for op in api.compare_schemas(connection, expected, schemas=schemas)]
