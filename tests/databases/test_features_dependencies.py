"""Dependency order on real databases: referenced tables first, cycles broken with ALTER-added keys,
drops in reverse order, on SQLite (where adding a key rebuilds the table) as on PostgreSQL and MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from features_cycle import Cycle, kinds, roundtrip
from schemashift.autodetect.differ import _order_by_dependencies, diff
from schemashift.operations import AddConstraint, CreateTable, DropConstraint, DropTable
from schemashift.sqla.from_metadata import from_metadata
from schemashift.model.schema import Schema


@pytest.fixture
def cycle(fresh_db: str, tmp_path: Path) -> Cycle:
    return Cycle(tmp_path / "project", fresh_db)


def base() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("keep", metadata, sa.Column("id", sa.Integer, primary_key=True))
    return metadata


def chain() -> sa.MetaData:
    """a -> b -> c, named so that alphabetical order is the wrong order."""
    metadata = base()
    sa.Table("c_root", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("b_mid", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("root_id", sa.ForeignKey("c_root.id", name="fk_mid_root")))
    sa.Table("a_leaf", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("mid_id", sa.ForeignKey("b_mid.id", name="fk_leaf_mid")),
             sa.Column("root_id", sa.ForeignKey("c_root.id", name="fk_leaf_root")))
    return metadata


def pair() -> sa.MetaData:
    """team <-> player, each referencing the other, and an employee table referencing itself."""
    metadata = base()
    sa.Table("team", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("captain_id", sa.Integer, sa.ForeignKey("player.id", name="fk_team_captain")))
    sa.Table("player", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("team_id", sa.Integer, sa.ForeignKey("team.id", name="fk_player_team")))
    sa.Table("employee", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("boss_id", sa.Integer, sa.ForeignKey("employee.id", name="fk_employee_boss")))
    return metadata


def triangle() -> sa.MetaData:
    """x -> y -> z -> x, and w hanging off the cycle."""
    metadata = base()
    for name, target in (("x", "y"), ("y", "z"), ("z", "x")):
        sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("ref", sa.Integer, sa.ForeignKey(f"{target}.id", name=f"fk_{name}_{target}")))
    sa.Table("w", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("x_id", sa.Integer, sa.ForeignKey("x.id", name="fk_w_x")))
    return metadata


def test_order_defers_only_a_foreign_key_on_the_cycle() -> None:
    ordered, deferred = _order_by_dependencies(list(from_metadata(triangle()).tables.values()))
    assert len(deferred) == 1
    (table, fk), = deferred
    assert table in ("x", "y", "z")
    names = [t.key for t in ordered]
    assert names.index("w") > names.index("x")


def test_chain_created_referenced_first_and_dropped_in_reverse(cycle: Cycle, backend: str) -> None:
    def fill() -> None:
        cycle.run("INSERT INTO c_root (id) VALUES (1)", "INSERT INTO b_mid (id, root_id) VALUES (1, 1)",
                  "INSERT INTO a_leaf (id, mid_id, root_id) VALUES (1, 1, 1)")

    operations = roundtrip(cycle, base(), chain(), at_v2=fill)
    assert [op.table.name for op in operations if isinstance(op, CreateTable)] == ["c_root", "b_mid", "a_leaf"]
    assert not any(isinstance(op, AddConstraint) for op in operations)
    operations = cycle.generate(base(), "drop the chain")
    assert [op.table for op in operations if isinstance(op, DropTable)] == ["a_leaf", "b_mid", "c_root"]
    cycle.upgrade()
    assert cycle.diff() == []
    cycle.downgrade()
    assert cycle.diff(chain()) == []
    assert cycle.rows("SELECT mid_id, root_id FROM a_leaf") == [(1, 1)]


def test_cycle_of_two_new_tables_and_a_self_reference(cycle: Cycle, backend: str) -> None:
    def fill() -> None:
        cycle.run("INSERT INTO team (id) VALUES (1)", "INSERT INTO player (id, team_id) VALUES (7, 1)",
                  "UPDATE team SET captain_id = 7 WHERE id = 1",
                  "INSERT INTO employee (id) VALUES (1)", "INSERT INTO employee (id, boss_id) VALUES (2, 1)")

    operations = roundtrip(cycle, base(), pair(), at_v2=fill)
    assert kinds(operations) == ["CreateTable", "CreateTable", "CreateTable", "AddConstraint"]
    created = {op.table.name: op.table for op in operations if isinstance(op, CreateTable)}
    assert [fk.name for fk in created["employee"].foreign_keys] == ["fk_employee_boss"]  # inline
    assert operations[-1].constraint.name in ("fk_team_captain", "fk_player_team")
    if backend != "sqlite":  # SQLite does not enforce foreign keys on these connections
        with pytest.raises(sa.exc.IntegrityError):
            cycle.run("INSERT INTO team (id, captain_id) VALUES (2, 999)")


def test_cycle_dropped_key_first_then_tables(cycle: Cycle, backend: str) -> None:
    cycle.generate(pair(), "v1")
    cycle.upgrade()
    cycle.run("INSERT INTO team (id) VALUES (1)", "INSERT INTO player (id, team_id) VALUES (7, 1)",
              "UPDATE team SET captain_id = 7 WHERE id = 1")
    operations = cycle.generate(base(), "drop all")
    assert kinds(operations) == ["DropConstraint", "DropTable", "DropTable", "DropTable"]
    assert isinstance(operations[0], DropConstraint)
    cycle.upgrade()
    assert cycle.diff() == []
    cycle.downgrade()
    assert cycle.diff(pair()) == []
    assert cycle.rows("SELECT captain_id FROM team") == [(7,)]
    assert cycle.rows("SELECT team_id FROM player") == [(1,)]


def test_three_table_cycle_with_a_dependent(cycle: Cycle, backend: str) -> None:
    operations = roundtrip(cycle, base(), triangle())
    assert kinds(operations).count("AddConstraint") == 1
    created = [op.table.name for op in operations if isinstance(op, CreateTable)]
    assert created.index("w") > created.index("x")


def test_new_table_referenced_by_an_existing_one(cycle: Cycle, backend: str) -> None:
    v1 = base()
    v2 = sa.MetaData()
    sa.Table("keep", v2, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("owner_id", sa.Integer, sa.ForeignKey("owner.id", name="fk_keep_owner")))
    sa.Table("owner", v2, sa.Column("id", sa.Integer, primary_key=True))
    operations = roundtrip(cycle, v1, v2, at_v1=lambda: cycle.run("INSERT INTO keep (id) VALUES (1)"))
    assert kinds(operations) == ["CreateTable", "AddColumn", "AddConstraint"]
    assert cycle.rows("SELECT id FROM keep") == [(1,)]


def test_pure_differ_orders_match_replay() -> None:
    """The differ's own output replays from nothing to the models, and back (in memory)."""
    for metadata in (chain(), pair(), triangle()):
        target = from_metadata(metadata)
        operations = diff(Schema(), target)
        state = Schema()
        for operation in operations:
            state = operation.apply(state)
        assert state == target
