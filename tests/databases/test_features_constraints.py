"""Constraint names from a MetaData naming convention, and MySQL's implicit foreign-key indexes.

Names a convention gives reach the migration and the database unchanged, and
diff clean; a changed convention renames indexes and drops and re-adds the
constraints under their new names. On MySQL, a dropped foreign key takes the
index InnoDB made for it along, and dropping the index a foreign key relies on
hands that role back to an index of the key's own: downgrade/upgrade cycles diff clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from features_cycle import Cycle, kinds, roundtrip
from schemashift.sqla.from_metadata import from_metadata

MYSQL_ONLY = pytest.mark.parametrize("backend", ["mysql"], indirect=True)

CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


@pytest.fixture
def cycle(fresh_db: str, tmp_path: Path) -> Cycle:
    return Cycle(tmp_path / "project", fresh_db)


def conventional(convention: dict[str, str] = CONVENTION, *, extra: bool = True) -> sa.MetaData:
    metadata = sa.MetaData(naming_convention=convention)
    sa.Table("owner", metadata, sa.Column("id", sa.Integer, primary_key=True))
    columns = [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(10), unique=True),
        sa.Column("qty", sa.Integer),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("owner.id"), index=True),
        sa.CheckConstraint("qty > 0", name="positive"),
    ]
    sa.Table("item", metadata, *(columns if extra else columns[:1]))
    return metadata


def constraint_names(cycle: Cycle, table: str) -> set[str]:
    if cycle.dialect == "sqlite":
        sql = cycle.rows(f"SELECT sql FROM sqlite_master WHERE tbl_name = '{table}'")
        return {name for name in ("pk_item", "uq_item_code", "ck_item_positive", "fk_item_owner_id_owner",
                                  "ix_item_owner_id") if any(name in (row[0] or "") for row in sql)}
    rows = cycle.rows("SELECT constraint_name FROM information_schema.table_constraints "
                      f"WHERE table_name = '{table}' AND constraint_schema = "
                      + ("current_schema()" if cycle.dialect == "postgresql" else "DATABASE()"))
    names = {row[0] for row in rows}
    index_sql = ("SELECT indexname FROM pg_indexes WHERE tablename = 'item'" if cycle.dialect == "postgresql" else
                 "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                 "AND TABLE_NAME = 'item'")
    return names | {row[0] for row in cycle.rows(index_sql)}


def test_convention_names_reach_the_model() -> None:
    table = from_metadata(conventional()).table("item")
    assert table.primary_key is not None and table.primary_key.name == "pk_item"
    assert [u.name for u in table.uniques] == ["uq_item_code"]
    assert [c.name for c in table.checks] == ["ck_item_positive"]
    assert [f.name for f in table.foreign_keys] == ["fk_item_owner_id_owner"]
    assert [i.name for i in table.indexes] == ["ix_item_owner_id"]


def test_convention_names_in_the_database(cycle: Cycle, backend: str) -> None:
    operations = roundtrip(cycle, conventional(extra=False), conventional(),
                           at_v1=lambda: cycle.run("INSERT INTO item (id) VALUES (1)"))
    assert set(kinds(operations)) == {"AddColumn", "AddConstraint", "CreateIndex"}
    names = constraint_names(cycle, "item")
    expected = {"uq_item_code", "ck_item_positive", "fk_item_owner_id_owner", "ix_item_owner_id"}
    if backend != "mysql":  # MySQL calls every primary key PRIMARY
        expected.add("pk_item")
    assert expected <= names


def test_changed_convention_renames_without_false_positives(cycle: Cycle, backend: str) -> None:
    renamed = {**CONVENTION, "ix": "idx_%(column_0_label)s", "uq": "uniq_%(table_name)s_%(column_0_name)s",
               "ck": "chk_%(table_name)s_%(constraint_name)s", "fk": "fkey_%(table_name)s_%(column_0_name)s"}
    operations = roundtrip(cycle, conventional(), conventional(renamed),
                           at_v1=lambda: cycle.run("INSERT INTO owner (id) VALUES (1)",
                                                   "INSERT INTO item (id, code, qty, owner_id) VALUES (1, 'a', 2, 1)"))
    assert "RenameIndex" in kinds(operations)
    assert kinds(operations).count("AddConstraint") == 3
    assert cycle.rows("SELECT code, qty, owner_id FROM item") == [("a", 2, 1)]


# -- MySQL: InnoDB's own index for a foreign key ------------------------------------------


def family(*, fk: bool, index: bool = False) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("parent", metadata, sa.Column("id", sa.Integer, primary_key=True))
    args = [sa.ForeignKey("parent.id", name="fk_child_parent")] if fk else []
    sa.Table("child", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("parent_id", sa.Integer, *args, index=index))
    return metadata


def indexes_of(cycle: Cycle, table: str) -> set[str]:
    rows = cycle.rows("SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                      f"AND TABLE_NAME = '{table}' AND INDEX_NAME <> 'PRIMARY'")
    return {row[0] for row in rows}


@MYSQL_ONLY
def test_dropped_foreign_key_takes_its_implicit_index(cycle: Cycle, backend: str) -> None:
    def fill() -> None:
        cycle.run("INSERT INTO parent (id) VALUES (1)", "INSERT INTO child (id, parent_id) VALUES (1, 1)")

    operations = roundtrip(cycle, family(fk=True), family(fk=False), at_v1=fill)
    assert kinds(operations) == ["DropConstraint"]
    assert indexes_of(cycle, "child") == set()
    cycle.downgrade()
    assert indexes_of(cycle, "child") == {"fk_child_parent"}
    cycle.upgrade()
    assert indexes_of(cycle, "child") == set() and cycle.diff() == []


@MYSQL_ONLY
def test_foreign_key_served_by_an_explicit_index_keeps_it(cycle: Cycle, backend: str) -> None:
    roundtrip(cycle, family(fk=True, index=True), family(fk=False, index=True))
    assert indexes_of(cycle, "child") == {"ix_child_parent_id"}


@MYSQL_ONLY
def test_dropping_the_index_a_foreign_key_uses(cycle: Cycle, backend: str) -> None:
    operations = roundtrip(cycle, family(fk=True, index=True), family(fk=True, index=False))
    assert kinds(operations) == ["DropIndex"]
    assert indexes_of(cycle, "child") == {"fk_child_parent"}
    cycle.downgrade()
    assert "ix_child_parent_id" in indexes_of(cycle, "child")
    assert cycle.diff(family(fk=True, index=True)) == []


@MYSQL_ONLY
def test_index_added_later_replaces_the_implicit_one(cycle: Cycle, backend: str) -> None:
    operations = roundtrip(cycle, family(fk=True), family(fk=True, index=True))
    assert kinds(operations) == ["CreateIndex"]
    assert indexes_of(cycle, "child") == {"ix_child_parent_id"}
    cycle.generate(family(fk=False, index=True), "drop the key")
    cycle.upgrade()
    assert indexes_of(cycle, "child") == {"ix_child_parent_id"} and cycle.diff() == []
    cycle.downgrade("-2")
    assert indexes_of(cycle, "child") == {"fk_child_parent"} and cycle.diff(family(fk=True)) == []


# -- a primary key's name --------------------------------------------------------------------


def test_renamed_primary_key_is_reported_and_renamed(cycle: Cycle, backend: str) -> None:
    """A named primary key whose name changes is renamed (data kept); on MySQL (every key is PRIMARY) a no-op."""
    renamed = {**CONVENTION, "pk": "pkey_%(table_name)s"}
    seen: list[list[str]] = []
    operations = roundtrip(cycle, conventional(extra=False), conventional(renamed, extra=False),
                           at_v1=lambda: (cycle.run("INSERT INTO item (id) VALUES (7)"),
                                          seen.append(cycle.diff(conventional(renamed, extra=False)))))
    assert kinds(operations) == ["RenameConstraint", "RenameConstraint"]  # the same file for every database
    if backend == "mysql":  # nothing to rename there, nothing reported
        assert seen == [[]]
        return
    assert any("pk_item" in line and "pkey_item" in line for line in seen[0]), seen
    assert cycle.rows("SELECT id FROM item") == [(7,)]
    if backend == "postgresql":
        assert {"pkey_item", "pkey_owner"} <= constraint_names(cycle, "item") | constraint_names(cycle, "owner")


def test_a_check_calling_length_is_not_drift(cycle: Cycle, backend: str) -> None:
    """``CHECK (length(code) > 0)`` diffs clean where the server keeps another spelling (MariaDB stores
    ``octet_length``, its synonym), and a column named ``length`` stays a column (not taken for the function)."""
    metadata = sa.MetaData()
    sa.Table("item", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.String(10)),
             sa.Column("length", sa.Integer),
             sa.CheckConstraint("length(code) > 0", name="ck_code"), sa.CheckConstraint("length >= 0", name="ck_len"))
    cycle.generate(metadata, "v1")
    cycle.upgrade()
    assert cycle.diff(metadata) == []
