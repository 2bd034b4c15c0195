"""Enums end to end: PostgreSQL native types, MySQL ENUM columns, non-native enums with their CHECK.

PostgreSQL: the type is created before its first column and dropped with its
last; added values land in their place (``ADD VALUE … BEFORE/AFTER``) and may be
used in the same migration (it then runs statement by statement, the ADD VALUE
committed at once); removed or renamed values rebuild the type once for every
column using it, and rows still holding a removed value stop the migration with
a clear message, nothing changed. MySQL: ENUM columns change with MODIFY.
Elsewhere a native enum is a VARCHAR; ``native_enum=False, create_constraint=True``
adds a CHECK on every database, which follows the values.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from features_cycle import Cycle, kinds, roundtrip
from schemashift.dialects import get_dialect
from schemashift.errors import SchemashiftError
from schemashift.operations import AlterColumn
from schemashift.sqla.from_metadata import from_metadata
from schemashift.model.schema import CheckConstraint

PG_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def cycle(fresh_db: str, tmp_path: Path) -> Cycle:
    return Cycle(tmp_path / "project", fresh_db)


def model(*values: str, name: str = "level_t", column: str = "level", **options: object) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column(column, sa.Enum(*values, name=name, **options)))
    return metadata


def enum_values(cycle: Cycle, name: str) -> list[str]:
    return [row[0] for row in cycle.rows(f"SELECT unnest(enum_range(NULL::{name}))::text")]


def type_exists(cycle: Cycle, name: str) -> bool:
    return bool(cycle.rows(f"SELECT count(*) FROM pg_type WHERE typname = '{name}'")[0][0])


def values_of(cycle: Cycle, column: str = "level", table: str = "t") -> list[str | None]:
    return [row[0] for row in cycle.rows(f"SELECT {column} FROM {table} ORDER BY id")]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (("mid", "high"), ("low", "mid", "high", "top")),  # before the first, after the last
        (("s", "l"), ("s", "m", "l")),  # between
        (("a", "b", "c"), ("c", "a", "b")),  # reordered
        (("new", "old", "gone"), ("new", "old")),  # removed, unused
        (("red", "grn"), ("red", "green")),  # renamed, unused
    ],
    ids=["added-around", "added-between", "reordered", "removed", "renamed"],
)
def test_value_changes_keep_rows(cycle: Cycle, backend: str, before: tuple[str, ...], after: tuple[str, ...]) -> None:
    kept = [value for value in before if value in after]

    def fill() -> None:
        cycle.run(*(f"INSERT INTO t (id, level) VALUES ({i}, '{v}')" for i, v in enumerate(kept)))

    operations = roundtrip(cycle, model(*before), model(*after), at_v1=fill)
    assert kinds(operations) == ["AlterColumn"]
    assert values_of(cycle) == kept
    if backend == "postgresql":
        assert enum_values(cycle, "level_t") == list(after)
    if backend == "mysql":
        column_type = cycle.rows("SELECT COLUMN_TYPE FROM information_schema.COLUMNS "
                                 "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND COLUMN_NAME = 'level'")
        assert column_type[0][0] == "enum(" + ",".join(f"'{v}'" for v in after) + ")"


@PG_ONLY
def test_added_values_placed_with_before_and_after(cycle: Cycle, backend: str) -> None:
    cycle.generate(model("mid", "high"), "v1")
    cycle.generate(model("low", "mid", "upper", "high", "top"), "v2")
    script = "\n".join(cycle.sql())
    assert "ADD VALUE IF NOT EXISTS 'low' BEFORE 'mid'" in script
    assert "ADD VALUE IF NOT EXISTS 'upper' AFTER 'mid'" in script
    assert "ADD VALUE IF NOT EXISTS 'top' AFTER 'high'" in script


@PG_ONLY
def test_added_value_used_in_the_same_migration(cycle: Cycle, backend: str) -> None:
    """ADD VALUE runs outside the transaction, so a default (and a new column) may use the value at once."""
    v1 = model("a", "b")
    v2 = sa.MetaData()
    level = sa.Enum("a", "b", "c", name="level_t")
    sa.Table("t", v2, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("level", level, server_default="c"),
             sa.Column("spare", level, nullable=False, server_default="c"))

    def at_v2() -> None:
        cycle.run("INSERT INTO t (id) VALUES (10)")
        assert cycle.rows("SELECT level, spare FROM t WHERE id = 10") == [("c", "c")]
        cycle.run("DELETE FROM t WHERE id = 10")  # the downgrade removes 'c' again

    roundtrip(cycle, v1, v2, at_v1=lambda: cycle.run("INSERT INTO t (id, level) VALUES (1, 'a')"), at_v2=at_v2)
    assert cycle.rows("SELECT level, spare FROM t WHERE id = 1") == [("a", "c")]
    assert get_dialect("postgresql").runs_in_transaction("ALTER TYPE level_t ADD VALUE IF NOT EXISTS 'c'") is False
    assert get_dialect("postgresql").runs_in_transaction("ALTER TABLE t ADD COLUMN x level_t") is True


def test_removing_a_used_value_stops_with_a_clear_message(cycle: Cycle, backend: str) -> None:
    cycle.generate(model("new", "old", "gone"), "v1")
    cycle.upgrade()
    cycle.run("INSERT INTO t (id, level) VALUES (1, 'new'), (2, 'gone')")
    cycle.generate(model("new", "old"), "v2")
    with pytest.raises(SchemashiftError, match=r"still use.*gone"):
        cycle.upgrade()
    assert values_of(cycle) == ["new", "gone"]
    if backend == "postgresql":
        assert enum_values(cycle, "level_t") == ["new", "old", "gone"]
    cycle.run("UPDATE t SET level = 'old' WHERE id = 2")
    if backend != "postgresql":  # journaled databases record the failed run, to be repaired
        from schemashift import api

        api.repair(cycle.project, action="undo", out=cycle.output.append)
    cycle.upgrade()
    assert cycle.diff() == [] and values_of(cycle) == ["new", "old"]


@PG_ONLY
def test_type_created_before_first_use_and_dropped_with_last(cycle: Cycle, backend: str) -> None:
    v1 = sa.MetaData()
    sa.Table("base", v1, sa.Column("id", sa.Integer, primary_key=True))
    v2 = sa.MetaData()
    sa.Table("base", v2, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("mood", sa.Enum("ok", "meh", name="mood_t")))
    sa.Table("other", v2, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("mood", sa.Enum("ok", "meh", name="mood_t")))
    cycle.generate(v1, "v1")
    cycle.upgrade()
    operations = cycle.generate(v2, "v2")
    assert kinds(operations) == ["CreateTable", "AddColumn"]
    cycle.upgrade()
    assert cycle.diff() == [] and type_exists(cycle, "mood_t")
    creates = [line for line in cycle.sql("down", "head") if "CREATE TYPE" in line]
    assert creates == []
    # the column goes first: the type stays for the table
    v3 = sa.MetaData()
    sa.Table("base", v3, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("other", v3, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("mood", sa.Enum("ok", "meh", name="mood_t")))
    cycle.generate(v3, "v3")
    cycle.upgrade()
    assert type_exists(cycle, "mood_t") and cycle.diff() == []
    cycle.generate(v1, "v4")
    cycle.upgrade()
    assert not type_exists(cycle, "mood_t") and cycle.diff() == []
    cycle.downgrade("base")
    assert not type_exists(cycle, "mood_t")


@PG_ONLY
def test_type_shared_by_two_tables_changes_once(cycle: Cycle, backend: str) -> None:
    def shared(*values: str) -> sa.MetaData:
        metadata = sa.MetaData()
        kind = sa.Enum(*values, name="kind_t")
        sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("kind", kind))
        sa.Table("u", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("kind", kind))
        return metadata

    def fill() -> None:
        cycle.run("INSERT INTO t (id, kind) VALUES (1, 'a')", "INSERT INTO u (id, kind) VALUES (1, 'b')")

    operations = roundtrip(cycle, shared("a", "b", "x"), shared("b", "a", "c"), at_v1=fill)
    assert kinds(operations) == ["AlterColumn", "AlterColumn"]
    script = cycle.sql("down", "-1")
    assert sum("CREATE TYPE" in line for line in script) == 1
    assert values_of(cycle, "kind", "t") == ["a"] and values_of(cycle, "kind", "u") == ["b"]
    assert enum_values(cycle, "kind_t") == ["b", "a", "c"]
    # a row of the *other* table holding a removed value stops the change too
    # (the downgrade changes u.kind first, which rebuilds the type for t.kind too)
    cycle.run("INSERT INTO t (id, kind) VALUES (2, 'c')")
    with pytest.raises(SchemashiftError, match=r"rows of t\.kind still use the value\(s\) c that enum type kind_t"):
        cycle.downgrade("-1")
    assert enum_values(cycle, "kind_t") == ["b", "a", "c"]


def check_model(*values: str, name: str | None) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("tier", sa.Enum(*values, name=name, native_enum=False, create_constraint=True)))
    return metadata


@pytest.mark.parametrize("name", ["tier_t", None], ids=["named", "unnamed"])
def test_non_native_enum_check_follows_the_values(cycle: Cycle, backend: str, name: str | None) -> None:
    if backend == "mysql" and name is None:
        pytest.skip("MySQL names an unnamed CHECK unpredictably: name it (Enum name or a naming convention)")
    v1, v2 = check_model("free", "pro", name=name), check_model("free", "pro", "enterprise", name=name)
    assert from_metadata(v1).table("t").checks == (CheckConstraint("tier IN ('free', 'pro')", name),)

    def refuses(value: str) -> bool:
        try:
            cycle.run(f"INSERT INTO t (id, tier) VALUES (99, '{value}')")
        except sa.exc.DBAPIError:
            return True
        cycle.run("DELETE FROM t WHERE id = 99")
        return False

    def at_v1() -> None:
        cycle.run("INSERT INTO t (id, tier) VALUES (1, 'pro')")
        assert refuses("enterprise")

    operations = roundtrip(cycle, v1, v2, at_v1=at_v1, at_v2=lambda: None)
    assert set(kinds(operations)) == {"AlterColumn", "DropConstraint", "AddConstraint"}
    assert not refuses("enterprise") and refuses("gold")
    assert values_of(cycle, "tier") == ["pro"]


def test_plain_non_native_enum_is_a_varchar(cycle: Cycle, backend: str) -> None:
    v1 = model("free", "pro", name="tier_p", native_enum=False)
    v2 = model("free", "pro", "enterprise", name="tier_p", native_enum=False)
    assert from_metadata(v1).table("t").checks == ()
    operations = roundtrip(cycle, v1, v2, at_v1=lambda: cycle.run("INSERT INTO t (id, level) VALUES (1, 'pro')"))
    assert kinds(operations) == ["AlterColumn"]
    assert isinstance(operations[0], AlterColumn) and values_of(cycle) == ["pro"]


@PG_ONLY
@pytest.mark.parametrize(("before", "after"), [(("a", "b"), ("a", "b", "c")), (("a", "b", "x"), ("b", "a", "c"))],
                         ids=["added", "replaced"])
def test_new_column_brings_the_new_values_first(cycle: Cycle, backend: str,
                                                before: tuple[str, ...], after: tuple[str, ...]) -> None:
    """A column added (table "a_new", sorted first) with the changed type changes it for the existing one too."""
    def models(values: tuple[str, ...], *, added: bool) -> sa.MetaData:
        metadata = sa.MetaData()
        kind = sa.Enum(*values, name="kind_n")
        sa.Table("b_old", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("kind", kind))
        if added:
            sa.Table("a_new", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("kind", kind))
            metadata.tables["b_old"].append_column(sa.Column("extra", kind, server_default="c"))
        return metadata

    operations = roundtrip(cycle, models(before, added=False), models(after, added=True),
                           at_v1=lambda: cycle.run("INSERT INTO b_old (id, kind) VALUES (1, 'a')"))
    assert kinds(operations)[0] == "CreateTable" and sorted(kinds(operations)[1:]) == ["AddColumn", "AlterColumn"]
    assert enum_values(cycle, "kind_n") == list(after)
    assert cycle.rows("SELECT kind, extra FROM b_old") == [("a", "c")]
