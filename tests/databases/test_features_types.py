"""Types with parameters, identity and computed columns, end to end on every database that has them.

Collations (PostgreSQL, MariaDB), MySQL's unsigned integers, TypeDecorators
(compared by their implementation), enums of a Python enum class, Double,
JSONB and ARRAY (PostgreSQL), Uuid (CHAR(32) on MariaDB and SQLite); identity
columns added, changed and dropped (PostgreSQL; elsewhere an identity is plain
autoincrement or nothing); generated columns added, re-expressed (values
recomputed), turned into plain columns and dropped.
"""

from __future__ import annotations

import enum
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from features_cycle import Cycle, kinds, roundtrip
from schemashift import api
from schemashift.operations import AlterColumn
from schemashift.sqla.from_metadata import from_metadata
from schemashift.model.types import Type

pytestmark = pytest.mark.filterwarnings("ignore:Computed column .* STORED:sqlalchemy.exc.SAWarning")
PG_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def cycle(fresh_db: str, tmp_path: Path) -> Cycle:
    return Cycle(tmp_path / "project", fresh_db)


def table(*columns: sa.Column, name: str = "t") -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), *columns)
    return metadata


class Code(sa.types.TypeDecorator):
    """Upper-cased text, stored as VARCHAR(n)."""

    impl = sa.String(40)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return value.upper() if value is not None else None


