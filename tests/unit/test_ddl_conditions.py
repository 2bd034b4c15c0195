"""``ddl_if`` conditions read from the models as ``create_all`` reads them, per database.

A ``dialect=`` condition limits an index or CHECK to those databases; a
``callable_=`` condition is asked for each database schemashift knows; one that
cannot be answered without a live connection is refused, naming the item.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from schemashift.errors import ModelsError
from schemashift.model.schema import built_on
from schemashift.sqla.from_metadata import from_metadata


def _models(condition: Any) -> sa.MetaData:
    metadata = sa.MetaData()
    table = sa.Table("doc", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("n", sa.Integer),
                     sa.CheckConstraint("n > 0", name="ck_doc_n").ddl_if(callable_=condition))
    sa.Index("ix_doc_n", table.c.n).ddl_if(callable_=condition)
    return metadata


def _only_postgresql(ddl: object, target: object, bind: object, **kw: Any) -> bool:
    return bool(kw["dialect"].name == "postgresql")


def _needs_a_connection(ddl: object, target: object, bind: Any, **kw: Any) -> bool:
    return bool(bind.dialect.server_version_info >= (12,))


def test_callable_condition_asked_per_database() -> None:
    table = from_metadata(_models(_only_postgresql)).table("doc")
    index = table.indexes[0]
    assert built_on(index, ["postgresql"]) and not built_on(index, ["sqlite"]) and not built_on(index, ["mysql"])
    assert [c.only_on for c in table.checks] == [("postgresql",)]


def test_callable_condition_never_true_builds_nothing() -> None:
    table = from_metadata(_models(lambda *args, **kw: False)).table("doc")
    assert table.checks == ()
    assert not any(built_on(table.indexes[0], [name]) for name in ("postgresql", "mysql", "sqlite"))


def test_callable_condition_needing_a_connection_is_refused() -> None:
    with pytest.raises(ModelsError, match=r"^ck_doc_n: its ddl_if\(callable_=...\) condition failed without a "
                                          r"database") as raised:
        from_metadata(_models(_needs_a_connection))
    assert "\n" not in str(raised.value)
