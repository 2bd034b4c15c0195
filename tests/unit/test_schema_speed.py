"""The speed-ups of the schema model, converters, normalizers and differ give the same answers.

Each fast path is checked against the straightforward version it replaces:
`evolve` vs `dataclasses.replace`, the column map of `Table` vs a scan, the
class dispatch of `from_sa_type` vs the isinstance chain, the closed-form
PostgreSQL name shortening vs the character loop, `generated_name` vs one regex
per candidate, memoising and shared normalizers vs fresh ones, and the differ's
equal-table shortcut vs comparing every table.
"""

from __future__ import annotations

import dataclasses
import pickle
import re

import pytest
import sqlalchemy as sa
from sqlalchemy import types as sat
from sqlalchemy.dialects import mysql, postgresql, sqlite

from schemashift.autodetect.differ import COLUMN_FIELDS, RenameDecisions, _Phases, _table_changes, columns_differ, diff
from schemashift.dialects import get_dialect
from schemashift.model import normalize as norm
from schemashift.sqla import types as satypes
from schemashift.sqla.from_metadata import convert_column, from_metadata
from schemashift.model.schema import Column, Computed, Identity, Schema, Table
from schemashift.model.types import Type

# --------------------------------------------------------------------------- model


def test_evolve_returns_self_when_nothing_changes() -> None:
    column = Column("a", Type("string", length=5), default="'x'")
    assert column.evolve() is column
    assert column.evolve(nullable=True, default="'x'", type=Type("string", length=5)) is column
    table = Table("t", (column,))
    assert table.evolve(columns=[column]) is table


def test_evolve_equals_replace() -> None:
    column = Column("a", Type("integer"), nullable=False)
    changes = {"nullable": True, "comment": "c", "type": Type("bigint")}
    assert column.evolve(**changes) == dataclasses.replace(column, **changes)
    typ = Type("enum", values=("a",), name="e")
    assert typ.evolve(values=["a", "b"]) == Type("enum", values=("a", "b"), name="e")
    assert typ.evolve(values=["a", "b"]).values == ("a", "b")
    table = Table("t", (column,), schema="s")
    assert table.evolve(columns=[column, column], comment="x") == Table("t", (column, column), schema="s", comment="x")


def test_evolve_still_validates() -> None:
    with pytest.raises(TypeError):
        Column("a", Type("integer")).evolve(colour="red")
    with pytest.raises(TypeError):
        Type("integer").evolve(nullable=True)
    with pytest.raises(ValueError):
        Type("integer").evolve(kind="bogus")


def test_table_column_lookup_matches_a_scan() -> None:
    first, second, other = Column("a", Type("integer")), Column("a", Type("text")), Column("b", Type("date"))
    table = Table("t", (first, other, second))
    assert table.column("a") is first  # the first of a duplicated name, as a scan finds it
    assert table.column("b") is other
    assert table.has_column("b") and not table.has_column("c")
    with pytest.raises(KeyError, match="no column 'c'"):
        table.column("c")
    assert table.column_names == ("a", "b", "a")
    copied = pickle.loads(pickle.dumps(table))
    assert copied == table and "_columns_by_name" not in copied.__dict__ and copied.column("a") == first
    grown = table.evolve(columns=table.columns + (Column("c", Type("uuid")),))
    assert grown.has_column("c") and not table.has_column("c")
    assert grown == Table("t", (first, other, second, Column("c", Type("uuid"))))


# --------------------------------------------------------------------------- SQLAlchemy types


class _Lowercase(sa.TypeDecorator):
    impl = sa.String(20)
    cache_ok = True


