"""Reflection and normalisation: a database created from models reflects back equal to the models.

Every test works in the module's database (`db_url`) under its own table-name
prefix, and compares only the tables carrying that prefix.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from schemashift import operations as ops
from schemashift.dialects import dialect_of, get_dialect
from schemashift.model import normalize as norm
from schemashift.sqla.from_metadata import from_metadata
from schemashift.model.schema import Schema, Table
from schemashift.model.types import Type

pytestmark = pytest.mark.filterwarnings("ignore:Computed column .* STORED:sqlalchemy.exc.SAWarning")

# -- helpers -------------------------------------------------------------------


def differences(expected: Schema, actual: Schema) -> list[str]:
    """Readable lines naming each differing table, field, column or constraint."""
    lines: list[str] = []
    for key in sorted(set(expected.tables) | set(actual.tables)):
        left, right = expected.tables.get(key), actual.tables.get(key)
        if left is None or right is None:
            lines.append(f"{key}: only in {'reflected' if left is None else 'models'}")
        elif left != right:
            lines.extend(_table_differences(key, left, right))
    return lines


def _table_differences(key: str, left: Table, right: Table) -> list[str]:
    lines: list[str] = []
    for field in fields(Table):
        a, b = getattr(left, field.name), getattr(right, field.name)
        if a == b:
            continue
        if field.name == "columns":
            names = dict.fromkeys([c.name for c in a] + [c.name for c in b])
            for name in names:
                ca = next((c for c in a if c.name == name), None)
                cb = next((c for c in b if c.name == name), None)
                if ca != cb:
                    lines.append(f"{key}.{name}:\n    models:    {ca}\n    reflected: {cb}")
        else:
            lines.append(f"{key} {field.name}:\n    models:    {a}\n    reflected: {b}")
    return lines


def only(schema: Schema, prefix: str) -> Schema:
    """The tables of `schema` whose name starts with `prefix`."""
    return Schema({key: table for key, table in schema.tables.items() if table.name.startswith(prefix)})


def assert_reflects_as_models(conn: sa.Connection, metadata: sa.MetaData, prefix: str, **kwargs: object) -> None:
    """Reflect `conn` and compare its `prefix` tables with `metadata`, both normalised."""
    dialect = get_dialect(conn.dialect.name)
    live = dialect.normalize(only(dialect_of(conn).reflect(conn, **kwargs), prefix))  # type: ignore[arg-type]
    models = dialect.normalize(from_metadata(metadata))
    problems = differences(models, live)
    assert not problems, "reflected schema differs from the models:\n" + "\n".join(problems)
    assert live == models


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[sa.Engine]:
    """One engine on the module's database."""
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


# -- the models ------------------------------------------------------------------


