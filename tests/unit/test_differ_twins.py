"""Twin constraints: a named foreign key and an unnamed one alike (a column's REFERENCES beside a named
FOREIGN KEY clause). MLflow's models declare such twins; its Alembic history builds only the named one.

The differ matches equal constraints before it lets an unnamed one stand for a named one, so the one
reported missing is the one that is missing (the unnamed twin), not the named key the database has.
"""

from __future__ import annotations

from schemashift.autodetect.differ import diff, match_items
from schemashift.model.schema import Column, ForeignKey, Schema, Table
from schemashift.model.types import Type
from schemashift.operations import AddConstraint

NAMED = ForeignKey(("parent_id",), "parent", ("id",), name="fk_child_parent", ondelete="CASCADE")
UNNAMED = ForeignKey(("parent_id",), "parent", ("id",), ondelete="CASCADE")


def _schema(*keys: ForeignKey) -> Schema:
    integer = Type("integer")
    parent = Table("parent", (Column("id", integer, nullable=False),))
    child = Table("child", (Column("id", integer, nullable=False), Column("parent_id", integer)), foreign_keys=keys)
    return Schema.of([parent, child], [])


def test_unnamed_twin_missing_is_reported_as_the_unnamed_one() -> None:
    for models in ((UNNAMED, NAMED), (NAMED, UNNAMED)):  # whichever order the models create them in
        operations = diff(_schema(NAMED), _schema(*models))
        assert [type(op) for op in operations] == [AddConstraint], operations
        assert operations[0].constraint == UNNAMED  # type: ignore[attr-defined]


def test_match_items_prefers_equal_items() -> None:
    assert match_items([NAMED], [UNNAMED, NAMED]) == ([], [UNNAMED])
    assert match_items([UNNAMED], [NAMED]) == ([], [])  # the database named what the models left unnamed
    assert match_items([NAMED, UNNAMED], [UNNAMED]) == ([NAMED], [])
