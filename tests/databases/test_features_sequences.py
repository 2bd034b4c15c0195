"""Standalone sequences end to end: on the MetaData, as a column's default, altered, dropped.

Databases with sequences (PostgreSQL, MariaDB) get them; on SQLite the same
migrations run and sequence operations compile to nothing. Sequences that a
SERIAL or identity column owns are never reported as standalone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from features_cycle import Cycle, kinds, roundtrip
from schemashift.dialects import get_dialect
from schemashift.operations import AlterSequence, CreateSequence, DropSequence, invert_all, resolve_all
from schemashift.operations.render import render_value
from schemashift.sqla.from_metadata import from_metadata
from schemashift.model.schema import Schema, Sequence
from schemashift.reflection.sequences import sequence_reference


@pytest.fixture
def cycle(fresh_db: str, tmp_path: Path) -> Cycle:
    return Cycle(tmp_path / "project", fresh_db)


def has_sequences(cycle: Cycle) -> bool:
    return get_dialect(cycle.dialect).supports_sequences


def tickets(*, sequence: sa.Sequence | None = None, standalone: sa.Sequence | None = None) -> sa.MetaData:
    metadata = sa.MetaData()
    if standalone is not None:
        standalone._set_metadata(metadata)
    args = [sequence] if sequence is not None else []
    sa.Table(
        "ticket", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("number", sa.Integer, *args),
        sa.Column("label", sa.String(20)),
    )
    return metadata


def next_values(cycle: Cycle, name: str, count: int = 2) -> list[int]:
    call = f"nextval('{name}')" if cycle.dialect == "postgresql" else f"nextval({name})"
    return [int(cycle.rows(f"SELECT {call}")[0][0]) for _ in range(count)]


def test_model_conversion_keeps_sequences_and_column_use() -> None:
    metadata = tickets(sequence=sa.Sequence("ticket_no", start=100, increment=10),
                       standalone=sa.Sequence("other_seq", start=5, schema="s1"))
    schema = from_metadata(metadata)
    assert schema.sequences == {
        "ticket_no": Sequence("ticket_no", start=100, increment=10),
        "s1.other_seq": Sequence("other_seq", schema="s1", start=5),
    }
    assert schema.table("ticket").column("number").sequence == "ticket_no"
    # schema-level changes keep sequences along
    assert schema.without_table("ticket").sequences == schema.sequences
    assert Schema.of(schema.tables.values()) != schema


def test_operations_render_apply_and_invert() -> None:
    sequence = Sequence("s", start=3, increment=2, cycle=True)
    operations = [CreateSequence(sequence),
                  AlterSequence("s", new=Sequence("s", start=3, increment=5)),
                  DropSequence("s")]
    resolved, state = resolve_all(operations, Schema())
    assert state == Schema()
    assert resolved[1].old == sequence and resolved[2].definition == Sequence("s", start=3, increment=5)
    namespace: dict[str, object] = {}
    exec("from schemashift.migration import *", namespace)  # noqa: S102
    for operation in resolved:
        assert eval(render_value(operation), namespace) == operation  # noqa: S307
    undone, _ = resolve_all(invert_all(resolved), state)
    assert kinds(undone) == ["CreateSequence", "AlterSequence", "DropSequence"]
    assert undone[1].new == sequence
    assert "increment 5 -> 2" in undone[1].describe()


@pytest.mark.parametrize(
    ("default", "expected"),
    [
        ("nextval('plain'::regclass)", (None, "plain")),
        ("nextval('s1.myseq'::regclass)", ("s1", "myseq")),
        ('nextval(\'"s1".plain\'::regclass)', ("s1", "plain")),
        ('nextval(\'"Odd ""Name"""::regclass)', (None, 'Odd "Name"')),
        ("nextval(`db`.`seq`)", ("db", "seq")),
        ("42", None),
    ],
)
def test_sequence_reference(default: str, expected: tuple[str | None, str] | None) -> None:
    assert sequence_reference(default) == expected


