"""Synthetic schemas and revision chains for the benchmark (SQLAlchemy only, no schemashift imports).

`build_metadata(n)` gives N tables of 12 mixed columns, a primary key, a foreign key
to an earlier table (the first table points at itself), two indexes and one unique
constraint. `build_metadata(n, changed=True)` is the next version of the same models:
10% of the tables gain a column, 5% lose an index, 5% change a column type.

`chain_steps(k)` describes a K-revision history where each revision adds one small
table or one column; `history_batches(n, r)` splits the N tables into R revisions
that together build version 1 of the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

#: Table names are t0000, t0001, ...; chain tables are c00000, ...
TABLE_PREFIX = "t"
CHAIN_PREFIX = "c"


def table_name(index: int) -> str:
    """The name of synthetic table number `index`."""
    return f"{TABLE_PREFIX}{index:04d}"


def gains_column(index: int) -> bool:
    """10% of the tables gain a column in the changed version."""
    return index % 10 == 1


def loses_index(index: int) -> bool:
    """5% of the tables lose an index in the changed version."""
    return index % 20 == 3


def changes_type(index: int) -> bool:
    """5% of the tables change a column type in the changed version."""
    return index % 20 == 7


def expected_changes(n: int) -> int:
    """How many differences the changed version has against version 1."""
    return sum(gains_column(i) + loses_index(i) + changes_type(i) for i in range(n))


def _table(metadata: sa.MetaData, index: int, changed: bool) -> sa.Table:
    name = table_name(index)
    parent = table_name(index // 2 if index else 0)
    qty_type: sa.types.TypeEngine = sa.BigInteger() if changed and changes_type(index) else sa.Integer()
    columns: list[sa.Column] = [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey(f"{parent}.id", name=f"fk_{name}_parent"), nullable=True),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("qty", qty_type, nullable=False, server_default=sa.text("0")),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("ratio", sa.Float),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime),
        sa.Column("born_on", sa.Date),
        sa.Column("notes", sa.Text),
        sa.Column("big", sa.BigInteger),
    ]
    if changed and gains_column(index):
        columns.append(sa.Column("extra", sa.String(20)))
    items: list[sa.schema.SchemaItem] = [
        sa.UniqueConstraint("code", name=f"uq_{name}_code"),
        sa.Index(f"ix_{name}_name", "name"),
    ]
    if not (changed and loses_index(index)):
        items.append(sa.Index(f"ix_{name}_created", "created_at", "qty"))
    return sa.Table(name, metadata, *columns, *items)


def build_metadata(n: int, *, changed: bool = False) -> sa.MetaData:
    """The N-table synthetic models, version 1 or (with `changed`) version 2."""
    metadata = sa.MetaData()
    for index in range(n):
        _table(metadata, index, changed)
    return metadata


def write_models_module(path: Path, n: int, *, changed: bool) -> str:
    """Write a models module at `path` that builds the synthetic MetaData; returns ``module:metadata``."""
    bench_dir = Path(__file__).resolve().parent
    path.write_text(
        '"""Synthetic benchmark models (generated)."""\n'
        "import sys\n"
        f"sys.path.insert(0, {str(bench_dir)!r})\n"
        "from synth import build_metadata\n\n"
        f"metadata = build_metadata({n}, changed={changed})\n",
        encoding="utf-8",
    )
    return f"{path.stem}:metadata"


@dataclass(frozen=True)
class ChainStep:
    """One revision of a chain: create table `table`, or add `column` to it."""

    index: int
    table: str
    column: str | None = None

    @property
    def creates_table(self) -> bool:
        """True for a create-table step."""
        return self.column is None


def chain_steps(k: int) -> list[ChainStep]:
    """K revisions: every fourth creates a two-column table, the others add a column to the latest one."""
    steps: list[ChainStep] = []
    current = ""
    for index in range(k):
        if index % 4 == 0:
            current = f"{CHAIN_PREFIX}{index:05d}"
            steps.append(ChainStep(index, current))
        else:
            steps.append(ChainStep(index, current, f"col_{index:05d}"))
    return steps


def history_batches(n: int, revisions: int) -> list[list[int]]:
    """The table numbers 0..N-1 split into at most `revisions` contiguous, ordered batches."""
    count = max(1, min(n, revisions))
    size, extra = divmod(n, count)
    batches: list[list[int]] = []
    start = 0
    for batch in range(count):
        end = start + size + (1 if batch < extra else 0)
        batches.append(list(range(start, end)))
        start = end
    return batches
