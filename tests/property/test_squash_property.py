"""Property: squashing a random history (data steps included) changes nothing a database can see.

Hypothesis draws the random histories of `test_rollback_property` (schema changes on three
filled tables) and puts data steps between the changes: ``UPDATE`` statements on a column that
exists at that point (some marked ``elidable=True``, which leave the rows as they are). A run
of the migrations (from the first, or from the second) is squashed. Then, on SQLite:

* a fresh database built from the squashed history has the schema and the rows of the full
  replay of the original history;
* a database standing at every revision of the range (and just before it), built with the
  original files, upgrades with the squashed history to the same schema and rows.

A squash from the second migration may be refused (a drop there could be a rename: a database
before the range would lose values); then no file may have changed.

One fixed example runs the same checks on PostgreSQL and MariaDB.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import create_database, drop_database, require_backend
from databases.test_rollback import table_rows
from helpers import inspect_schema, write_project
from property.test_rollback_property import BASE, ROWS, histories
from schemashift import api
from schemashift.errors import MigrationError
from schemashift.history.writer import write_migration
from schemashift.operations import (AddColumn, AlterColumn, CreateTable, DropColumn, ExecuteSQL, Operation,
                                    RenameColumn, replay)
from schemashift.model.schema import Column, Schema
from schemashift.model.types import Type

MODELS = """
from sqlalchemy.orm import DeclarativeBase

class Base(DeclarativeBase):
    pass
"""

Draw = Callable[[st.SearchStrategy], object]
NUMBERS = ("smallint", "integer", "bigint")


def _data_step(schema: Schema, draw: Draw) -> Operation | None:
    """An UPDATE of a column that exists in `schema` (None when there is none): +1 on numbers, or elidable."""
    choices = [(t, c) for t in schema.sorted_tables() if t.primary_key is not None
               for c in t.columns if c.name not in t.primary_key.columns]
    if not choices:
        return None
    table, column = draw(st.sampled_from(choices))  # type: ignore[misc]
    if column.type.kind in NUMBERS and not draw(st.booleans()):
        return ExecuteSQL(f"UPDATE {table.name} SET {column.name} = {column.name} + 1 WHERE {column.name} < 1000")
    return ExecuteSQL(f"UPDATE {table.name} SET {column.name} = {column.name}", elidable=draw(st.booleans()))  # type: ignore[arg-type]


@st.composite
def with_data_steps(draw: Draw) -> list[list[Operation]]:
    """The base migration (tables, rows), then a random history with data steps put between its changes."""
    schema = replay([CreateTable(t) for t in BASE])
    migrations: list[list[Operation]] = [[*(CreateTable(t) for t in BASE), *(ExecuteSQL(sql) for sql in ROWS)]]
    for changes in draw(histories()):  # type: ignore[union-attr]
        operations: list[Operation] = []
        for change in changes:
            if draw(st.booleans()):
                step = _data_step(schema, draw)
                operations += [step] if step is not None else []
            schema = change.resolve(schema).apply(schema)
            operations.append(change)
        if draw(st.booleans()):
            step = _data_step(schema, draw)
            operations += [step] if step is not None else []
        migrations.append(operations)
    return migrations


def _seen(url: str) -> tuple[object, object, object]:
    """What a database shows: tables (columns, keys, checks), indexes and rows (schemashift's own tables left out)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            indexes = {name: sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                    for i in inspector.get_indexes(name))
                       for name in inspector.get_table_names() if "schemashift" not in name}
    finally:
        engine.dispose()
    rows = {name: rows for name, rows in table_rows(url).items() if "schemashift" not in name}
    return inspect_schema(url), indexes, rows


