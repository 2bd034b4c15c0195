"""The scenario corpus: small, distinct kinds of schema change, as data.

Each `Scenario` holds two versions of a models module (``v1`` and ``v2``, the
body after `HEADER`, which defines ``metadata`` and a declarative ``Base`` on it),
rows to insert at v1, the columns whose values must survive the upgrade to v2,
the backends it applies to, the `generate` flags it needs and the operation kinds
its v2 migration must (and must not) contain. `tests/databases/test_scenarios.py` runs
every scenario on every backend it applies to; `tests/databases/test_alembic_oracle.py`
and `tests/alembic_gap_report.py` compare what schemashift and Alembic see.
"""

from __future__ import annotations

import datetime
import decimal
import textwrap
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

ALL = frozenset({"sqlite", "postgresql", "mysql"})
PG = frozenset({"postgresql"})
MYSQL = frozenset({"mysql"})
NOT_MYSQL = frozenset({"sqlite", "postgresql"})

#: Prepended to every models source.
HEADER = '''\
import datetime
import decimal
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

metadata = sa.MetaData()


class Base(DeclarativeBase):
    metadata = metadata
'''

@dataclass(frozen=True)
class Scenario:
    """One kind of change, from models `v1` to models `v2`.

    `rows` maps a v1 table to rows inserted at v1 (in mapping order). `keep` lists
    ``"t.c"`` (same column at v2) or ``"t.c->u.d"``: the v1 column's values, read
    in primary-key order, must equal the v2 column's after the upgrade (and be
    back after the downgrade). `values` maps a v2 ``"t.c"`` to the values it must
    hold after the upgrade. `flags` are `generate` command-line flags. `expect`
    and `absent` name operation classes the v2 migration must (not) contain;
    `unchanged` says v2 produces no migration at all. `allow_data_loss` runs
    the downgrade with it (it narrows a key column, whose values backups cannot
    keep). `xfail` maps a backend (or ``"*"``) to the reason it is expected to fail.
    """

    name: str
    v1: str
    v2: str
    rows: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    keep: tuple[str, ...] = ()
    values: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    backends: frozenset[str] = ALL
    flags: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    unchanged: bool = False
    allow_data_loss: bool = False
    xfail: Mapping[str, str] = field(default_factory=dict)

    def source(self, version: str) -> str:
        """The full models module for ``"v1"`` or ``"v2"``."""
        body = self.v1 if version == "v1" else self.v2
        return HEADER + "\n" + textwrap.dedent(body)

    def xfail_reason(self, backend: str) -> str | None:
        """Why this scenario is expected to fail on `backend`, or None."""
        return self.xfail.get(backend) or self.xfail.get("*")

    def kept_columns(self) -> list[tuple[str, str, str, str]]:
        """``(v1 table, v1 column, v2 table, v2 column)`` for each `keep` entry."""
        pairs = []
        for entry in self.keep:
            old, _, new = entry.partition("->")
            new = new or old
            pairs.append((*old.split("."), *new.split(".")))  # type: ignore[arg-type]
        return pairs  # type: ignore[return-value]


# -- building blocks -------------------------------------------------------------

T = '''
t = sa.Table(
    "t", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
{extra})
'''


def t(*columns: str, table_args: str = "") -> str:
    """Table ``t`` (id, name) plus `columns` (each a ``sa.Column(...)`` or constraint source line)."""
    extra = "".join(f"    {c},\n" for c in (*columns, *([table_args] if table_args else [])))
    return T.format(extra=extra)


NAMES = ({"id": 1, "name": "ada"}, {"id": 2, "name": "alan"}, {"id": 3, "name": "grace"})

PARENT_CHILD = '''
parent = sa.Table("parent", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("label", sa.String(20)))
child = sa.Table(
    "child", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("parent_id", sa.Integer{fk}),
)
'''
FAMILY_ROWS = {
    "parent": ({"id": 1, "label": "p1"}, {"id": 2, "label": "p2"}),
    "child": ({"id": 10, "parent_id": 1}, {"id": 11, "parent_id": 2}, {"id": 12, "parent_id": None}),
}


def family(fk: str = "") -> str:
    """Tables ``parent`` and ``child`` (``child.parent_id``), `fk` appended to ``parent_id``'s arguments."""
    return PARENT_CHILD.format(fk=fk)


ITEMS = '''
item = sa.Table(
    "item", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sku", sa.String(30), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("shelf", sa.String(10)),
{extra})
'''
ITEM_ROWS = {"item": (
    {"id": 1, "sku": "a-1", "qty": 5, "shelf": "s1"},
    {"id": 2, "sku": "b-2", "qty": 7, "shelf": "s1"},
    {"id": 3, "sku": "c-3", "qty": 1, "shelf": "s2"},
)}


def items(*extra: str) -> str:
    """Table ``item`` (id, sku, qty, shelf) plus `extra` column or constraint lines."""
    return ITEMS.format(extra="".join(f"    {line},\n" for line in extra))


CYCLE = '''
team = sa.Table(
    "team", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("captain_id", sa.Integer, sa.ForeignKey("player.id", name="fk_team_captain")),
)
player = sa.Table(
    "player", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("team.id", name="fk_player_team")),
)
'''

DECORATED = '''
class Code(sa.types.TypeDecorator):
    """A string stored upper-case."""

    impl = sa.String({length})
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.upper() if value is not None else None


t = sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", {code_type}))
'''

VERSIONS = '''
ver = sa.Table("ver", metadata, sa.Column("doc", sa.Integer, primary_key=True, autoincrement=False),
               sa.Column("rev", sa.Integer, primary_key=True, autoincrement=False))
note = sa.Table("note", metadata, sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("doc", sa.Integer), sa.Column("rev", sa.Integer){fk})
'''

CONVENTION = '''
metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
'''

# -- the corpus ------------------------------------------------------------------

