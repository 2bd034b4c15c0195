"""The lock-safe form of adding a column with a volatile default (`Dialect.batched_add_column`), with no database.

Safe mode uses it on tables above ``safe_rewrite_rows`` (tests/databases/test_safe_add_column.py runs it).
"""

from __future__ import annotations

import pytest

from schemashift import operations as ops
from schemashift.dialects import get_dialect
from schemashift.model.schema import Column, PrimaryKey, Schema, Table
from schemashift.model.types import Type

INT = Type("integer")
T = Table("t", (Column("id", INT, nullable=False), Column("a", INT)), primary_key=PrimaryKey(("id",)))
PAIR = Table("p", (Column("x", INT, nullable=False), Column("y", INT, nullable=False)),
             primary_key=PrimaryKey(("x", "y")))
BEFORE = Schema().with_table(T).with_table(PAIR)


def form_of(dialect: str, column: Column, table: str = "t") -> list[tuple[str, bool, bool]]:
    """(SQL, takes the lock timeout, runs as a batched backfill) of each statement; [] for no form."""
    op = ops.AddColumn(table, column)
    backend = get_dialect(dialect)
    form = backend.batched_add_column(op, BEFORE, "SS206")
    if form is None:
        return []
    assert form.large_only and form.refusal is None
    return [(item.sql.split(" /*")[0], item.locks, item.backfill is not None) for item in form.statements]


UUID_PG = Column("d", Type("uuid"), nullable=False, default="gen_random_uuid()")
UUID_MY = Column("d", Type("string", length=36), nullable=False, default="uuid()")


def test_postgresql_steps() -> None:
    """Nullable without the default, SET DEFAULT, the batched backfill, then NOT NULL over a validated CHECK."""
    steps = form_of("postgresql", UUID_PG)
    check = steps[3][0].split("CONSTRAINT ")[1].split(" ")[0]
    assert steps == [
        ("ALTER TABLE t ADD COLUMN d UUID", True, False),
        ("ALTER TABLE t ALTER COLUMN d SET DEFAULT gen_random_uuid()", True, False),
        ("UPDATE t SET d = gen_random_uuid() WHERE (d IS NULL)", False, True),
        (f"ALTER TABLE t ADD CONSTRAINT {check} CHECK (d IS NOT NULL) NOT VALID", True, False),
        (f"ALTER TABLE t VALIDATE CONSTRAINT {check}", False, False),
        ("ALTER TABLE t ALTER COLUMN d SET NOT NULL", True, False),
        (f"ALTER TABLE t DROP CONSTRAINT {check}", True, False),
    ]


def test_mariadb_steps() -> None:
    """INSTANT for the column and its default; NOT NULL by MODIFY (INSTANT, else the INPLACE, LOCK=NONE fallback)."""
    assert form_of("mysql", UUID_MY) == [
        ("ALTER TABLE t ADD COLUMN d VARCHAR(36), ALGORITHM=INSTANT", True, False),
        ("ALTER TABLE t MODIFY COLUMN d VARCHAR(36) DEFAULT (uuid()), ALGORITHM=INSTANT", True, False),
        ("UPDATE t SET d = uuid() WHERE (d IS NULL)", False, True),
        ("ALTER TABLE t MODIFY COLUMN d VARCHAR(36) NOT NULL DEFAULT (uuid()), ALGORITHM=INSTANT", True, False),
    ]


def test_nullable_column_has_no_not_null_step() -> None:
    assert [sql for sql, _, _ in form_of("postgresql", UUID_PG.evolve(nullable=True))] == [
        "ALTER TABLE t ADD COLUMN d UUID", "ALTER TABLE t ALTER COLUMN d SET DEFAULT gen_random_uuid()",
        "UPDATE t SET d = gen_random_uuid() WHERE (d IS NULL)"]


@pytest.mark.parametrize(("dialect", "default"), [
    ("postgresql", "'x'"), ("postgresql", "now()"), ("postgresql", "CURRENT_TIMESTAMP"),
    ("mysql", "'x'"), ("mysql", "now()"), ("mysql", "rand()"), ("sqlite", "(abs(random()))"),
])
def test_defaults_stored_once_keep_the_plain_form(dialect: str, default: str) -> None:
    """Constants and functions the database evaluates once for every existing row (PostgreSQL: STABLE ones;
    MariaDB: what ADD COLUMN takes INSTANT), and every default on SQLite: no steps."""
    assert form_of(dialect, Column("d", Type("string", length=36), nullable=False, default=default)) == []


def test_one_off_fill_keeps_the_plain_form() -> None:
    """A `fill` gives the existing rows a constant: ADD COLUMN with it as the default is instant."""
    op = ops.AddColumn("t", UUID_PG, fill="x")
    assert get_dialect("postgresql").batched_add_column(op, BEFORE, "SS206") is None


def test_no_single_column_key_is_a_refusal() -> None:
    """Batches need a single-column primary key: without one, the rewrite's code refuses it (large tables)."""
    op = ops.AddColumn("p", UUID_PG)
    form = get_dialect("postgresql").batched_add_column(op, BEFORE, "SS206")
    assert form is not None and form.refusal is not None and form.refusal[0] == "SS206"
    assert "single-column primary key" in form.refusal[1]