_SA_TYPES = [
    sa.Integer(), sa.SmallInteger(), sa.BigInteger(), sa.Boolean(), sa.String(10), sa.String(), sa.Text(),
    sa.Unicode(5), sa.UnicodeText(), sa.Float(), sa.Float(10), sa.Double(), sa.REAL(), sa.Numeric(10, 2),
    sa.DateTime(), sa.DateTime(timezone=True), sa.Date(), sa.Time(), sa.Interval(), sa.LargeBinary(8),
    sa.JSON(), sa.Uuid(), sa.Enum("a", "b", name="ab"), sa.Enum("x", native_enum=False), sa.ARRAY(sa.Integer),
    sa.PickleType(), _Lowercase(), sat.NullType(), sa.String(10, collation="C"),
    postgresql.TIMESTAMP(timezone=True), postgresql.JSONB(), postgresql.INTERVAL(), postgresql.BYTEA(),
    postgresql.ARRAY(sa.Text, dimensions=2), postgresql.INET(), postgresql.DOUBLE_PRECISION(), postgresql.UUID(),
    mysql.INTEGER(unsigned=True), mysql.TINYINT(), mysql.LONGBLOB(), mysql.VARCHAR(10, collation="utf8mb4_bin"),
    mysql.DATETIME(fsp=6), mysql.YEAR(), sqlite.DATETIME(), sqlite.JSON(),
]


def _reference_from_sa_type(satype: sa.types.TypeEngine) -> Type:
    """`from_sa_type` as an isinstance chain over the converters, as it was written first."""
    if isinstance(satype, sat.TypeDecorator) and not isinstance(satype, sa.Interval):
        return _reference_from_sa_type(satype.impl_instance)
    if isinstance(satype, sa.ARRAY):
        return Type("array", item=_reference_from_sa_type(satype.item_type), dimensions=satype.dimensions)
    for cls, convert in satypes._CONVERTERS:
        if isinstance(satype, cls):
            return convert(satype)
    return satypes._other(satype)


@pytest.mark.parametrize("satype", _SA_TYPES, ids=lambda t: type(t).__name__)
def test_from_sa_type_dispatch_matches_the_isinstance_chain(satype: sa.types.TypeEngine) -> None:
    assert satypes.from_sa_type(satype) == _reference_from_sa_type(satype)


def test_converted_columns_are_shared_only_when_equal() -> None:
    metadata = sa.MetaData()
    for name in ("a", "b"):
        sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.String(9)),
                 sa.Column("qty", sa.Integer, server_default=sa.text("0")), sa.Column(f"only_{name}", sa.Text))
    schema = from_metadata(metadata)
    a, b = schema.table("a"), schema.table("b")
    assert a.column("code") is b.column("code") and a.column("qty") is b.column("qty")
    for name, table in (("a", a), ("b", b)):
        for column in metadata.tables[name].columns:
            assert table.column(column.name) == convert_column(column, metadata.tables[name])


# --------------------------------------------------------------------------- normalize helpers


def _reference_object_name(name1: str, name2: str | None, label: str, limit: int = 63) -> str:
    overhead = len(label) + 1 + (1 if name2 else 0)
    first, second = len(name1), len(name2 or "")
    while first + second > limit - overhead:
        if first > second:
            first -= 1
        else:
            second -= 1
    return "_".join([name1[:first]] + ([name2[:second]] if name2 else []) + [label])


def test_object_name_matches_the_character_loop() -> None:
    for first in range(0, 45):
        for second in range(0, 45):
            for limit in (-3, 0, 7, 20, 30, 63):
                name1, name2 = "t" * first, ("c" * second) or None
                for label in ("key", "pkey", "fkey1"):
                    assert norm.object_name(name1, name2, label, limit) == _reference_object_name(name1, name2, label, limit)


def _reference_generated_name(name: str, candidates: list[str], pattern: str = r"\d*") -> bool:
    return any(re.fullmatch(re.escape(candidate) + f"(?:{pattern})", name) for candidate in candidates)


@pytest.mark.parametrize("pattern", [r"\d*", r"\d+", r"(?:_\d+)?"])
def test_generated_name_matches_one_regex_per_candidate(pattern: str) -> None:
    candidates = ["t_ibfk_", "CONSTRAINT_", "a.b", "x+", "code", ""]
    names = ["t_ibfk_1", "t_ibfk_", "t_ibfk_12x", "CONSTRAINT_3", "a.b", "axb", "x+", "xx", "code", "code_2",
             "code_", "code2", "", "7", "_1"]
    for name in names:
        assert norm.generated_name(name, candidates, pattern) == _reference_generated_name(name, candidates, pattern)


# --------------------------------------------------------------------------- memoising normalizers