def build_metadata(backend: str, p: str) -> sa.MetaData:
    """Models covering the column types, defaults, keys and constraints schemashift compares."""
    metadata = sa.MetaData()
    parent = sa.Table(
        f"{p}parent",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(20), nullable=False),
        sa.Column("small", sa.SmallInteger),
        sa.Column("big", sa.BigInteger, server_default="0"),
        sa.Column("name", sa.String(50), server_default="it's", comment="display name"),
        sa.Column("body", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("price", sa.Numeric(10, 2), server_default="1.5"),
        sa.Column("ratio", sa.Float),
        sa.Column("exact", sa.Double),
        sa.Column("born", sa.Date),
        sa.Column("created", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP")),
        sa.Column("updated", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("at", sa.Time),
        sa.Column("span", sa.Interval),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("doc", sa.JSON),
        sa.Column("uid", sa.Uuid),
        sa.Column("mood", sa.Enum("happy", "sad", name=f"{p}mood")),
        sa.Column("twice", sa.Integer, sa.Computed("small * 2")),
        sa.UniqueConstraint("code"),
        sa.UniqueConstraint("name", "born", name=f"{p}uq_name_born"),
        sa.CheckConstraint("price >= 0", name=f"{p}ck_price"),
        sa.CheckConstraint("small > -1"),
        comment="parents",
    )
    sa.Index(f"{p}ix_small_big", parent.c.small, parent.c.big)
    sa.Index(f"{p}ix_code_small", parent.c.code, parent.c.small, unique=True)
    if backend != "mysql":  # MariaDB has neither expression nor partial indexes
        sa.Index(f"{p}ix_lower_name", sa.func.lower(parent.c.name), parent.c.code)
        sa.Index(f"{p}ix_partial", parent.c.big, postgresql_where=parent.c.big > 5, sqlite_where=parent.c.big > 5)
    sa.Table(
        f"{p}child",
        metadata,
        sa.Column("parent_id", sa.Integer, sa.ForeignKey(f"{p}parent.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("other_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.Boolean, server_default=sa.false()),
        sa.Column("score", sa.Numeric(5, 1), server_default=sa.text("-2.50")),
        sa.Column("note", sa.String(10, collation=_COLLATIONS[backend])),
        sa.ForeignKeyConstraint(["other_id"], [f"{p}parent.id"], name=f"{p}fk_child_other", onupdate="CASCADE"),
    )
    sa.Table(
        f"{p}node",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("up_id", sa.BigInteger, sa.ForeignKey(f"{p}node.id", ondelete="SET NULL"), index=True),
        sa.Column("label", sa.String(30), server_default="x'y"),
        sa.Column("level", sa.Integer, sa.CheckConstraint("level >= 0"), server_default=sa.text("0")),
    )
    if backend == "postgresql":
        _postgresql_tables(metadata, p)
    return metadata


_COLLATIONS = {"postgresql": "C", "mysql": "utf8mb4_bin", "sqlite": "NOCASE"}


def _postgresql_tables(metadata: sa.MetaData, p: str) -> None:
    sa.Table(
        f"{p}pgonly",
        metadata,
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("tags", pg.ARRAY(sa.Integer)),
        sa.Column("doc", pg.JSONB, server_default=sa.text("'{}'::jsonb")),
        sa.Column("span", pg.INTERVAL),
        sa.Column("single", sa.REAL),
        sa.Column("parent_id", sa.Integer),
        sa.Column("ref", sa.Integer),
        sa.ForeignKeyConstraint(["parent_id"], [f"{p}parent.id"], deferrable=True, initially="DEFERRED"),
        sa.ForeignKeyConstraint(["ref"], [f"{p}extra.{p}other.id"]),
        schema=f"{p}extra",
    )
    sa.Table(
        f"{p}other",
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(always=True, start=10, increment=5), primary_key=True),
        sa.Column("name", sa.String),
        schema=f"{p}extra",
    )


def _create(engine: sa.Engine, metadata: sa.MetaData, backend: str, p: str) -> None:
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql(f"CREATE SCHEMA {p}extra")
        metadata.create_all(conn)


# -- round trip --------------------------------------------------------------------


def test_database_created_from_models_reflects_equal(engine: sa.Engine, backend: str) -> None:
    p = "rt_"
    metadata = build_metadata(backend, p)
    _create(engine, metadata, backend, p)
    schemas: list[str | None] = [None, f"{p}extra"] if backend == "postgresql" else [None]
    with engine.connect() as conn:
        assert_reflects_as_models(conn, metadata, p, schemas=schemas)


def test_database_built_by_migration_sql_reflects_equal(engine: sa.Engine, backend: str) -> None:
    """The same models, created through the dialect's compiled CreateTable statements instead."""
    p = "mg_"
    metadata = build_metadata(backend, p)
    models = from_metadata(metadata)
    dialect = get_dialect(backend)
    before = Schema()
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql(f"CREATE SCHEMA {p}extra")
        for sa_table in metadata.sorted_tables:
            operation = ops.CreateTable(models.table(sa_table.key))
            after = operation.apply(before)
            for statement in dialect.compile(operation, before, after):
                conn.exec_driver_sql(statement)
            before = after
    schemas: list[str | None] = [None, f"{p}extra"] if backend == "postgresql" else [None]
    with engine.connect() as conn:
        assert_reflects_as_models(conn, metadata, p, schemas=schemas)


def test_reflection_reads_what_the_database_holds(engine: sa.Engine, backend: str) -> None:
    p = "rd_"
    metadata = build_metadata(backend, p)
    _create(engine, metadata, backend, p)
    with engine.connect() as conn:
        live = only(dialect_of(conn).reflect(conn), p)
    parent, child, node = live.table(f"{p}parent"), live.table(f"{p}child"), live.table(f"{p}node")
    assert parent.column_names[:3] == ("id", "code", "small")
    assert parent.column("code").nullable is False and parent.column("small").nullable is True
    assert parent.column("price").type == Type("numeric", precision=10, scale=2)
    assert parent.column("twice").computed is not None
    assert child.primary_key is not None and child.primary_key.columns == ("parent_id", "seq")
    assert {fk.ref_table for fk in child.foreign_keys} == {f"{p}parent"}
    assert any(fk.ondelete == "CASCADE" for fk in child.foreign_keys)
    assert node.foreign_keys[0].ref_table == f"{p}node"
    assert any(i.name == f"{p}ix_small_big" and i.columns == ("small", "big") for i in parent.indexes)
    if backend != "sqlite":
        assert parent.comment == "parents"
        assert parent.column("name").comment == "display name"
    if backend == "mysql":
        assert parent.column("active").type == Type("boolean")
        assert parent.column("doc").type.kind == "json"


def test_normalize_is_idempotent(backend: str) -> None:
    dialect = get_dialect(backend)
    once = dialect.normalize(from_metadata(build_metadata(backend, "id_")))
    assert dialect.normalize(once) == once


def test_real_differences_survive_normalisation(engine: sa.Engine, backend: str) -> None:
    p = "df_"
    created = sa.MetaData()
    sa.Table(
        f"{p}t",
        created,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(20), server_default="a"),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.UniqueConstraint("qty"),
    )
    with engine.begin() as conn:
        created.create_all(conn)
    changed = sa.MetaData()
    table = sa.Table(
        f"{p}t",
        changed,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(30), server_default="b"),
        sa.Column("qty", sa.Integer, nullable=True),
        sa.UniqueConstraint("name"),
    )
    sa.Index(f"{p}ix_qty", table.c.qty)
    dialect = get_dialect(backend)
    with engine.connect() as conn:
        live = dialect.normalize(only(dialect_of(conn).reflect(conn), p))
    problems = "\n".join(differences(dialect.normalize(from_metadata(changed)), live))
    for expected in (f"{p}t.name:", f"{p}t.qty:", "indexes", "uniques"):
        assert expected in problems