def check_squash(migrations: list[list[Operation]], start: int, end: int, new_url: Callable[[str], str],
                 workdir: Path) -> None:
    """Squash migrations `start`..`end` of `migrations`; check fresh and every in-range database against the replay."""
    full_dir = write_project(workdir / "full", new_url("full"), MODELS, extra_config="safe = false\n")
    revisions: list[str] = []
    for number, operations in enumerate(migrations):
        revisions.append(write_migration(full_dir / "migrations", f"m{number}", operations,
                                         revisions[-1] if revisions else None).revision)
    full = api.open_project(full_dir / "schemashift.toml")
    api.upgrade(full, out=lambda line: None)
    expected = _seen(new_url("full"))

    standing = {f"at{k}": revisions[k] for k in range(max(start - 1, 0), end + 1)}  # before the range, in it
    for name, revision in standing.items():
        api.upgrade(api.open_project(full_dir / "schemashift.toml", url=new_url(name)), revision, out=lambda line: None)

    squashed_dir = workdir / "squashed"
    shutil.copytree(full_dir, squashed_dir)
    before = {p.name: p.read_bytes() for p in (squashed_dir / "migrations").glob("*.py")}
    try:
        api.squash(api.open_project(squashed_dir / "schemashift.toml"), "squashed",
                   start=revisions[start] if start else None, end=revisions[end], out=lambda line: None)
    except MigrationError as error:
        assert start > 0 and "drop" in str(error), error  # only a range after the first may be refused
        assert {p.name: p.read_bytes() for p in (squashed_dir / "migrations").glob("*.py")} == before
        return
    for name in ["fresh", *standing]:
        project = api.open_project(squashed_dir / "schemashift.toml", url=new_url(name))
        api.upgrade(project, out=lambda line: None)
        assert _seen(new_url(name)) == expected, name
        report = api.status(project)
        assert report.differences == [], (name, report.differences)
        assert not report.pending, (name, report.pending)


@st.composite
def cases(draw: Draw) -> tuple[list[list[Operation]], int, int]:
    migrations = draw(with_data_steps())
    start = draw(st.sampled_from([0, 1] if len(migrations) > 2 else [0]))  # type: ignore[arg-type]
    end = draw(st.integers(start + 1, len(migrations) - 1))  # type: ignore[arg-type]
    return migrations, start, end  # type: ignore[return-value]


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_squash_of_random_histories_sqlite(case: tuple[list[list[Operation]], int, int]) -> None:
    migrations, start, end = case
    workdir = Path(tempfile.mkdtemp(prefix="ss_sqprop_"))
    try:
        check_squash(migrations, start, end, lambda name: f"sqlite:///{workdir / name}.db", workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


#: Data steps before and after a rename, a narrowing and a drop, one elidable; squashed from the first.
FIXED = [
    [*(CreateTable(t) for t in BASE), *(ExecuteSQL(sql) for sql in ROWS)],
    [ExecuteSQL("UPDATE t_a SET qty = qty + 1 WHERE qty < 1000"), RenameColumn("t_a", "qty", "quantity"),
     ExecuteSQL("UPDATE t_a SET quantity = quantity + 1 WHERE quantity < 1000")],
    [AddColumn("t_b", Column("c1", Type("integer"), default="7")),
     ExecuteSQL("UPDATE t_b SET c1 = c1", elidable=True),
     AlterColumn("t_b", "pages", new=Column("pages", Type("integer")))],
    [ExecuteSQL("UPDATE t_b SET weight = weight + 1 WHERE weight < 1000"), DropColumn("t_b", "weight")],
]


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_squash_fixed_example_on_servers(server: str, tmp_path: Path) -> None:
    require_backend(server)
    made: list[str] = []

    def new_url(name: str) -> str:
        database = f"ss_sqprop_{name}_{uuid.uuid4().hex[:6]}"
        made.append(database)
        return create_database(server, database, tmp_path)

    urls: dict[str, str] = {}
    try:
        check_squash(FIXED, 0, 3, lambda name: urls.setdefault(name, new_url(name)), tmp_path)
    finally:
        for database in made:
            drop_database(server, database)