def _varied_metadata(backend: str) -> sa.MetaData:
    metadata = sa.MetaData()
    native = backend == "postgresql"
    for n in range(3):
        columns = [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("code", sa.String(40), nullable=False, server_default="x'y"),
            sa.Column("ratio", sa.Float(30), server_default=sa.text("1.50")),
            sa.Column("amount", sa.Numeric(12, 2), server_default=sa.text("(0)")),
            sa.Column("state", sa.Enum("new", "old", name="state", native_enum=native)),
            sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now()),
            sa.Column("flag", sa.Boolean, server_default=sa.true()),
            sa.Column("ref", sa.Uuid),
            sa.Column("doc", postgresql.JSONB if native else sa.JSON),
            sa.Column("total", sa.Integer, sa.Computed("id * 2")),
            sa.Column("parent_id", sa.Integer, sa.ForeignKey(f"t{n}.id", ondelete="CASCADE")),
            sa.CheckConstraint("ratio > 0"),
            sa.UniqueConstraint("code"),
            sa.Index(f"ix_t{n}_code", "code", unique=n == 1),
            sa.Index(f"ix_t{n}_lower", sa.func.lower(sa.column("code"))),
        ]
        if native:
            columns.append(sa.Column("tags", sa.ARRAY(sa.Text)))
            columns.append(sa.Column("serial", sa.BigInteger, sa.Identity(start=5)))
        sa.Table(f"t{n}", metadata, *columns, comment="c" if n else None)
    return metadata


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_shared_normalizer_equals_a_fresh_one(backend: str) -> None:
    dialect = get_dialect(backend)
    schema = from_metadata(_varied_metadata(backend))
    fresh = dialect.Normalizer()(schema)
    assert dialect.normalize(schema) == fresh
    assert dialect.normalize(schema) == fresh  # memos warm
    assert dialect.normalize(fresh) == fresh  # canonical forms are fixed points
    forgetful = dialect.Normalizer()
    forgetful.memo_limit = 0  # forgets before every call
    assert forgetful(schema) == fresh and forgetful(schema) == fresh


def test_memoised_columns_depend_on_the_primary_key_only() -> None:
    column = Column("id", Type("integer"), nullable=False, identity=Identity())
    keyed = Table("a", (column,), primary_key=norm.PrimaryKey(("id",)))
    other = Table("b", (column, Column("x", Type("integer"))), primary_key=norm.PrimaryKey(("x",)))
    normalizer = get_dialect("sqlite").Normalizer()
    results = normalizer(Schema.of([keyed, other]))
    assert results.table("a").column("id").autoincrement is True
    assert results.table("b").column("id").autoincrement is False
    assert results.table("b").column("x").autoincrement is True  # SQLite: the rowid alias


def test_equal_canonical_parts_are_one_object() -> None:
    dialect = get_dialect("postgresql")
    first = dialect.normalize(from_metadata(_varied_metadata("postgresql")))
    second = dialect.normalize(from_metadata(_varied_metadata("postgresql")))
    assert first == second
    for key, table in first.tables.items():
        twin = second.table(key)
        assert all(a is b for a, b in zip(table.columns, twin.columns))
        assert table.primary_key is twin.primary_key


# --------------------------------------------------------------------------- differ


def test_columns_differ_matches_comparing_every_field() -> None:
    base = Column("a", Type("integer"), default="0", computed=Computed("1"))
    variants = [base, dataclasses.replace(base), base.evolve(nullable=False), base.evolve(type=Type("bigint")),
                base.evolve(default=None), base.evolve(computed=Computed("1", True)), base.evolve(name="b")]
    for a in variants:
        for b in variants:
            expected = any(getattr(a, f) != getattr(b, f) for f in COLUMN_FIELDS)
            assert columns_differ(a, b) == expected


def test_equal_tables_produce_no_operations() -> None:
    schema = get_dialect("postgresql").normalize(from_metadata(_varied_metadata("postgresql")))
    for table in schema.tables.values():
        phases = _Phases()
        _table_changes(table, table, phases)
        _table_changes(table, dataclasses.replace(table), phases)
        assert phases.ordered() == []
    assert diff(schema, schema, RenameDecisions(no_rename=True)) == []
