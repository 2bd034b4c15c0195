"""Indexes, table options, constraints and identifiers exactly as `create_all` builds them.

For each model: `create_all` on one fresh database, generate + upgrade on
another; SQLAlchemy's own inspector reads both and they must be equal (indexes
with their dialect options, unique constraints, foreign keys, checks, table
options); `diff` is clean on both. Options of another database are ignored as
`create_all` ignores them. Models `create_all` cannot build, and identifiers the
databases refuse, stop `generate` with one line (exit 2).
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.pool import NullPool

from conftest import create_database, drop_database
from features_cycle import Cycle
from helpers import cli, write_project

PG_ONLY = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
MYSQL_ONLY = pytest.mark.parametrize("backend", ["mysql"], indirect=True)


@pytest.fixture
def other_db(backend: str, tmp_path: Path) -> Iterator[str]:
    """A second fresh database on `backend` (for `create_all`)."""
    name = f"ss_ix_ref_{uuid.uuid4().hex[:8]}"
    url = create_database(backend, name, tmp_path)
    yield url
    drop_database(backend, name)


def inspected(url: str) -> dict[str, Any]:
    """What SQLAlchemy's inspector reads of every table (schemashift's own tables left out)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            found: dict[str, Any] = {}
            for table in sorted(inspector.get_table_names()):
                if table.startswith(("_schemashift_", "schemashift_")):
                    continue
                options = inspector.get_table_options(table)
                found[table] = {
                    "columns": [
                        (c["name"], str(c["type"]), c["nullable"], c.get("computed")) for c in inspector.get_columns(table)
                    ],
                    "indexes": sorted(
                        (_plain(i) for i in inspector.get_indexes(table)), key=lambda i: str(i["name"])
                    ),
                    "uniques": sorted((_plain(u) for u in inspector.get_unique_constraints(table)), key=repr),
                    "foreign_keys": sorted((_plain(f) for f in inspector.get_foreign_keys(table)), key=repr),
                    "checks": sorted((_plain(c) for c in inspector.get_check_constraints(table)), key=repr),
                    "options": {k: v for k, v in options.items() if not k.endswith("auto_increment")},
                }
            return found
    finally:
        engine.dispose()


def _plain(item: Any) -> Any:
    """`item` with SQL expressions (compared by identity) as their text."""
    if isinstance(item, dict):
        return {key: _plain(value) for key, value in item.items()}
    if isinstance(item, list):
        return [_plain(value) for value in item]
    return str(item) if isinstance(item, sa.sql.ClauseElement) else item


def assert_same(built: dict[str, Any], reference: dict[str, Any]) -> None:
    """Equal inspections, failing on the first part that differs (readably)."""
    assert sorted(built) == sorted(reference)
    for table, parts in reference.items():
        for part, value in parts.items():
            assert built[table][part] == value, f"{table} {part}:\n  built     {built[table][part]}\n  reference {value}"


def create_all(url: str, metadata: sa.MetaData) -> None:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def assert_as_create_all(
    cycle: Cycle, reference_url: str, models: Callable[[], sa.MetaData], directory: Path
) -> None:
    """generate + upgrade on `cycle` and create_all on `reference_url` build what the inspector reads alike."""
    create_all(reference_url, models())
    cycle.generate(models(), "v1")
    cycle.upgrade()
    assert_same(inspected(cycle.url), inspected(reference_url))
    assert cycle.diff(models()) == []
    reference = Cycle(directory / "reference", reference_url)
    assert reference.diff(models()) == []