def test_exclude_and_internal_tables_are_skipped(engine: sa.Engine, backend: str) -> None:
    p = "ex_"
    metadata = sa.MetaData()
    for name in (f"{p}kept", f"{p}version", f"_schemashift_{p}tmp"):
        sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True))
    with engine.begin() as conn:
        metadata.create_all(conn)
    with engine.connect() as conn:
        names = set(only(dialect_of(conn).reflect(conn, exclude={f"{p}version"}), p).tables)
        assert names == {f"{p}kept"}
        assert f"_schemashift_{p}tmp" not in dialect_of(conn).reflect(conn).tables


def _tables(metadata: sa.MetaData, prefix: str, count: int) -> None:
    for number in range(count):
        columns = [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("code", sa.String(10), unique=True),
            sa.Column("qty", sa.Integer, sa.CheckConstraint("qty > 0"), index=True),
        ]
        if number:
            columns.append(sa.Column("prev_id", sa.Integer, sa.ForeignKey(f"{prefix}{number - 1}.id")))
        sa.Table(f"{prefix}{number}", metadata, *columns, comment="numbered")


def _count_reflection_queries(url: str) -> int:
    engine = sa.create_engine(url)
    statements: list[str] = []
    try:
        with engine.connect() as conn:
            sa.event.listen(conn, "before_cursor_execute", lambda *args: statements.append(args[2]))
            dialect_of(conn).reflect(conn)
    finally:
        engine.dispose()
    return len(statements)


