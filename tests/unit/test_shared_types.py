"""DDL column types shared between tables (`schemashift.sqla.types.shared_sa_type`): one SQLAlchemy instance per
plain type, never for types that attach themselves to a table, and the same SQL as without sharing."""

from __future__ import annotations

import pytest

from schemashift.dialects import get_dialect
from schemashift.model.schema import Column, PrimaryKey, Table
from schemashift.model.types import Type
from schemashift.sqla.to_metadata import sa_table
from schemashift.sqla.types import TypeMemo, shared_sa_type

TAG = Type("enum", values=("a", "b"), name="tag")


def test_plain_types_are_shared() -> None:
    memo: TypeMemo = {}
    first = shared_sa_type(Type("string", length=40), "postgresql", memo)
    assert shared_sa_type(Type("string", length=40), "postgresql", memo) is first
    assert shared_sa_type(Type("string", length=40), "mysql", memo) is not first
    assert shared_sa_type(Type("string", length=41), "postgresql", memo) is not first


@pytest.mark.parametrize("typ", [TAG, Type("boolean"), Type("array", item=TAG)], ids=["enum", "boolean", "array"])
def test_types_bound_to_a_table_are_not_shared(typ: Type) -> None:
    memo: TypeMemo = {}
    assert shared_sa_type(typ, "postgresql", memo) is not shared_sa_type(typ, "postgresql", memo)
    assert memo == {}


def _table(name: str) -> Table:
    columns = (Column("id", Type("integer"), nullable=False, autoincrement=True),
               Column("code", Type("string", length=40), nullable=False), Column("flag", Type("boolean")),
               Column("tag", TAG), Column("amount", Type("numeric", precision=12, scale=2)))
    return Table(name, columns, primary_key=PrimaryKey(("id",)))


@pytest.mark.parametrize("database", ["postgresql", "mysql", "sqlite"])
def test_same_sql_with_shared_types(database: str) -> None:
    dialect = get_dialect(database)
    memo: TypeMemo = {}
    for name in ("one", "two", "three"):
        plain = dialect.create_table_sql(sa_table(_table(name), dialect_name=database))
        shared = dialect.create_table_sql(sa_table(_table(name), dialect_name=database, types=memo))
        assert shared == plain
