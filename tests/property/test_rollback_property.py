"""Property: random schema changes on populated tables go down and up again losing nothing.

Hypothesis draws short histories of changes (add/drop column, drop table,
widen/narrow a type, add/drop index, rename column) on top of three filled
tables, on SQLite, PostgreSQL and MariaDB. Each example gets a fresh database:
upgrade one migration at a time, downgrade back to the revision before the first
change, upgrade to head again. After every move the live schema must match the
migrations, after the downgrade every row must be as before the first upgrade,
and at head again every row must be as at head the first time.

The keyless table only gets changes whose both directions keep everything
(drop table, indexes, renames): its column values cannot be matched back.
"""

from __future__ import annotations

import itertools
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import create_database, drop_database
from schemashift import api
from schemashift.operations import (
    AddColumn,
    AlterColumn,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropIndex,
    DropTable,
    Operation,
    RenameColumn,
    replay,
)
from schemashift.model.schema import Column, Index, PrimaryKey, Schema, Table
from schemashift.model.types import Type
from databases.test_rollback import make_scenario

NUMERIC = Type("numeric", precision=10, scale=4)
SHORTEST = 12  # no string value is longer: narrowing never goes below it (MariaDB would refuse)


def _id() -> Column:
    return Column("id", Type("integer"), nullable=False, autoincrement=True)


BASE = (
    Table("t_a", (_id(), Column("name", Type("string", length=40), nullable=False), Column("note", Type("string", length=30)),
                  Column("qty", Type("integer")), Column("price", NUMERIC)), primary_key=PrimaryKey(("id",)),
          indexes=(Index("ix_t_a_qty", ("qty",)),)),
    Table("t_b", (_id(), Column("title", Type("string", length=50), nullable=False), Column("pages", Type("smallint")),
                  Column("weight", Type("bigint"))), primary_key=PrimaryKey(("id",))),
    Table("t_log", (Column("message", Type("string", length=40)), Column("n", Type("integer")))),
)

ROWS = (
    "INSERT INTO t_a (name, note, qty, price) VALUES ('anna', 'first', 3, 12.3456), ('bob', NULL, 7, 0.0001),"
    " ('cleo', 'a note here', NULL, 99.9999), ('dan', 'x', 0, NULL), ('eve', '', 999, 5.5)",
    "INSERT INTO t_b (title, pages, weight) VALUES ('one', 10, 100000), ('two', NULL, 5), ('three', 300, NULL),"
    " ('four', 1, 1)",
    "INSERT INTO t_log (message, n) VALUES ('started', 1), ('started', 1), (NULL, 2)",
)

Draw = Callable[[st.SearchStrategy], object]


# -- drawing changes that are valid at the state they apply to -----------------------------


def _keyed(schema: Schema) -> list[Table]:
    return [t for t in schema.sorted_tables() if t.primary_key is not None]


def _plain_columns(table: Table) -> list[Column]:
    key = table.primary_key.columns if table.primary_key else ()
    return [c for c in table.columns if c.name not in key]


def _widened(typ: Type) -> Type | None:
    if typ.kind == "string":
        return typ.evolve(length=(typ.length or 0) + 10)
    if typ.kind in ("smallint", "integer"):
        return Type({"smallint": "integer", "integer": "bigint"}[typ.kind])
    if typ.kind == "numeric":
        return typ.evolve(precision=(typ.precision or 10) + 2)
    return None


def _narrowed(typ: Type) -> Type | None:
    if typ.kind == "string" and (typ.length or 0) > SHORTEST:
        return typ.evolve(length=max(SHORTEST, (typ.length or 0) - 8))
    if typ.kind in ("integer", "bigint"):
        return Type({"integer": "smallint", "bigint": "integer"}[typ.kind])
    if typ.kind == "numeric" and (typ.scale or 0) > 0:
        return typ.evolve(scale=(typ.scale or 0) - 1)  # rounds the stored values
    return None


def _candidates(schema: Schema) -> dict[str, list[tuple[Table, Column | Index | None]]]:
    """Every kind of change with the (table, column or index) it can apply to."""
    keyed = _keyed(schema)
    tables = schema.sorted_tables()
    return {
        "add column": [(t, None) for t in keyed],
        "drop column": [(t, c) for t in keyed for c in _plain_columns(t)],
        "drop table": [(t, None) for t in tables] if len(tables) > 1 else [],
        "widen": [(t, c) for t in keyed for c in _plain_columns(t) if _widened(c.type)],
        "narrow": [(t, c) for t in keyed for c in _plain_columns(t) if _narrowed(c.type)],
        "add index": [(t, c) for t in tables for c in _plain_columns(t)],
        "drop index": [(t, i) for t in tables for i in t.indexes],
        "rename column": [(t, c) for t in tables for c in _plain_columns(t)],
    }