def mixed_models() -> sa.MetaData:
    """Options of every database on tables every database can build."""
    metadata = sa.MetaData()
    doc = sa.Table(
        "doc",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a", sa.String(100)),
        sa.Column("b", sa.String(100)),
        sa.Column("n", sa.Integer),
        sa.Column("body", sa.Text),
        sa.Column("at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")),
        sa.Column("twice", sa.Integer, sa.Computed("n * 2")),
        sa.Column("is_nan", sa.Boolean(create_constraint=True), nullable=False),  # MLflow's metrics
        sa.Column("kind", sa.Enum("x", "y", name="doc_kind", create_constraint=True)),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("owner.id")),
        sa.ForeignKeyConstraint(["owner_id"], ["owner.id"], name="fk_doc_owner", ondelete="CASCADE"),
    )
    sa.Table(
        "owner", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.Integer),
        sa.CheckConstraint("code > 0", name="ck_owner_pg_only").ddl_if(dialect="postgresql"),
        sa.CheckConstraint("code < 1000000", name="ck_owner_elsewhere").ddl_if(dialect=("sqlite", "mysql")),
    )
    sa.Table(  # both keys alike but for the name (MLflow's evaluation_dataset_records)
        "child",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("owner.id", ondelete="CASCADE")),
        sa.ForeignKeyConstraint(["owner_id"], ["owner.id"], name="fk_child_owner_id", ondelete="CASCADE"),
    )
    sa.Index("ix_doc_ab", doc.c.a, doc.c.b, postgresql_where=sa.text("a IS NOT NULL OR b IS NOT NULL"))
    sa.Index("ix_doc_both", doc.c.n, postgresql_where=doc.c.n > 5, sqlite_where=doc.c.n > 5)
    sa.Index("ix_doc_lite", doc.c.b, sqlite_where=sa.text("b IS NOT NULL"))
    sa.Index("ix_doc_incl", doc.c.a, postgresql_include=["n"])
    sa.Index("ix_doc_hash", doc.c.b, postgresql_using="hash")
    sa.Index("ix_doc_brin", doc.c.n, postgresql_using="brin")
    sa.Index("ix_doc_ops", doc.c.a, postgresql_ops={"a": "varchar_pattern_ops"})
    sa.Index("ix_doc_with", doc.c.n, doc.c.id, postgresql_with={"fillfactor": 70})
    sa.Index("ux_doc_ab", doc.c.a, doc.c.b, unique=True, postgresql_nulls_not_distinct=True)
    sa.Index("ix_doc_body", doc.c.body, mysql_length=20)
    sa.Index("ix_doc_len", doc.c.a, doc.c.b, mysql_length={"a": 10, "b": 12})
    sa.Index("ix_doc_whole", doc.c.b, doc.c.a, mysql_length={"b": 100, "a": 20})  # b's prefix is all of b
    sa.Index("ix_doc_using", doc.c.n, mysql_using="btree")
    # dagster's idx_run_range: a key-part length on a DATETIME(6), which InnoDB ignores
    sa.Index("ix_doc_range", doc.c.a, doc.c.at, mysql_length={"a": 32, "at": 8})
    sa.Index("ix_doc_pg_only", doc.c.n, doc.c.a).ddl_if(dialect="postgresql")
    sa.Index("ix_doc_not_pg", doc.c.a, doc.c.n).ddl_if(dialect=("sqlite", "mysql"))
    sa.Index("ix_doc_not_lite", doc.c.n, doc.c.b).ddl_if(callable_=not_on_sqlite)  # asked per database
    return metadata


def not_on_sqlite(ddl: object, target: object, bind: object, **kw: Any) -> bool:
    """A ``ddl_if`` condition as applications write them: decided by the dialect it is asked for."""
    return bool(kw["dialect"].name != "sqlite")


def test_index_options_as_create_all(cycle: Cycle, other_db: str, tmp_path: Path) -> None:
    assert_as_create_all(cycle, other_db, mixed_models, tmp_path)


@pytest.fixture
def cycle(fresh_db: str, tmp_path: Path) -> Cycle:
    return Cycle(tmp_path / "project", fresh_db)


def pg_models() -> sa.MetaData:
    metadata = sa.MetaData()
    item = sa.Table(
        "item",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tags", postgresql.ARRAY(sa.Integer)),
        sa.Column("span", postgresql.INT4RANGE),
        sa.Column("doc", postgresql.JSONB),
    )
    sa.Index("ix_item_tags", item.c.tags, postgresql_using="gin")
    sa.Index("ix_item_span", item.c.span, postgresql_using="gist")
    sa.Index("ix_item_doc", item.c.doc, postgresql_using="gin", postgresql_ops={"doc": "jsonb_path_ops"})
    return metadata


@PG_ONLY
def test_postgresql_access_methods_as_create_all(cycle: Cycle, other_db: str, tmp_path: Path) -> None:
    assert_as_create_all(cycle, other_db, pg_models, tmp_path)


