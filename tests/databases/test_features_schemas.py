"""PostgreSQL schemas other than ``public``: created when first needed, cross-schema foreign keys,
indexes and enums in them, reflection of every schema the models or the migrations use.

A schema is created (``IF NOT EXISTS``) by the first operation that puts something
in it, and never dropped: it may hold objects schemashift does not manage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from features_cycle import Cycle, kinds, roundtrip
from schemashift.dialects import get_dialect
from schemashift.operations import CreateTable
from schemashift.sqla.from_metadata import from_metadata
from schemashift.model.schema import Schema

PG_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def cycle(fresh_db: str, tmp_path: Path) -> Cycle:
    return Cycle(tmp_path / "project", fresh_db)


def public() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("account", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)))
    return metadata


def with_audit(*, fk: bool = True, index: str = "ix_audit_log_account") -> sa.MetaData:
    metadata = public()
    args = [sa.ForeignKey("account.id", name="fk_log_account", ondelete="CASCADE")] if fk else []
    log = sa.Table(
        "log", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.Integer, *args),
        sa.Column("level", sa.Enum("info", "warn", name="log_level")),
        schema="ss_audit",
    )
    sa.Index(index, log.c.account_id)
    return metadata


def schema_exists(cycle: Cycle, name: str) -> bool:
    return bool(cycle.rows(f"SELECT count(*) FROM pg_namespace WHERE nspname = '{name}'")[0][0])


def test_create_schema_only_when_needed() -> None:
    dialect = get_dialect("postgresql")
    target = from_metadata(with_audit())
    table = target.table("ss_audit.log")
    statements = dialect.compile(CreateTable(table), Schema(), Schema().with_table(table))
    assert statements[0] == "CREATE SCHEMA IF NOT EXISTS ss_audit"
    already = Schema().with_table(table.evolve(name="other"))
    assert not any("SCHEMA" in s for s in dialect.compile(CreateTable(table), already, already.with_table(table)))


@PG_ONLY
def test_table_in_a_new_schema_with_cross_schema_foreign_key(cycle: Cycle, backend: str) -> None:
    def fill() -> None:
        cycle.run("INSERT INTO account (id, name) VALUES (1, 'ada')",
                  "INSERT INTO ss_audit.log (id, account_id, level) VALUES (1, 1, 'warn')")

    operations = roundtrip(cycle, public(), with_audit(), at_v2=fill)
    assert kinds(operations) == ["CreateTable"]
    assert schema_exists(cycle, "ss_audit")
    cycle.run("DELETE FROM account WHERE id = 1")  # ON DELETE CASCADE across schemas
    assert cycle.rows("SELECT count(*) FROM ss_audit.log") == [(0,)]


@PG_ONLY
def test_schema_kept_on_downgrade_and_reused(cycle: Cycle, backend: str) -> None:
    cycle.generate(public(), "v1")
    cycle.generate(with_audit(), "v2")
    cycle.upgrade()
    cycle.downgrade("-1")
    assert schema_exists(cycle, "ss_audit")
    assert cycle.rows("SELECT count(*) FROM pg_tables WHERE schemaname = 'ss_audit' "
                      "AND position('_schemashift_' in tablename) <> 1") == [(0,)]  # backups aside
    assert cycle.diff(public()) == []
    cycle.upgrade()
    assert cycle.diff(with_audit()) == []


@PG_ONLY
def test_changes_inside_the_schema(cycle: Cycle, backend: str) -> None:
    v1 = with_audit(fk=False)
    v2 = with_audit(fk=True, index="ix_log_account_v2")
    v2.tables["ss_audit.log"].append_column(sa.Column("note", sa.Text))
    operations = roundtrip(cycle, v1, v2, at_v1=lambda: cycle.run(
        "INSERT INTO account (id) VALUES (5)", "INSERT INTO ss_audit.log (id, account_id) VALUES (1, 5)"))
    assert sorted(kinds(operations)) == ["AddColumn", "AddConstraint", "RenameIndex"]
    assert cycle.rows("SELECT account_id FROM ss_audit.log") == [(5,)]
    assert cycle.rows("SELECT count(*) FROM pg_indexes WHERE schemaname = 'ss_audit' "
                      "AND indexname = 'ix_log_account_v2'") == [(1,)]


@PG_ONLY
def test_foreign_key_from_public_into_a_schema_and_same_names_in_two_schemas(cycle: Cycle, backend: str) -> None:
    v1 = public()
    v2 = public()
    sa.Table("item", v2, sa.Column("id", sa.Integer, primary_key=True), schema="ss_a")
    sa.Table("item", v2, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("a_id", sa.Integer, sa.ForeignKey("ss_a.item.id", name="fk_b_item_a")), schema="ss_b")
    v2.tables["account"].append_column(
        sa.Column("item_id", sa.Integer, sa.ForeignKey("ss_b.item.id", name="fk_account_item")))
    operations = roundtrip(cycle, v1, v2)
    created = [op.table.key for op in operations if isinstance(op, CreateTable)]
    assert created == ["ss_a.item", "ss_b.item"]
    assert kinds(operations)[-2:] == ["AddColumn", "AddConstraint"]


@PG_ONLY
def test_diff_sees_what_is_left_in_a_schema_the_models_dropped(cycle: Cycle, backend: str) -> None:
    cycle.generate(with_audit(), "v1")
    cycle.upgrade()
    cycle.generate(public(), "v2")
    cycle.upgrade()
    assert cycle.diff() == []
    cycle.run("CREATE TABLE ss_audit.stray (id integer PRIMARY KEY)")
    assert any("ss_audit.stray" in line for line in cycle.diff())