class LongCode(Code):
    impl = sa.String(80)


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class MoreColor(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3


def test_model_types_convert_with_their_parameters() -> None:
    schema = from_metadata(table(
        sa.Column("a", sa.String(20, collation="C")), sa.Column("b", mysql.INTEGER(unsigned=True)),
        sa.Column("c", Code()), sa.Column("d", sa.Enum(Color, name="color_t")), sa.Column("e", sa.Double),
        sa.Column("f", postgresql.JSONB), sa.Column("g", postgresql.ARRAY(sa.Integer)), sa.Column("h", sa.Uuid),
    ))
    types = {column.name: column.type for column in schema.table("t").columns}
    assert types["a"] == Type("string", length=20, collation="C")
    assert types["b"] == Type("integer", unsigned=True)
    assert types["c"] == Type("string", length=40)
    assert types["d"] == Type("enum", values=("RED", "GREEN"), name="color_t")
    assert types["e"] == Type("float", precision=53)
    assert types["f"] == Type("json", variant="jsonb")
    assert types["g"] == Type("array", item=Type("integer"))
    assert types["h"] == Type("uuid")


def test_collation_added(cycle: Cycle, backend: str) -> None:
    collation = {"postgresql": "C", "mysql": "utf8mb4_bin", "sqlite": "NOCASE"}[backend]
    v1 = table(sa.Column("name", sa.String(30)))
    v2 = table(sa.Column("name", sa.String(30, collation=collation)), sa.Column("body", sa.Text(collation=collation)))
    operations = roundtrip(cycle, v1, v2, at_v1=lambda: cycle.run("INSERT INTO t (id, name) VALUES (1, 'Ada')"))
    assert sorted(kinds(operations)) == ["AddColumn", "AlterColumn"]
    assert cycle.rows("SELECT name FROM t") == [("Ada",)]


def test_unsigned_decorated_python_enum_and_double(cycle: Cycle, backend: str) -> None:
    v1 = table(sa.Column("hits", sa.Integer), sa.Column("code", Code()), sa.Column("color", sa.Enum(Color, name="color_t")),
               sa.Column("ratio", sa.Float))
    v2 = table(sa.Column("hits", mysql.INTEGER(unsigned=True)), sa.Column("code", LongCode()),
               sa.Column("color", sa.Enum(MoreColor, name="color_t")), sa.Column("ratio", sa.Double))

    def fill() -> None:
        cycle.insert(v1.tables["t"], [{"id": 1, "hits": 7, "code": "ab", "color": Color.GREEN, "ratio": 0.5}])

    operations = roundtrip(cycle, v1, v2, at_v1=fill)
    changed = {op.column for op in operations if isinstance(op, AlterColumn)}
    assert changed == {"hits", "code", "color", "ratio"}
    assert cycle.rows("SELECT hits, code, color, ratio FROM t") == [(7, "AB", "GREEN", 0.5)]


def test_same_implementation_is_no_change(cycle: Cycle, backend: str) -> None:
    cycle.generate(table(sa.Column("code", sa.String(40))), "v1")
    cycle.use(table(sa.Column("code", Code())))
    assert api.pending_operations(cycle.project) == []


def test_uuid_column(cycle: Cycle, backend: str) -> None:
    """CHAR(32) on MariaDB and SQLite, holding the hex form (SQLAlchemy 2.1 binds MariaDB 10.7+ UUIDs
    natively, 36 characters: models there write through ``sa.Uuid(native_uuid=False)``)."""
    native = backend != "mysql"
    v2 = table(sa.Column("ref", sa.Uuid(native_uuid=native)), sa.Column("label", sa.String(10)))
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    roundtrip(cycle, table(sa.Column("label", sa.String(10))), v2,
              at_v2=lambda: cycle.insert(v2.tables["t"], [{"id": 1, "ref": value}]))
    engine = sa.create_engine(cycle.url)
    with engine.connect() as connection:
        assert connection.execute(sa.select(v2.tables["t"].c.ref)).scalar() == value
    engine.dispose()
    if backend != "postgresql":
        assert cycle.rows("SELECT ref FROM t") == [(value.hex,)]


@PG_ONLY
def test_jsonb_and_arrays(cycle: Cycle, backend: str) -> None:
    v1 = table(sa.Column("doc", sa.JSON), sa.Column("nums", postgresql.ARRAY(sa.Integer)))
    v2 = table(sa.Column("doc", postgresql.JSONB), sa.Column("nums", postgresql.ARRAY(sa.BigInteger)),
               sa.Column("tags", postgresql.ARRAY(sa.String(20))))

    def fill() -> None:
        cycle.insert(v1.tables["t"], [{"id": 1, "doc": {"a": [1, 2]}, "nums": [1, 2, 3]}])

    operations = roundtrip(cycle, v1, v2, at_v1=fill)
    assert sorted(kinds(operations)) == ["AddColumn", "AlterColumn", "AlterColumn"]
    assert cycle.rows("SELECT doc, nums FROM t") == [({"a": [1, 2]}, [1, 2, 3])]
    assert cycle.rows("SELECT data_type FROM information_schema.columns WHERE table_name = 't' "
                      "AND column_name = 'doc'") == [("jsonb",)]


# -- identity ---------------------------------------------------------------------


@PG_ONLY
def test_identity_added_changed_dropped(cycle: Cycle, backend: str) -> None:
    v1 = table(sa.Column("label", sa.String(10)))
    v2 = table(sa.Column("label", sa.String(10)), sa.Column("n", sa.Integer, sa.Identity(start=100), nullable=False))
    v3 = table(sa.Column("label", sa.String(10)),
               sa.Column("n", sa.Integer, sa.Identity(always=True, start=100, increment=10), nullable=False))
    v4 = table(sa.Column("label", sa.String(10)), sa.Column("n", sa.Integer, nullable=False))
    cycle.generate(v1, "v1")
    cycle.upgrade()
    cycle.run("INSERT INTO t (id, label) VALUES (1, 'a'), (2, 'b')")
    assert kinds(cycle.generate(v2, "identity column added")) == ["AddColumn"]
    cycle.upgrade()
    assert cycle.diff() == []
    assert cycle.rows("SELECT n FROM t ORDER BY id") == [(100,), (101,)]
    operations = cycle.generate(v3, "identity options")
    assert kinds(operations) == ["AlterColumn"] and "identity" in operations[0].describe()
    cycle.upgrade()
    assert cycle.diff() == []
    cycle.run("INSERT INTO t (id, label) VALUES (3, 'c')")
    assert cycle.rows("SELECT n FROM t WHERE id = 3")[0][0] > 101
    cycle.generate(v4, "identity dropped")
    cycle.upgrade()
    assert cycle.diff() == []
    cycle.downgrade("-1")
    assert cycle.diff(v3) == []
    cycle.downgrade("-2")
    assert cycle.diff(v1) == []
    assert cycle.rows("SELECT label FROM t ORDER BY id") == [("a",), ("b",), ("c",)]


def test_identity_elsewhere_is_plain(cycle: Cycle, backend: str) -> None:
    v1 = table(sa.Column("label", sa.String(10)))
    v2 = sa.MetaData()
    sa.Table("t", v2, sa.Column("id", sa.Integer, sa.Identity(), primary_key=True), sa.Column("label", sa.String(10)))
    roundtrip(cycle, v1, v2, at_v1=lambda: cycle.run("INSERT INTO t (id, label) VALUES (1, 'a')"))
    cycle.run("INSERT INTO t (label) VALUES ('b')")
    assert cycle.rows("SELECT id FROM t ORDER BY id") == [(1,), (2,)]


# -- computed ---------------------------------------------------------------------


def computed(expression: str | None, persisted: bool | None = True) -> sa.MetaData:
    extra = [sa.Computed(expression, persisted=persisted)] if expression else []
    return table(sa.Column("qty", sa.Integer), sa.Column("total", sa.Integer, *extra))


def totals(cycle: Cycle) -> list[int | None]:
    return [row[0] for row in cycle.rows("SELECT total FROM t ORDER BY id")]


@pytest.mark.parametrize("persisted", [True, False], ids=["stored", "virtual"])
def test_computed_column_added_and_dropped(cycle: Cycle, backend: str, persisted: bool) -> None:
    if backend == "postgresql" and not persisted:
        pytest.skip("PostgreSQL (before 18) has stored generated columns only")
    v1 = table(sa.Column("qty", sa.Integer))
    v2 = table(sa.Column("qty", sa.Integer), sa.Column("total", sa.Integer, sa.Computed("qty * 2", persisted=persisted)))
    operations = roundtrip(cycle, v1, v2, at_v1=lambda: cycle.run("INSERT INTO t (id, qty) VALUES (1, 3)"))
    assert kinds(operations) == ["AddColumn"]
    assert totals(cycle) == [6]
    assert kinds(cycle.generate(v1, "drop it")) == ["DropColumn"]
    cycle.upgrade()
    assert cycle.diff() == []
    cycle.downgrade()
    assert cycle.diff(v2) == [] and totals(cycle) == [6]


@pytest.mark.parametrize("persisted", [True, None], ids=["stored", "default-kind"])
def test_computed_expression_changed_recomputes(cycle: Cycle, backend: str, persisted: bool | None) -> None:
    v1, v2 = computed("qty * 2", persisted), computed("qty * 3", persisted)
    operations = roundtrip(cycle, v1, v2, at_v1=lambda: cycle.run("INSERT INTO t (id, qty) VALUES (1, 3)"))
    assert kinds(operations) == ["AlterColumn"]
    assert "generated as (qty * 3) instead of (qty * 2)" in operations[0].describe()
    assert totals(cycle) == [9]


def test_computed_to_plain_and_back(cycle: Cycle, backend: str) -> None:
    v1, v2 = computed("qty + 1"), computed(None)
    operations = roundtrip(cycle, v1, v2, at_v1=lambda: cycle.run("INSERT INTO t (id, qty) VALUES (1, 4)"))
    assert kinds(operations) == ["AlterColumn"]
    assert totals(cycle) == [5]  # the stored values stay as plain values
    cycle.run("UPDATE t SET total = 50")
    cycle.downgrade()
    assert totals(cycle) == [5]  # recomputed