def test_query_count_does_not_grow_with_tables(fresh_db: str, backend: str) -> None:
    engine = sa.create_engine(fresh_db)
    try:
        few, many = sa.MetaData(), sa.MetaData()
        _tables(few, "qa", 5)
        _tables(many, "qb", 45)
        with engine.begin() as conn:
            few.create_all(conn)
        with_five = _count_reflection_queries(fresh_db)
        with engine.begin() as conn:
            many.create_all(conn)
        with_fifty = _count_reflection_queries(fresh_db)
        with engine.connect() as conn:
            assert len(dialect_of(conn).reflect(conn).tables) == 50
    finally:
        engine.dispose()
    assert with_five == with_fifty
    assert with_fifty <= 30


# -- canonical text, no database -------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "reflected", "casts"),
    [
        ("price >= 0", "price >= 0::numeric", True),
        ("small * 2", "(small * 2)", True),
        ("a  <>  3", "(a <> 3)", False),
        ("coalesce(a, 0) > -1", "COALESCE(a, 0) > '-1'::integer", True),
        ("a IN ('x', 'y')", "`a` in ('x','y')", False),
        ("lower(name) = name", "lower((name)::text) = (name)::text", True),
        ('"Mixed" > 0', '("Mixed" > (0)::numeric)', True),
        ("a != 1", "a <> 1", False),
        ("name LIKE 'A%'", "(name)::text ~~ 'A%'::text", True),
    ],
)
def test_expressions_compare_equal(written: str, reflected: str, casts: bool) -> None:
    synonyms = {"~~": "like"}
    assert norm.canonical_sql(written, casts=casts, synonyms=synonyms) == norm.canonical_sql(
        reflected, casts=casts, synonyms=synonyms
    )


def test_expressions_keep_string_literals_and_case_sensitive_names() -> None:
    assert norm.canonical_sql("name = 'It''s  X'") == "name = 'It''s  X'"
    assert norm.canonical_sql('"Mixed" > 0') != norm.canonical_sql("mixed > 0")
    assert norm.canonical_sql('"Mixed" > 0', case_sensitive_quotes=False) == "mixed > 0"


@pytest.mark.parametrize(
    ("reflected", "typ", "expected"),
    [
        ("'unnamed'::character varying", Type("string"), "'unnamed'"),
        ("'0'::bigint", Type("bigint"), "0"),
        ("'1.50'", Type("numeric", precision=10, scale=2), "1.5"),
        ("(1)", Type("boolean"), "true"),
        ("false", Type("boolean"), "false"),
        ("current_timestamp()", Type("datetime"), "CURRENT_TIMESTAMP"),
        ("now()", Type("datetime", timezone=True), "CURRENT_TIMESTAMP"),
        ("(CURRENT_TIMESTAMP)", Type("datetime"), "CURRENT_TIMESTAMP"),
        ("'2020-01-01'", Type("datetime"), "'2020-01-01 00:00:00'"),
        ("NULL::character varying", Type("string"), None),
        ("'-2.50'::numeric", Type("numeric"), "-2.5"),
        ("-1", Type("integer"), "-1"),
    ],
)
def test_defaults_canonical(reflected: str, typ: Type, expected: str | None) -> None:
    assert norm.canonical_default(reflected, typ, casts=True) == expected


def test_postgresql_generated_names_follow_its_truncation() -> None:
    long_table = "t" * 40
    long_column = "c" * 40
    name = norm.object_name(long_table, long_column, "key")
    assert len(name) == 63 and name.endswith("_key")
    assert norm.postgres_generated(name, long_table, [long_column], "key")
    assert norm.postgres_generated("users_email_key1", "users", ["email"], "key")
    assert not norm.postgres_generated("users_email_unique", "users", ["email"], "key")
