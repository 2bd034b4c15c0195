"""``DDL`` listeners on a table run by migrations as ``create_all`` runs them.

A table created by a migration gets its ``after_create`` DDL (per database, as
``execute_if`` says) right after it, and a downgrade runs its ``before_drop`` DDL
before dropping it; a Python listener is named in a note. The migrated database
has what ``create_all`` gives a fresh database of the same server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from features_cycle import Cycle, kinds


@pytest.fixture
def cycle(fresh_db: str, tmp_path: Path) -> Cycle:
    return Cycle(tmp_path / "project", fresh_db)


def python_listener(target: sa.Table, connection: sa.Connection, **kw: object) -> None:
    """A listener migrations cannot carry."""


def models(*, listeners: bool = True) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("base", metadata, sa.Column("id", sa.Integer, primary_key=True))
    item = sa.Table("item", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("n", sa.Integer))
    if listeners:
        sa.event.listen(item, "after_create", sa.DDL("CREATE VIEW item_ids AS SELECT id FROM %(table)s"))
        sa.event.listen(item, "after_create",
                        sa.DDL("CREATE VIEW item_pg AS SELECT n FROM %(table)s").execute_if(dialect="postgresql"))
        sa.event.listen(item, "before_drop", sa.DDL("DROP VIEW item_ids"))
        sa.event.listen(item, "before_drop", sa.DDL("DROP VIEW item_pg").execute_if(dialect="postgresql"))
        sa.event.listen(item, "after_create", python_listener)
    return metadata


def views(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        return set(sa.inspect(engine).get_view_names())
    finally:
        engine.dispose()


def test_listeners_run_as_create_all_runs_them(cycle: Cycle, backend: str) -> None:
    cycle.generate(sa.MetaData(), "empty", empty=True)
    operations = cycle.generate(models(), "tables")
    assert kinds(operations) == ["CreateTable", "CreateTable", *["ExecuteSQL"] * 4]
    assert any("python_listener is Python" in line for line in cycle.output)
    cycle.upgrade()
    assert cycle.diff() == []
    assert views(cycle.url) == ({"item_ids", "item_pg"} if backend == "postgresql" else {"item_ids"})
    cycle.run("INSERT INTO item (id, n) VALUES (1, 2)")
    assert cycle.rows("SELECT id FROM item_ids") == [(1,)]
    cycle.downgrade("-1")
    assert views(cycle.url) == set()
    cycle.upgrade()
    assert "item_ids" in views(cycle.url)


def test_no_listeners_no_steps(cycle: Cycle) -> None:
    operations = cycle.generate(models(listeners=False), "tables")
    assert kinds(operations) == ["CreateTable", "CreateTable"]