def mysql_models() -> sa.MetaData:
    metadata = sa.MetaData()
    note = sa.Table(
        "note",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(200)),
        sa.Column("body", sa.Text),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_row_format="DYNAMIC",
    )
    sa.Index("ft_note", note.c.title, note.c.body, mysql_prefix="FULLTEXT")
    sa.Table("plain", metadata, sa.Column("id", sa.Integer, primary_key=True), mysql_engine="MyISAM")
    sa.Table(  # buildbot's tables
        "old_charset", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)),
        mysql_character_set="utf8",
    )
    sa.Table("m", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("w", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(  # InnoDB numbers unnamed keys in the order they come: c_ibfk_1 is m's, as create_all makes it
        "c", metadata, sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("z", sa.ForeignKey("w.id")), sa.Column("m", sa.ForeignKey("m.id")), sa.Column("w", sa.ForeignKey("w.id")),
    )
    return metadata


@MYSQL_ONLY
def test_mysql_table_options_as_create_all(cycle: Cycle, other_db: str, tmp_path: Path) -> None:
    assert_as_create_all(cycle, other_db, mysql_models, tmp_path)


def test_index_option_change_is_shown(cycle: Cycle) -> None:
    """A changed predicate or option is a difference that names what changed."""
    cycle.generate(mixed_models(), "v1")
    cycle.upgrade()
    changed = mixed_models()
    doc = changed.tables["doc"]
    for name in ("ix_doc_both", "ix_doc_len"):
        doc.indexes.discard(next(i for i in doc.indexes if i.name == name))
    sa.Index("ix_doc_both", doc.c.n, postgresql_where=doc.c.n > 7, sqlite_where=doc.c.n > 7)
    sa.Index("ix_doc_len", doc.c.a, doc.c.b, mysql_length={"a": 10, "b": 14})
    lines = cycle.diff(changed)
    shown = "(b, 14)" if cycle.dialect == "mysql" else "n > 7"
    assert any(shown in line for line in lines), lines
    assert len(lines) == 2, lines  # the other database's option is no difference here


# -- models no database can build: refused by generate, one line, exit 2 --------------

LONG = "t" * 72
SERVER_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/none",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/none",
}

REFUSED = {
    "long table name": (
        f"""
        class Item(Base):
            __tablename__ = "{LONG}"
            id: Mapped[int] = mapped_column(primary_key=True)
        """,
        ["table name", LONG, "72 characters"],
    ),
    "long generated index name": (
        """
        class Item(Base):
            __tablename__ = "a_rather_long_table_name_for_the_purpose_of_testing_limits_x"
            id: Mapped[int] = mapped_column(primary_key=True)
            some_quite_long_column_name_here: Mapped[str] = mapped_column(sa.String(20), index=True)
        """,
        ["index name", "ix_a_rather_long_table_name"],
    ),
    "long table name in bytes": (
        """
        class Item(Base):
            __tablename__ = "таблица_с_очень_длинным_названием_x"
            id: Mapped[int] = mapped_column(primary_key=True)
        """,
        ["table name", "таблица"],
    ),
    "index with no columns": (
        """
        class Item(Base):
            __tablename__ = "item"
            __table_args__ = (sa.Index("ix_item_nothing"),)
            id: Mapped[int] = mapped_column(primary_key=True)
        """,
        ["ix_item_nothing", "no columns"],
    ),
    "foreign key to a non-unique column": (
        """
        class Parent(Base):
            __tablename__ = "parent"
            id: Mapped[int] = mapped_column(primary_key=True)
            code: Mapped[str] = mapped_column(sa.String(10))

        class Child(Base):
            __tablename__ = "child"
            id: Mapped[int] = mapped_column(primary_key=True)
            parent_code: Mapped[str] = mapped_column(sa.String(10), sa.ForeignKey("parent.code"))
        """,
        ["child(parent_code) -> parent(code)", "neither a primary key nor unique"],
    ),
}

HEADER = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass
"""


@pytest.mark.parametrize("server", sorted(SERVER_URLS))
@pytest.mark.parametrize("case", sorted(set(REFUSED) - {"long table name in bytes"}))
def test_generate_refuses_what_no_database_builds(tmp_path: Path, case: str, server: str) -> None:
    body, expected = REFUSED[case]
    project = write_project(tmp_path / "p", SERVER_URLS[server], HEADER + textwrap.dedent(body))
    result = cli(project, "generate", "-m", "x", check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(part in lines[0] for part in expected), result.stderr
    if "name" in case:
        assert str(63 if server == "postgresql" else 64) in lines[0]
    assert not list((project / "migrations").glob("0*.py"))


def test_postgresql_counts_bytes(tmp_path: Path) -> None:
    """35 characters, 64 bytes: more than PostgreSQL's 63; MySQL counts characters and takes it."""
    body, _ = REFUSED["long table name in bytes"]
    project = write_project(tmp_path / "p", SERVER_URLS["mysql"], HEADER + textwrap.dedent(body))
    cli(project, "generate", "-m", "x")


def test_postgresql_refuses_long_names_in_bytes(tmp_path: Path) -> None:
    body, expected = REFUSED["long table name in bytes"]
    project = write_project(tmp_path / "p", SERVER_URLS["postgresql"], HEADER + textwrap.dedent(body))
    result = cli(project, "generate", "-m", "x", check=False)
    assert result.returncode == 2 and "64 bytes" in result.stderr and "63" in result.stderr, result.stderr


def test_sqlite_projects_take_long_names(tmp_path: Path) -> None:
    """SQLite has no identifier limit: only the databases the environments use count."""
    body, _ = REFUSED["long table name"]
    project = write_project(tmp_path / "p", f"sqlite:///{tmp_path / 'app.db'}", HEADER + textwrap.dedent(body))
    cli(project, "generate", "-m", "x")
    cli(project, "upgrade")
    assert cli(project, "diff", check=False).returncode == 0


@PG_ONLY
def test_renamed_table_takes_its_serial_sequence_along(cycle: Cycle) -> None:
    """The sequence of a SERIAL (and of an identity) column is named after the table, as create_all names it."""
    def models(name: str, old: str | None = None) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table(
            name, metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("n", sa.BigInteger, sa.Identity()),
            info={"renamed_from": old} if old else {},
        )
        return metadata

    cycle.generate(models("old_items"), "v1")
    cycle.upgrade()
    cycle.run("INSERT INTO old_items DEFAULT VALUES")
    cycle.generate(models("new_items", "old_items"), "rename")
    cycle.upgrade()
    sequences = cycle.rows(
        "SELECT pg_get_serial_sequence('new_items', 'id'), pg_get_serial_sequence('new_items', 'n')"
    )
    assert sequences == [("public.new_items_id_seq", "public.new_items_n_seq")]
    cycle.run("INSERT INTO new_items DEFAULT VALUES")
    assert cycle.rows("SELECT id, n FROM new_items ORDER BY id") == [(1, 1), (2, 2)]
    assert cycle.diff() == []
    cycle.downgrade("-1")
    assert cycle.rows("SELECT pg_get_serial_sequence('old_items', 'id')") == [("public.old_items_id_seq",)]


@pytest.mark.parametrize(
    ("written", "printed"),
    [
        ("a IS NOT NULL OR b IS NOT NULL", "((a IS NOT NULL) OR (b IS NOT NULL))"),
        ("asset_key IS NOT NULL AND partition IS NOT NULL", "((asset_key IS NOT NULL) AND (partition IS NOT NULL))"),
        ("(a OR b) AND c", "((a OR b) AND c)"),
        ("a - (b - c)", "(a - (b - c))"),
        ("a - b - c", "((a - b) - c)"),
        ("a * b + c", "((a * b) + c)"),
        ("CASE WHEN a > 1 THEN b ELSE c END = 1", "(CASE WHEN (a > 1) THEN b ELSE c END = 1)"),
        ("x > 1 AND y IN (1, 2)", "((x > 1) AND (y IN (1, 2)))"),
    ],
)
def test_predicates_compare_as_postgresql_prints_them(written: str, printed: str) -> None:
    from schemashift.model.normalize import canonical_sql

    assert canonical_sql(written, casts=True) == canonical_sql(printed, casts=True)


@pytest.mark.parametrize(("one", "other"), [("(a OR b) AND c", "a OR (b AND c)"), ("a - (b - c)", "(a - b) - c")])
def test_parentheses_that_matter_stay(one: str, other: str) -> None:
    from schemashift.model.normalize import canonical_sql

    assert canonical_sql(one) != canonical_sql(other)