SCENARIOS: list[Scenario] = [
    # tables
    Scenario(
        "add_table", t(), t() + '\nu = sa.Table("u", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("label", sa.String(20), nullable=False))\n',
        rows={"t": NAMES}, keep=("t.name",), expect=("CreateTable",),
    ),
    Scenario(
        "drop_table", t() + '\nold = sa.Table("old", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("note", sa.Text))\n', t(),
        rows={"t": NAMES, "old": ({"id": 1, "note": "x"},)}, keep=("t.name",), expect=("DropTable",),
    ),
    Scenario(
        "add_table_declarative", t(),
        t() + '''
class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(120), unique=True)
    nickname: Mapped[str | None] = mapped_column(sa.String(30))
    t_id: Mapped[int | None] = mapped_column(sa.ForeignKey("t.id"))
''',
        rows={"t": NAMES}, keep=("t.name",), expect=("CreateTable",),
    ),
    Scenario(
        "add_table_with_everything", t(),
        t() + '''
full = sa.Table(
    "full", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(20), nullable=False, comment="business key"),
    sa.Column("qty", sa.Integer, nullable=False, server_default="0"),
    sa.Column("t_id", sa.Integer, sa.ForeignKey("t.id", ondelete="CASCADE")),
    sa.Column("created", sa.DateTime, server_default=sa.func.now()),
    sa.UniqueConstraint("code", name="uq_full_code"),
    sa.CheckConstraint("qty >= 0", name="ck_full_qty"),
    sa.Index("ix_full_created", "created"),
    comment="everything at once",
)
''',
        rows={"t": NAMES}, keep=("t.name",), expect=("CreateTable",),
    ),
    # columns
    Scenario(
        "add_column_nullable", t(), t('sa.Column("note", sa.String(100))'),
        rows={"t": NAMES}, keep=("t.name",), values={"t.note": (None, None, None)}, expect=("AddColumn",),
    ),
    Scenario(
        "add_column_not_null_with_default", t(),
        t('sa.Column("status", sa.String(10), nullable=False, server_default="new")'),
        rows={"t": NAMES}, keep=("t.name",), values={"t.status": ("new", "new", "new")}, expect=("AddColumn",),
    ),
    Scenario(
        "drop_column", t('sa.Column("legacy", sa.String(20))'), t(),
        rows={"t": tuple({**row, "legacy": "x"} for row in NAMES)}, keep=("t.name",), expect=("DropColumn",),
    ),
    Scenario(
        "drop_and_add_column_no_rename", t('sa.Column("old_note", sa.String(20))'),
        t('sa.Column("new_note", sa.String(40))'), flags=("--no-rename",),
        rows={"t": NAMES}, keep=("t.name",), expect=("AddColumn", "DropColumn"), absent=("RenameColumn",),
    ),
    # types
    Scenario(
        "string_length_widened", t(), t().replace("sa.String(50)", "sa.String(200)"),
        rows={"t": NAMES}, keep=("t.name",), expect=("AlterColumn",),
    ),
    Scenario(
        "string_length_narrowed", t(), t().replace("sa.String(50)", "sa.String(10)"),
        rows={"t": NAMES}, keep=("t.name",), expect=("AlterColumn",),
    ),
    Scenario(
        "numeric_precision_scale", t('sa.Column("price", sa.Numeric(8, 2))'),
        t('sa.Column("price", sa.Numeric(12, 4))'),
        rows={"t": ({"id": 1, "price": decimal.Decimal("12.34")}, {"id": 2, "price": decimal.Decimal("0.50")})}, keep=("t.price",),
        expect=("AlterColumn",),
    ),
    Scenario(
        "float_real_to_double", t('sa.Column("ratio", sa.REAL)'), t('sa.Column("ratio", sa.Double)'),
        rows={"t": ({"id": 1, "ratio": 1.5}, {"id": 2, "ratio": -0.25})}, keep=("t.ratio",),
        expect=("AlterColumn",),
    ),
    Scenario(
        "datetime_timezone_added", t('sa.Column("seen", sa.DateTime)'),
        t('sa.Column("seen", sa.DateTime(timezone=True))'),
        rows={"t": ({"id": 1, "seen": datetime.datetime(2024, 5, 1, 10, 0)},)}, expect=("AlterColumn",),
    ),
    Scenario(
        "datetime_timezone_removed", t('sa.Column("seen", sa.DateTime(timezone=True))'),
        t('sa.Column("seen", sa.DateTime)'), expect=("AlterColumn",),
    ),
    Scenario(
        "time_timezone_added", t('sa.Column("at", sa.Time)'), t('sa.Column("at", sa.Time(timezone=True))'),
        expect=("AlterColumn",),
    ),
    Scenario(
        "date_to_datetime", t('sa.Column("day", sa.Date)'), t('sa.Column("day", sa.DateTime)'),
        rows={"t": ({"id": 1, "day": datetime.date(2024, 5, 1)},)}, expect=("AlterColumn",),
    ),
    Scenario(
        "integer_to_bigint", t('sa.Column("n", sa.Integer)'), t('sa.Column("n", sa.BigInteger)'),
        rows={"t": ({"id": 1, "n": 2_000_000_000}, {"id": 2, "n": -5})}, keep=("t.n",), expect=("AlterColumn",),
    ),
    Scenario(
        "smallint_to_integer", t('sa.Column("n", sa.SmallInteger)'), t('sa.Column("n", sa.Integer)'),
        rows={"t": ({"id": 1, "n": 32000}, {"id": 2, "n": None})}, keep=("t.n",), expect=("AlterColumn",),
    ),
    Scenario(
        "string_to_text", t(), t().replace("sa.String(50)", "sa.Text"),
        rows={"t": NAMES}, keep=("t.name",), expect=("AlterColumn",),
    ),
    Scenario(
        "text_to_string", t('sa.Column("body", sa.Text)'), t('sa.Column("body", sa.String(100))'),
        rows={"t": ({"id": 1, "body": "short"},)}, keep=("t.body",), expect=("AlterColumn",),
    ),
    Scenario(
        "integer_to_boolean", t('sa.Column("flag", sa.Integer)'), t('sa.Column("flag", sa.Boolean)'),
        rows={"t": ({"id": 1, "flag": 1}, {"id": 2, "flag": 0})}, keep=("t.flag",), expect=("AlterColumn",),
    ),
    Scenario(
        "boolean_column_added", t(),
        t('sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false())'),
        rows={"t": NAMES}, values={"t.active": (False, False, False)}, expect=("AddColumn",),
    ),
    Scenario(
        "enum_value_appended", t('sa.Column("state", sa.Enum("draft", "live", name="state_t"))'),
        t('sa.Column("state", sa.Enum("draft", "live", "gone", name="state_t"))'),
        rows={"t": ({"id": 1, "state": "draft"}, {"id": 2, "state": "live"})}, keep=("t.state",),
        expect=("AlterColumn",),
    ),
    Scenario(
        "enum_value_inserted_before", t('sa.Column("level", sa.Enum("mid", "high", name="level_t"))'),
        t('sa.Column("level", sa.Enum("low", "mid", "high", name="level_t"))'),
        rows={"t": ({"id": 1, "level": "high"}, {"id": 2, "level": "mid"})}, keep=("t.level",),
        expect=("AlterColumn",),
    ),
    Scenario(
        "enum_value_inserted_between", t('sa.Column("size", sa.Enum("s", "l", name="size_t"))'),
        t('sa.Column("size", sa.Enum("s", "m", "l", name="size_t"))'),
        rows={"t": ({"id": 1, "size": "s"}, {"id": 2, "size": "l"})}, keep=("t.size",), expect=("AlterColumn",),
    ),
    Scenario(
        "enum_value_removed", t('sa.Column("state", sa.Enum("new", "old", "gone", name="state_r"))'),
        t('sa.Column("state", sa.Enum("new", "old", name="state_r"))'),
        rows={"t": ({"id": 1, "state": "new"}, {"id": 2, "state": "old"})}, keep=("t.state",),
        expect=("AlterColumn",),
    ),
    Scenario(
        "enum_value_renamed", t('sa.Column("color", sa.Enum("red", "grn", name="color_t"))'),
        t('sa.Column("color", sa.Enum("red", "green", name="color_t"))'),
        rows={"t": ({"id": 1, "color": "red"},)}, keep=("t.color",), expect=("AlterColumn",),
    ),
    Scenario(
        "enum_shared_by_two_tables",
        t('sa.Column("kind", sa.Enum("a", "b", name="kind_t"))')
        + '\nu = sa.Table("u", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("kind", sa.Enum("a", "b", name="kind_t")))\n',
        t('sa.Column("kind", sa.Enum("a", "b", "c", name="kind_t"))')
        + '\nu = sa.Table("u", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("kind", sa.Enum("a", "b", "c", name="kind_t")))\n',
        rows={"t": ({"id": 1, "kind": "a"},), "u": ({"id": 1, "kind": "b"},)}, keep=("t.kind", "u.kind"),
        expect=("AlterColumn",),
    ),
    Scenario(
        "enum_column_added", t(), t('sa.Column("mood", sa.Enum("ok", "meh", name="mood_t"))'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AddColumn",),
    ),
    Scenario(
        "enum_column_dropped", t('sa.Column("mood", sa.Enum("ok", "meh", name="mood_d"))'), t(),
        rows={"t": ({"id": 1, "name": "x", "mood": "ok"},)}, keep=("t.name",), expect=("DropColumn",),
    ),
    Scenario(
        "enum_non_native_value_added", t('sa.Column("tier", sa.Enum("free", "pro", native_enum=False))'),
        t('sa.Column("tier", sa.Enum("free", "pro", "enterprise", native_enum=False))'),
        rows={"t": ({"id": 1, "tier": "pro"},)}, keep=("t.tier",), expect=("AlterColumn",),
    ),
    Scenario(
        "string_to_enum", t('sa.Column("grade", sa.String(5))'),
        t('sa.Column("grade", sa.Enum("x", "y", name="grade_t"))'),
        rows={"t": ({"id": 1, "grade": "x"}, {"id": 2, "grade": "y"})}, keep=("t.grade",), expect=("AlterColumn",),
    ),
    Scenario(
        "json_column_added", t(), t('sa.Column("doc", sa.JSON)'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AddColumn",),
    ),
    Scenario(
        "text_to_json", t('sa.Column("doc", sa.Text)'), t('sa.Column("doc", sa.JSON)'),
        rows={"t": ({"id": 1, "doc": '{"a": 1}'},)}, values={"t.doc": ({"a": 1},)}, expect=("AlterColumn",),
    ),
    Scenario(
        "json_to_jsonb", t('sa.Column("doc", sa.JSON)'), t('sa.Column("doc", pg.JSONB)'),
        rows={"t": ({"id": 1, "doc": {"a": [1, 2]}},)}, keep=("t.doc",), backends=PG, expect=("AlterColumn",),
    ),
    Scenario(
        "uuid_column_added", t(), t('sa.Column("ref", sa.Uuid)'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AddColumn",),
    ),
    Scenario(
        "string_to_uuid", t('sa.Column("ref", sa.String(36))'), t('sa.Column("ref", sa.Uuid)'),
        rows={"t": ({"id": 1, "ref": "12345678-1234-5678-1234-567812345678"},)}, backends=PG,
        values={"t.ref": (uuid.UUID("12345678-1234-5678-1234-567812345678"),)}, expect=("AlterColumn",),
    ),
    Scenario(
        "large_binary_column_added", t(), t('sa.Column("blob", sa.LargeBinary)'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AddColumn",),
    ),
    Scenario(
        "string_to_large_binary", t('sa.Column("raw", sa.String(20))'), t('sa.Column("raw", sa.LargeBinary)'),
        rows={"t": ({"id": 1, "raw": "abc"},)}, expect=("AlterColumn",),
    ),
    Scenario(
        "interval_column_added", t(), t('sa.Column("span", sa.Interval)'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AddColumn",),
    ),
    Scenario(
        "array_column_added", t(), t('sa.Column("tags", pg.ARRAY(sa.String(20)))'),
        rows={"t": NAMES}, keep=("t.name",), backends=PG, expect=("AddColumn",),
    ),
    Scenario(
        "array_item_type_widened", t('sa.Column("nums", pg.ARRAY(sa.Integer))'),
        t('sa.Column("nums", pg.ARRAY(sa.BigInteger))'),
        rows={"t": ({"id": 1, "nums": [1, 2, 3]},)}, keep=("t.nums",), backends=PG, expect=("AlterColumn",),
    ),
    Scenario(
        "type_decorator_impl_changed", DECORATED.format(length=20, code_type="Code"),
        DECORATED.format(length=80, code_type="Code"),
        rows={"t": ({"id": 1, "code": "abc"},)}, keep=("t.code",), expect=("AlterColumn",),
    ),
    Scenario(
        "type_decorator_same_impl", DECORATED.format(length=40, code_type="sa.String(40)"),
        DECORATED.format(length=40, code_type="Code"),
        rows={"t": ({"id": 1, "code": "ABC"},)}, keep=("t.code",), unchanged=True,
    ),
    Scenario(
        "unsigned_integer", t('sa.Column("hits", sa.Integer)'), t('sa.Column("hits", mysql.INTEGER(unsigned=True))'),
        rows={"t": ({"id": 1, "hits": 7},)}, keep=("t.hits",), backends=MYSQL, expect=("AlterColumn",),
    ),
    Scenario(
        "collation_postgresql", t(), t().replace("sa.String(50)", 'sa.String(50, collation="C")'),
        rows={"t": NAMES}, keep=("t.name",), backends=PG, expect=("AlterColumn",),
    ),
    Scenario(
        "collation_mysql", t(), t().replace("sa.String(50)", 'sa.String(50, collation="utf8mb4_bin")'),
        rows={"t": NAMES}, keep=("t.name",), backends=MYSQL, expect=("AlterColumn",),
    ),
    # nullability
    Scenario(
        "nullable_to_not_null", t(), t().replace('sa.String(50))', 'sa.String(50), nullable=False)'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AlterColumn",),
    ),
    Scenario(
        "not_null_to_nullable", t().replace('sa.String(50))', 'sa.String(50), nullable=False)'), t(),
        rows={"t": NAMES}, keep=("t.name",), expect=("AlterColumn",),
    ),
    Scenario(
        "not_null_fills_nulls_from_default", t('sa.Column("score", sa.Integer)'),
        t('sa.Column("score", sa.Integer, nullable=False, server_default="0")'),
        rows={"t": ({"id": 1, "score": 4}, {"id": 2, "score": None})}, values={"t.score": (4, 0)},
        expect=("AlterColumn",),
    ),
    # server defaults
    Scenario(
        "default_literal_added", t(), t().replace('sa.String(50))', 'sa.String(50), server_default="anon")'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AlterColumn",),
    ),
    Scenario(
        "default_number_added", t('sa.Column("qty", sa.Integer)'),
        t('sa.Column("qty", sa.Integer, server_default="1")'), expect=("AlterColumn",),
    ),
    Scenario(
        "default_numeric_literal", t('sa.Column("rate", sa.Numeric(6, 2))'),
        t('sa.Column("rate", sa.Numeric(6, 2), server_default="1.50")'), expect=("AlterColumn",),
    ),
    Scenario(
        "default_now_added", t('sa.Column("created", sa.DateTime)'),
        t('sa.Column("created", sa.DateTime, server_default=sa.func.now())'), expect=("AlterColumn",),
    ),
    Scenario(
        "default_current_timestamp_added", t('sa.Column("stamp", sa.DateTime(timezone=True))'),
        t('sa.Column("stamp", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"))'),
        expect=("AlterColumn",),
    ),
    Scenario(
        "default_removed", t('sa.Column("code", sa.String(10), server_default="x")'),
        t('sa.Column("code", sa.String(10))'), rows={"t": ({"id": 1},)}, values={"t.code": ("x",)},
        expect=("AlterColumn",),
    ),
    Scenario(
        "default_changed", t('sa.Column("code", sa.String(10), server_default="a")'),
        t('sa.Column("code", sa.String(10), server_default="b")'), expect=("AlterColumn",),
    ),
    Scenario(
        "default_boolean_flipped", t('sa.Column("on", sa.Boolean, server_default=sa.true())'),
        t('sa.Column("on", sa.Boolean, server_default=sa.false())'), expect=("AlterColumn",),
    ),
    Scenario(
        "default_date_literal", t('sa.Column("since", sa.Date)'),
        t('sa.Column("since", sa.Date, server_default="2020-01-01")'), expect=("AlterColumn",),
    ),
    # comments
    Scenario(
        "column_comment_added", t(), t().replace('sa.String(50))', 'sa.String(50), comment="display name")'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AlterColumn",),
    ),
    Scenario(
        "column_comment_changed", t().replace('sa.String(50))', 'sa.String(50), comment="old")'),
        t().replace('sa.String(50))', 'sa.String(50), comment="new words")'), expect=("AlterColumn",),
    ),
    Scenario(
        "table_comment_added", t(), t(table_args='comment="people we know"'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AlterTableComment",),
    ),
    Scenario(
        "table_comment_removed", t(table_args='comment="to go"'), t(), expect=("AlterTableComment",),
    ),
    # autoincrement, identity, computed
    Scenario(
        "autoincrement_removed", t(), t().replace("primary_key=True)", "primary_key=True, autoincrement=False)"),
        rows={"t": NAMES}, keep=("t.name",), backends=frozenset({"postgresql", "mysql"}), expect=("AlterColumn",),
    ),
    Scenario(
        "autoincrement_added",
        t().replace("primary_key=True)", "primary_key=True, autoincrement=False)"), t(),
        rows={"t": NAMES}, keep=("t.name",), backends=frozenset({"postgresql", "mysql"}), expect=("AlterColumn",),
    ),
    Scenario(
        "identity_added", t().replace("primary_key=True)", "primary_key=True, autoincrement=False)"),
        t().replace("sa.Integer, primary_key=True)", "sa.Integer, sa.Identity(), primary_key=True)"),
        rows={"t": NAMES}, keep=("t.name",), backends=PG, expect=("AlterColumn",),
    ),
    Scenario(
        "identity_options_changed",
        t().replace("sa.Integer, primary_key=True)", "sa.Integer, sa.Identity(), primary_key=True)"),
        t().replace("sa.Integer, primary_key=True)", "sa.Integer, sa.Identity(start=100, increment=5), primary_key=True)"),
        rows={"t": NAMES}, keep=("t.name",), backends=PG, expect=("AlterColumn",),
    ),
    Scenario(
        "computed_column_added", t('sa.Column("qty", sa.Integer)'),
        t('sa.Column("qty", sa.Integer)', 'sa.Column("double_qty", sa.Integer, sa.Computed("qty * 2"))'),
        rows={"t": ({"id": 1, "qty": 3},)}, keep=("t.qty",), values={"t.double_qty": (6,)}, expect=("AddColumn",),
    ),
    Scenario(
        "computed_expression_changed",
        t('sa.Column("qty", sa.Integer)', 'sa.Column("total", sa.Integer, sa.Computed("qty * 2", persisted=True))'),
        t('sa.Column("qty", sa.Integer)', 'sa.Column("total", sa.Integer, sa.Computed("qty * 3", persisted=True))'),
        rows={"t": ({"id": 1, "qty": 3},)}, keep=("t.qty",), values={"t.total": (9,)}, expect=("AlterColumn",),
    ),
    # primary keys
    Scenario(
        "primary_key_widened",
        t('sa.Column("code", sa.String(10), nullable=False)'),
        t('sa.Column("code", sa.String(10), primary_key=True)').replace(
            "sa.Integer, primary_key=True)", "sa.Integer, primary_key=True, autoincrement=False)"),
        rows={"t": ({"id": 1, "name": "a", "code": "x"}, {"id": 2, "name": "b", "code": "y"})}, keep=("t.name",),
        expect=("AddConstraint", "DropConstraint"),
    ),
    Scenario(
        "primary_key_moved",
        '''
        k = sa.Table("k", metadata, sa.Column("a", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("b", sa.Integer, nullable=False))
        ''',
        '''
        k = sa.Table("k", metadata, sa.Column("a", sa.Integer, nullable=False),
                     sa.Column("b", sa.Integer, primary_key=True, autoincrement=False))
        ''',
        rows={"k": ({"a": 1, "b": 10}, {"a": 2, "b": 20})}, keep=("k.a",), expect=("AddConstraint", "DropConstraint"),
    ),
    # unique constraints
    Scenario(
        "unique_added", items(), items('sa.UniqueConstraint("sku", name="uq_item_sku")'),
        rows=ITEM_ROWS, keep=("item.sku",), expect=("AddConstraint",),
    ),
    Scenario(
        "unique_dropped", items('sa.UniqueConstraint("sku", name="uq_item_sku")'), items(),
        rows=ITEM_ROWS, keep=("item.sku",), expect=("DropConstraint",),
    ),
    Scenario(
        "unique_columns_changed_same_name", items('sa.UniqueConstraint("sku", name="uq_item_key")'),
        items('sa.UniqueConstraint("sku", "shelf", name="uq_item_key")'),
        rows=ITEM_ROWS, keep=("item.sku",), expect=("AddConstraint", "DropConstraint"),
    ),
    Scenario(
        "unique_unnamed_column_flag", t(), t().replace('sa.String(50))', 'sa.String(50), unique=True)'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AddConstraint",),
    ),
    # foreign keys
    Scenario(
        "foreign_key_added", family(), family(', sa.ForeignKey("parent.id", name="fk_child_parent")'),
        rows=FAMILY_ROWS, keep=("child.parent_id",), expect=("AddConstraint",),
    ),
    Scenario(
        "foreign_key_dropped", family(', sa.ForeignKey("parent.id", name="fk_child_parent")'), family(),
        rows=FAMILY_ROWS, keep=("child.parent_id",), expect=("DropConstraint",),
    ),
    Scenario(
        "foreign_key_unnamed_added", family(), family(', sa.ForeignKey("parent.id")'),
        rows=FAMILY_ROWS, keep=("child.parent_id",), expect=("AddConstraint",),
    ),
    Scenario(
        "foreign_key_ondelete_changed", family(', sa.ForeignKey("parent.id", name="fk_child_parent")'),
        family(', sa.ForeignKey("parent.id", name="fk_child_parent", ondelete="CASCADE")'),
        rows=FAMILY_ROWS, keep=("child.parent_id",), expect=("AddConstraint", "DropConstraint"),
    ),
    Scenario(
        "foreign_key_onupdate_changed", family(', sa.ForeignKey("parent.id", name="fk_child_parent")'),
        family(', sa.ForeignKey("parent.id", name="fk_child_parent", onupdate="CASCADE")'),
        rows=FAMILY_ROWS, keep=("child.parent_id",), expect=("AddConstraint", "DropConstraint"),
    ),
    Scenario(
        "foreign_key_set_null_to_restrict",
        family(', sa.ForeignKey("parent.id", name="fk_child_parent", ondelete="SET NULL")'),
        family(', sa.ForeignKey("parent.id", name="fk_child_parent", ondelete="RESTRICT")'),
        rows=FAMILY_ROWS, keep=("child.parent_id",), backends=NOT_MYSQL, expect=("AddConstraint", "DropConstraint"),
    ),
    Scenario(
        "foreign_key_deferrable", family(', sa.ForeignKey("parent.id", name="fk_child_parent")'),
        family(', sa.ForeignKey("parent.id", name="fk_child_parent", deferrable=True, initially="DEFERRED")'),
        rows=FAMILY_ROWS, keep=("child.parent_id",), backends=PG, expect=("AddConstraint", "DropConstraint"),
    ),
    Scenario(
        "foreign_key_self_reference",
        t('sa.Column("boss_id", sa.Integer)'),
        t('sa.Column("boss_id", sa.Integer, sa.ForeignKey("t.id", name="fk_t_boss"))'),
        rows={"t": ({"id": 1, "name": "a"}, {"id": 2, "name": "b", "boss_id": 1})}, keep=("t.boss_id",),
        expect=("AddConstraint",),
    ),
    # check constraints
    Scenario(
        "check_added", items(), items('sa.CheckConstraint("qty > 0", name="ck_item_qty")'),
        rows=ITEM_ROWS, keep=("item.qty",), expect=("AddConstraint",),
    ),
    Scenario(
        "check_dropped", items('sa.CheckConstraint("qty > 0", name="ck_item_qty")'), items(),
        rows=ITEM_ROWS, keep=("item.qty",), expect=("DropConstraint",),
    ),
    Scenario(
        "check_expression_changed_same_name", items('sa.CheckConstraint("qty > 0", name="ck_item_qty")'),
        items('sa.CheckConstraint("qty >= 0 AND qty < 1000", name="ck_item_qty")'),
        rows=ITEM_ROWS, keep=("item.qty",), expect=("AddConstraint", "DropConstraint"),
    ),
    # indexes
    Scenario(
        "index_added", items(), items('sa.Index("ix_item_shelf", "shelf")'),
        rows=ITEM_ROWS, keep=("item.shelf",), expect=("CreateIndex",),
    ),
    Scenario(
        "index_dropped", items('sa.Index("ix_item_shelf", "shelf")'), items(),
        rows=ITEM_ROWS, keep=("item.shelf",), expect=("DropIndex",),
    ),
    Scenario(
        "index_multi_column", items(), items('sa.Index("ix_item_shelf_sku", "shelf", "sku")'),
        rows=ITEM_ROWS, keep=("item.sku",), expect=("CreateIndex",),
    ),
    Scenario(
        "index_unique_added", items(), items('sa.Index("ux_item_sku", "sku", unique=True)'),
        rows=ITEM_ROWS, keep=("item.sku",), expect=("CreateIndex",),
    ),
    Scenario(
        "index_made_unique", items('sa.Index("ix_item_sku", "sku")'), items('sa.Index("ix_item_sku", "sku", unique=True)'),
        rows=ITEM_ROWS, keep=("item.sku",), expect=("CreateIndex", "DropIndex"),
    ),
    Scenario(
        "index_columns_changed_same_name", items('sa.Index("ix_item_pos", "shelf")'),
        items('sa.Index("ix_item_pos", "shelf", "qty")'),
        rows=ITEM_ROWS, keep=("item.shelf",), expect=("CreateIndex", "DropIndex"),
    ),
    Scenario(
        "index_expression", items(), items('sa.Index("ix_item_lower_sku", sa.func.lower(sa.text("sku")))'),
        rows=ITEM_ROWS, keep=("item.sku",), backends=NOT_MYSQL, expect=("CreateIndex",),
    ),
    Scenario(
        "index_partial", items(),
        items('sa.Index("ix_item_big", "qty", postgresql_where=sa.text("qty > 5"), sqlite_where=sa.text("qty > 5"))'),
        rows=ITEM_ROWS, keep=("item.qty",), backends=NOT_MYSQL, expect=("CreateIndex",),
    ),
    Scenario(
        "index_column_flag", t(), t().replace('sa.String(50))', 'sa.String(50), index=True)'),
        rows={"t": NAMES}, keep=("t.name",), expect=("CreateIndex",),
    ),
    # naming conventions
    Scenario(
        "naming_convention_constraints", CONVENTION + family(),
        CONVENTION + family(', sa.ForeignKey("parent.id"), index=True') + '''
extra = sa.Table(
    "extra", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(10), unique=True),
    sa.Column("qty", sa.Integer),
    sa.CheckConstraint("qty > 0", name="positive"),
)
''',
        rows=FAMILY_ROWS, keep=("child.parent_id",), expect=("AddConstraint", "CreateIndex", "CreateTable"),
    ),
    Scenario(
        "naming_convention_check_changed",
        CONVENTION + items('sa.CheckConstraint("qty > 0", name="qty_min")'),
        CONVENTION + items('sa.CheckConstraint("qty >= 1", name="qty_min")'),
        rows=ITEM_ROWS, keep=("item.qty",), expect=("AddConstraint", "DropConstraint"),
    ),
    # renames
    Scenario(
        "rename_table_renamed_from", t(),
        T.format(extra='    info={"renamed_from": "t"},\n').replace('"t", metadata', '"person", metadata'),
        rows={"t": NAMES}, keep=("t.name->person.name",), expect=("RenameTable",), absent=("DropTable",),
    ),
    Scenario(
        "rename_table_flag", t(), T.format(extra="").replace('"t", metadata', '"human", metadata'),
        flags=("--rename-table", "t:human"),
        rows={"t": NAMES}, keep=("t.name->human.name",), expect=("RenameTable",), absent=("DropTable",),
    ),
    Scenario(
        "rename_column_renamed_from", t(),
        t().replace('sa.Column("name", sa.String(50))', 'sa.Column("full_name", sa.String(50), info={"renamed_from": "name"})'),
        rows={"t": NAMES}, keep=("t.name->t.full_name",), expect=("RenameColumn",), absent=("DropColumn",),
    ),
    Scenario(
        "rename_column_flag", t(), t().replace('"name"', '"label"'), flags=("--rename-column", "t.name:label"),
        rows={"t": NAMES}, keep=("t.name->t.label",), expect=("RenameColumn",), absent=("DropColumn",),
    ),
    Scenario(
        "rename_column_indexed_and_referenced",
        family(', sa.ForeignKey("parent.id", name="fk_child_parent")')
        + '\nsa.Index("ix_child_parent", child.c.parent_id)\n',
        family(', sa.ForeignKey("parent.id", name="fk_child_parent")').replace('"parent_id"', '"owner_id"')
        + '\nsa.Index("ix_child_parent", child.c.owner_id)\n',
        flags=("--rename-column", "child.parent_id:owner_id"), rows=FAMILY_ROWS,
        keep=("child.parent_id->child.owner_id",), expect=("RenameColumn",), absent=("DropColumn", "DropIndex"),
    ),
    Scenario(
        "rename_column_with_type_change", t(),
        t().replace('sa.Column("name", sa.String(50))',
                    'sa.Column("title", sa.String(120), info={"renamed_from": "name"})'),
        rows={"t": NAMES}, keep=("t.name->t.title",), expect=("RenameColumn", "AlterColumn"), absent=("DropColumn",),
    ),
    Scenario(
        "rename_index", items('sa.Index("ix_item_shelf", "shelf")'), items('sa.Index("ix_item_shelf_v2", "shelf")'),
        rows=ITEM_ROWS, keep=("item.shelf",), expect=("RenameIndex",), absent=("DropIndex",),
    ),
    Scenario(
        "rename_table_referenced", family(', sa.ForeignKey("parent.id", name="fk_child_parent")'),
        family(', sa.ForeignKey("folk.id", name="fk_child_parent")').replace('"parent", metadata', '"folk", metadata'),
        flags=("--rename-table", "parent:folk"), rows=FAMILY_ROWS,
        keep=("parent.label->folk.label", "child.parent_id"), expect=("RenameTable",), absent=("DropTable",),
    ),
    # dependency order
    Scenario(
        "create_parent_and_child", t(), t() + family(', sa.ForeignKey("parent.id")'),
        rows={"t": NAMES}, keep=("t.name",), expect=("CreateTable",),
    ),
    Scenario(
        "create_cycle", t(), t() + CYCLE, rows={"t": NAMES}, keep=("t.name",), expect=("CreateTable", "AddConstraint"),
    ),
    Scenario(
        "drop_parent_and_child", t() + family(', sa.ForeignKey("parent.id")'), t(),
        rows={"t": NAMES, **FAMILY_ROWS}, keep=("t.name",), expect=("DropTable",),
    ),
    Scenario(
        "drop_cycle", t() + CYCLE, t(), rows={"t": NAMES}, keep=("t.name",), expect=("DropTable", "DropConstraint"),
    ),
    # PostgreSQL schemas and sequences
    Scenario(
        "schema_table_added", t(),
        t() + '\naudit = sa.Table("audit", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("what", sa.Text), schema="ss_audit")\n',
        rows={"t": NAMES}, keep=("t.name",), backends=PG, expect=("CreateTable",),
    ),
    Scenario(
        "schema_cross_schema_foreign_key",
        t() + '\nlog = sa.Table("log", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("t_id", sa.Integer), schema="ss_log")\n',
        t() + '\nlog = sa.Table("log", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("t_id", sa.Integer, sa.ForeignKey("t.id", name="fk_log_t")), schema="ss_log")\n',
        rows={"t": NAMES}, keep=("t.name",), backends=PG, expect=("AddConstraint",),
    ),
    Scenario(
        "sequence_added", t(), t() + '\nticket_seq = sa.Sequence("ticket_seq", start=10, metadata=metadata)\n',
        rows={"t": NAMES}, keep=("t.name",), expect=("CreateSequence",),
    ),
    # harder cases: quoting, dependencies, things that move together
    Scenario(
        "check_unnamed_added", items(), items('sa.CheckConstraint("qty > 0")'),
        rows=ITEM_ROWS, keep=("item.qty",), expect=("AddConstraint",),
    ),
    Scenario(
        "type_change_keeps_default",
        t('sa.Column("n", sa.Integer, server_default="0")', 'sa.Column("code", sa.String(10), server_default="x")'),
        t('sa.Column("n", sa.BigInteger, server_default="0")', 'sa.Column("code", sa.String(20), server_default="x")'),
        rows={"t": ({"id": 1, "n": 5, "code": "abc"},)}, keep=("t.n", "t.code"), expect=("AlterColumn",),
    ),
    Scenario(
        "rename_column_used_by_check", items('sa.CheckConstraint("qty > 0", name="ck_item_qty")'),
        items('sa.CheckConstraint("amount > 0", name="ck_item_qty")').replace('"qty"', '"amount"'),
        flags=("--rename-column", "item.qty:amount"), rows=ITEM_ROWS, keep=("item.qty->item.amount",),
        expect=("RenameColumn",), absent=("DropColumn",),
    ),
    Scenario(
        "rename_table_with_generated_index_names",
        t('sa.Column("email", sa.String(80), unique=True)', 'sa.Column("city", sa.String(30), index=True)'),
        t('sa.Column("email", sa.String(80), unique=True)', 'sa.Column("city", sa.String(30), index=True)',
          table_args='info={"renamed_from": "t"}').replace('"t", metadata', '"member", metadata'),
        rows={"t": ({"id": 1, "email": "a@x", "city": "Oslo"},)}, keep=("t.email->member.email",),
        expect=("RenameTable", "RenameIndex"), absent=("DropTable",),
    ),
    Scenario(
        "rename_primary_key_column", t(), t().replace('sa.Column("id"', 'sa.Column("pk"'),
        flags=("--rename-column", "t.id:pk"), rows={"t": NAMES}, keep=("t.id->t.pk", "t.name"),
        expect=("RenameColumn",), absent=("DropColumn",),
    ),
    Scenario(
        "rename_column_next_to_new_column", t(),
        t('sa.Column("nickname", sa.String(50))').replace('sa.Column("name"', 'sa.Column("full_name"'),
        flags=("--rename-column", "t.name:full_name"), rows={"t": NAMES}, keep=("t.name->t.full_name",),
        expect=("RenameColumn", "AddColumn"), absent=("DropColumn",),
    ),
    Scenario(
        "drop_table_with_enum", t() + '\nu = sa.Table("u", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("mood", sa.Enum("up", "down", name="mood_u")))\n', t(),
        rows={"t": NAMES, "u": ({"id": 1, "mood": "up"},)}, keep=("t.name",), expect=("DropTable",),
    ),
    Scenario(
        "enum_reused_by_new_table", t('sa.Column("tone", sa.Enum("warm", "cold", name="tone_t"))'),
        t('sa.Column("tone", sa.Enum("warm", "cold", name="tone_t"))')
        + '\nu = sa.Table("u", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("tone", sa.Enum("warm", "cold", name="tone_t")))\n',
        rows={"t": ({"id": 1, "tone": "warm"},)}, keep=("t.tone",), expect=("CreateTable",),
    ),
    Scenario(
        "reserved_word_names",
        '\norder = sa.Table("order", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("group", sa.String(20)))\n',
        '\norder = sa.Table("order", metadata, sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("group", sa.String(40), nullable=False, server_default="none"), sa.Column("select", sa.Integer), '
        'sa.Index("ix_order_group", "group"), sa.CheckConstraint(sa.column("select") > 0, name="ck_order_select"))\n',
        rows={"order": ({"id": 1, "group": "g"},)}, keep=("order.group",), expect=("AlterColumn", "AddColumn"),
    ),
    Scenario(
        "mixed_case_names",
        '\nco = sa.Table("CustomerOrder", metadata, sa.Column("OrderId", sa.Integer, primary_key=True), '
        'sa.Column("Total", sa.Numeric(10, 2)))\n',
        '\nco = sa.Table("CustomerOrder", metadata, sa.Column("OrderId", sa.Integer, primary_key=True), '
        'sa.Column("Total", sa.Numeric(12, 2), comment="Gross"), sa.Column("NetTotal", sa.Numeric(12, 2)), '
        'sa.Index("IX_CustomerOrder_Total", "Total"), sa.UniqueConstraint("NetTotal", name="UQ_CustomerOrder_Net"))\n',
        rows={"CustomerOrder": ({"OrderId": 1, "Total": decimal.Decimal("9.99")},)}, keep=("CustomerOrder.Total",),
        expect=("AlterColumn", "AddColumn", "CreateIndex", "AddConstraint"),
    ),
    Scenario(
        "referenced_key_widened", family(', sa.ForeignKey("parent.id", name="fk_child_parent")'),
        family(', sa.ForeignKey("parent.id", name="fk_child_parent")')
        .replace('sa.Column("id", sa.Integer', 'sa.Column("id", sa.BigInteger')
        .replace('"parent_id", sa.Integer', '"parent_id", sa.BigInteger'),
        rows=FAMILY_ROWS, keep=("child.parent_id", "parent.label"), expect=("AlterColumn", "DropConstraint"),
        allow_data_loss=True,
    ),
    Scenario(
        "foreign_key_target_changed",
        family(', sa.ForeignKey("parent.id", name="fk_child_owner")')
        + '\nother = sa.Table("other", metadata, sa.Column("id", sa.Integer, primary_key=True))\n',
        family(', sa.ForeignKey("other.id", name="fk_child_owner")')
        + '\nother = sa.Table("other", metadata, sa.Column("id", sa.Integer, primary_key=True))\n',
        rows={"parent": FAMILY_ROWS["parent"], "other": ({"id": 1}, {"id": 2}), "child": FAMILY_ROWS["child"]},
        keep=("child.parent_id",), expect=("AddConstraint", "DropConstraint"),
    ),
    Scenario(
        "composite_foreign_key_added", VERSIONS.format(fk=""),
        VERSIONS.format(fk=', sa.ForeignKeyConstraint(["doc", "rev"], ["ver.doc", "ver.rev"], name="fk_note_ver")'),
        rows={"ver": ({"doc": 1, "rev": 1},), "note": ({"id": 1, "doc": 1, "rev": 1},)}, keep=("note.rev",),
        expect=("AddConstraint",),
    ),
    Scenario(
        "drop_column_in_multi_column_index", items('sa.Index("ix_item_place", "shelf", "sku")'),
        items().replace('    sa.Column("shelf", sa.String(10)),\n', ""),
        rows=ITEM_ROWS, keep=("item.sku",), expect=("DropColumn",),
    ),
    Scenario(
        "default_with_quote_and_comment", t(),
        t().replace('sa.String(50))', 'sa.String(50), server_default="it\'s", comment="o\'clock")'),
        rows={"t": NAMES}, keep=("t.name",), expect=("AlterColumn",),
    ),
    Scenario(
        "default_added_to_not_null", t('sa.Column("qty", sa.Integer, nullable=False)'),
        t('sa.Column("qty", sa.Integer, nullable=False, server_default="7")'),
        rows={"t": ({"id": 1, "qty": 1},)}, keep=("t.qty",), expect=("AlterColumn",),
    ),
    Scenario(
        "index_descending", items(), items('sa.Index("ix_item_qty_desc", sa.desc(sa.column("qty")))'),
        rows=ITEM_ROWS, keep=("item.qty",), expect=("CreateIndex",),
    ),
    Scenario(
        "identity_removed",
        t().replace("sa.Integer, primary_key=True)", "sa.Integer, sa.Identity(), primary_key=True)"),
        t().replace("primary_key=True)", "primary_key=True, autoincrement=False)"),
        rows={"t": NAMES}, keep=("t.name",), backends=PG, expect=("AlterColumn",),
    ),
    Scenario(
        "unique_constraint_to_unique_index", items('sa.UniqueConstraint("sku", name="uq_item_sku")'),
        items('sa.Index("uq_item_sku", "sku", unique=True)'),
        rows=ITEM_ROWS, keep=("item.sku",), backends=NOT_MYSQL, expect=("CreateIndex", "DropConstraint"),
    ),
    # several changes at once
    Scenario(
        "many_changes_one_table",
        items('sa.Column("note", sa.String(20))', 'sa.Index("ix_item_shelf", "shelf")'),
        items('sa.Column("note", sa.Text, comment="free text")', 'sa.Column("weight", sa.Numeric(6, 2))',
              'sa.UniqueConstraint("sku", name="uq_item_sku")', 'sa.Index("ix_item_shelf_qty", "shelf", "qty")')
        .replace('sa.String(10))', 'sa.String(10), nullable=False, server_default="none")'),
        rows=ITEM_ROWS, keep=("item.sku", "item.qty", "item.shelf"),
        expect=("AddColumn", "AlterColumn", "AddConstraint", "CreateIndex", "DropIndex"),
    ),
]

BY_NAME: dict[str, Scenario] = {scenario.name: scenario for scenario in SCENARIOS}
assert len(BY_NAME) == len(SCENARIOS), "scenario names must be unique"


def applicable(backend: str) -> list[Scenario]:
    """The scenarios that apply to `backend`."""
    return [scenario for scenario in SCENARIOS if backend in scenario.backends]