def _operations(kind: str, table: Table, item: Column | Index | None, number: int, draw: Draw) -> list[Operation]:
    name = table.name
    if kind == "add column":
        added = draw(st.sampled_from([
            Column(f"c{number}", Type("string", length=20), nullable=False, default="'x'"),
            Column(f"c{number}", Type("integer"), default="7"),
            Column(f"c{number}", Type("string", length=30)),
        ]))
        return [AddColumn(name, added)]  # type: ignore[arg-type]
    if kind == "drop table":
        return [DropTable(name)]
    if kind == "drop index":
        assert isinstance(item, Index)
        return [DropIndex(name, item.name)]
    assert isinstance(item, Column)
    if kind == "drop column":
        return [DropIndex(name, i.name) for i in table.indexes if item.name in i.columns] + [DropColumn(name, item.name)]
    if kind == "widen":
        return [AlterColumn(name, item.name, new=item.evolve(type=_widened(item.type)))]
    if kind == "narrow":
        return [AlterColumn(name, item.name, new=item.evolve(type=_narrowed(item.type)))]
    if kind == "add index":
        return [CreateIndex(name, Index(f"ix_{number}", (item.name,)))]
    return [RenameColumn(name, item.name, f"r{number}")]


@st.composite
def histories(draw: Draw) -> list[list[Operation]]:
    """One to three migrations of one to three changes each."""
    schema = replay([CreateTable(t) for t in BASE])
    numbers = itertools.count()
    migrations: list[list[Operation]] = []
    for _ in range(draw(st.integers(1, 3))):  # type: ignore[arg-type]
        operations: list[Operation] = []
        for _ in range(draw(st.integers(1, 3))):  # type: ignore[arg-type]
            candidates = {k: v for k, v in _candidates(schema).items() if v}
            kind = draw(st.sampled_from(sorted(candidates)))
            table, item = draw(st.sampled_from(candidates[kind]))  # type: ignore[arg-type, misc]
            for operation in _operations(kind, table, item, next(numbers), draw):  # type: ignore[arg-type]
                schema = operation.resolve(schema).apply(schema)
                operations.append(operation)
        migrations.append(operations)
    return migrations


# -- the property -----------------------------------------------------------------------


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    """A database of its own for one example."""
    name = f"ss_rbprop_{uuid.uuid4().hex[:10]}"
    url = create_database(backend, name, Path(tempfile.mkdtemp(prefix="ss_rbprop_")))
    try:
        yield url
    finally:
        drop_database(backend, name)


def _assert_schema_matches(project: api.Project, where: str) -> None:
    report = api.status(project)
    assert report.differences == [], f"{where}: {report.differences}"


#: Every destructive kind at least once, whatever the draws: a NOT NULL column, narrowings that
#: round (numeric) or just fit (integer, string), a dropped table.
EVERY_LOSS = [
    [DropColumn("t_a", "name")],
    [AlterColumn("t_a", "price", new=Column("price", NUMERIC.evolve(scale=2))),
     AlterColumn("t_a", "qty", new=Column("qty", Type("smallint"))),
     AlterColumn("t_b", "title", new=Column("title", Type("string", length=SHORTEST), nullable=False))],
    [DropIndex("t_a", "ix_t_a_qty"), RenameColumn("t_a", "qty", "quantity"), DropTable("t_b")],
]


@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories())
@example(history=EVERY_LOSS)
def test_random_changes_round_trip_exactly(backend: str, history: list[list[Operation]]) -> None:
    with scratch_database(backend) as url:
        s = make_scenario(Path(tempfile.mkdtemp(prefix="ss_rbproj_")), url)
        base = s.migrate("base", *[CreateTable(t) for t in BASE])
        s.up()
        s.sql(*ROWS)
        changes = [s.migrate(f"change {number}", *operations) for number, operations in enumerate(history)]
        before = s.rows()
        for migration in changes:
            s.up(migration.revision)
            _assert_schema_matches(s.project, f"after upgrading to {migration.path.name}")
        at_head = s.rows()
        for migration in reversed(changes):
            s.down("-1")
            _assert_schema_matches(s.project, f"after reverting {migration.path.name}")
        assert s.current() == base.revision
        assert s.rows() == before
        s.up()
        _assert_schema_matches(s.project, "at head again")
        assert s.rows() == at_head