def test_standalone_sequence_added_altered_dropped(cycle: Cycle, backend: str) -> None:
    v1 = tickets()
    v2 = tickets(standalone=sa.Sequence("invoice_seq", start=10, increment=5))
    operations = roundtrip(cycle, v1, v2)
    assert kinds(operations) == ["CreateSequence"]
    if has_sequences(cycle):
        assert next_values(cycle, "invoice_seq") == [10, 15]
    v3 = tickets(standalone=sa.Sequence("invoice_seq", start=10, increment=7, maxvalue=10_000, cycle=True))
    operations = cycle.generate(v3, "alter")
    assert kinds(operations) == ["AlterSequence"]
    assert set(operations[0].resolve(from_metadata(v2)).changes) == {"increment", "maxvalue", "cycle"}
    cycle.upgrade()
    assert cycle.diff() == []
    if has_sequences(cycle):
        # carries on from 15, 7 at a time (MariaDB skips the values it had cached)
        value = next_values(cycle, "invoice_seq", 1)[0]
        assert value == 22 if backend == "postgresql" else value > 15
    cycle.downgrade()
    assert cycle.diff(v2) == []
    cycle.upgrade()
    assert kinds(cycle.generate(v1, "drop")) == ["DropSequence"]
    cycle.upgrade()
    assert cycle.diff() == []
    cycle.downgrade()
    assert cycle.diff(v3) == []


def test_column_default_from_sequence(cycle: Cycle, backend: str) -> None:
    v1 = tickets()
    v2 = tickets(sequence=sa.Sequence("ticket_no", start=1000))

    def insert_at_v1() -> None:
        cycle.run("INSERT INTO ticket (id, label) VALUES (1, 'a')")

    def numbered_at_v2() -> None:
        cycle.run("INSERT INTO ticket (id, label) VALUES (2, 'b')")
        if has_sequences(cycle):
            assert cycle.rows("SELECT number FROM ticket WHERE id = 2") == [(1000,)]

    operations = roundtrip(cycle, v1, v2, at_v1=insert_at_v1, at_v2=numbered_at_v2)
    assert kinds(operations) == ["CreateSequence", "AlterColumn"]
    assert "sequence ticket_no" in operations[1].describe()
    assert cycle.rows("SELECT label FROM ticket ORDER BY id") == [("a",), ("b",)]


def test_table_created_with_a_sequence_primary_key(cycle: Cycle, backend: str) -> None:
    v1 = tickets()
    v2 = tickets()
    sa.Table("orders", v2, sa.Column("id", sa.Integer, sa.Sequence("order_id_seq", start=500), primary_key=True),
             sa.Column("what", sa.String(20)))
    operations = roundtrip(cycle, v1, v2)
    assert kinds(operations) == ["CreateSequence", "CreateTable"]
    cycle.run("INSERT INTO orders (what) VALUES ('x')")
    expected = 500 if has_sequences(cycle) else 1
    assert cycle.rows("SELECT id FROM orders") == [(expected,)]


def test_serial_and_identity_sequences_are_not_standalone(cycle: Cycle, backend: str) -> None:
    metadata = sa.MetaData()
    sa.Table("auto", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("n", sa.Integer, sa.Identity()), sa.Column("v", sa.String(5)))
    cycle.generate(metadata, "serial")
    cycle.upgrade()
    assert cycle.diff() == []


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_sequence_in_another_schema_used_by_a_column(cycle: Cycle, backend: str) -> None:
    v1 = tickets()
    v2 = tickets(sequence=sa.Sequence("ticket_no", start=7, schema="ss_numbers"))
    roundtrip(cycle, v1, v2)
    cycle.run("INSERT INTO ticket (id) VALUES (1)")
    assert cycle.rows("SELECT number FROM ticket") == [(7,)]


def test_serial_key_moved_to_a_named_sequence_and_back(cycle: Cycle, backend: str) -> None:
    v1 = sa.MetaData()
    sa.Table("orders", v1, sa.Column("id", sa.Integer, primary_key=True), sa.Column("what", sa.String(20)))
    v2 = sa.MetaData()
    sa.Table("orders", v2, sa.Column("id", sa.Integer, sa.Sequence("order_ids", start=100), primary_key=True),
             sa.Column("what", sa.String(20)))

    def at_v2() -> None:
        cycle.run("INSERT INTO orders (what) VALUES ('b')")
        expected = 100 if has_sequences(cycle) else 2
        assert cycle.rows("SELECT id FROM orders WHERE what = 'b'") == [(expected,)]

    operations = roundtrip(cycle, v1, v2, at_v1=lambda: cycle.run("INSERT INTO orders (what) VALUES ('a')"),
                           at_v2=at_v2)
    assert kinds(operations) == ["CreateSequence", "AlterColumn"]
    cycle.downgrade()
    cycle.run("INSERT INTO orders (what) VALUES ('c')")  # the serial carries on after the largest id
    ids = [row[0] for row in cycle.rows("SELECT id FROM orders ORDER BY id")]
    assert len(set(ids)) == 3 and ids[-1] > ids[-2]
