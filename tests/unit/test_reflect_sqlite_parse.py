"""SQLite's fast CREATE TABLE reading gives exactly what SQLAlchemy's own methods give.

`reflect_sqlite.read` reads plain CREATE TABLE texts itself and leaves the rest
to SQLAlchemy's per-table methods; ``read(..., fast=False)`` sends every table
there. Both must give the same `RawSchema`, key for key and in the same order,
with the same warnings, on awkward texts written by hand, on tables SQLAlchemy
creates, on texts SQLite rewrote (ADD COLUMN, RENAME), on randomly generated
texts, and on every model of the scenario corpus. The plain texts must really
take the fast path (else the comparisons would prove nothing).
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from schemashift.dialects.sqlite import reflect as reflect_sqlite
from schemashift.reflection.core import RawSchema

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # compared in `_read`

PARENT = 'CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT UNIQUE, "Other Id" INTEGER, UNIQUE (id, code))'


# -- comparing both paths ---------------------------------------------------------------


def _shape(value: Any) -> Any:
    """`value` comparable with ``==``, dict order and type classes included."""
    if isinstance(value, dict):
        return [(key, _shape(item)) for key, item in value.items()]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, *(_shape(item) for item in value)]
    if isinstance(value, sa.types.TypeEngine):
        return f"{type(value).__name__}:{value!r}"
    return (type(value).__name__, value)


def _read(conn: sa.Connection, fast: bool, schema: str | None = None) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = reflect_sqlite.read(conn, schema, fast=fast)
    fields = ("columns", "primary_keys", "foreign_keys", "indexes", "uniques", "checks", "comments")
    shapes = {name: {table: _shape(value) for table, value in getattr(raw, name).items()} for name in fields}
    return shapes, sorted(str(w.message) for w in caught)


def assert_same_both_ways(conn: sa.Connection, schema: str | None = None) -> RawSchema:
    """The fast and the SQLAlchemy path read `conn`'s database `schema` alike (shapes and warnings)."""
    fast, fast_warnings = _read(conn, True, schema)
    slow, slow_warnings = _read(conn, False, schema)
    for field in fast:
        for table in sorted(set(fast[field]) | set(slow[field])):
            assert fast[field].get(table) == slow[field].get(table), f"{field} of {table!r}"
        assert list(fast[field]) == list(slow[field])
    assert fast_warnings == slow_warnings
    return reflect_sqlite.read(conn, schema)


def plain_tables(conn: sa.Connection) -> set[str]:
    """The tables whose CREATE TABLE text the fast path reads itself."""
    catalogue = reflect_sqlite._fetch(conn, "main")
    return {name for name, sql in catalogue.table_sql.items() if sql and reflect_sqlite._parse(sql) is not None}


@pytest.fixture
def conn(tmp_path: Path) -> Any:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'parse.db'}", poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def _create(conn: sa.Connection, *statements: str) -> None:
    for statement in statements:
        conn.exec_driver_sql(statement)
    conn.commit()


# -- texts written by hand ------------------------------------------------------------------

#: (CREATE TABLE text, whether the fast path reads it itself)
TRICKY = [
    ('CREATE TABLE "t 1" ("the id" INTEGER PRIMARY KEY, "a,b" TEXT, [br ack] TEXT, `back tick` TEXT)', False),
    ('CREATE TABLE t (id INTEGER, "a,b" TEXT, "c d" TEXT, CONSTRAINT "my uq" UNIQUE ("a,b", "c d"))', True),
    ('CREATE TABLE t (id INTEGER, CONSTRAINT "pk, with comma" PRIMARY KEY (id))', True),
    ("CREATE TABLE t (id INTEGER, CONSTRAINT [pk br] PRIMARY KEY (id))", False),
    ("CREATE TABLE t (id INTEGER, CONSTRAINT `pk bt` PRIMARY KEY (id))", False),
    ("CREATE TABLE t (\n  id INTEGER, -- the key\n  code TEXT, /* a, UNIQUE (code) */\n  PRIMARY KEY (id)\n)", False),
    ("CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT) -- SQLite keeps no trailing comment", True),
    ("CREATE TABLE t (a INTEGER, b TEXT, CONSTRAINT ck_nested CHECK ((a > 0) AND (length(b) IN (1, (2))))) ", True),
    ("CREATE TABLE t (a TEXT, CONSTRAINT ck_str CHECK (a <> 'x, (y)' AND a <> ')'))", True),
    ("CREATE TABLE t (a TEXT, CONSTRAINT ck_word CHECK (a <> 'CONSTRAINT x PRIMARY KEY'))", False),
    ("CREATE TABLE t (a TEXT, CHECK (a <> 'it''s, ('), CHECK (a <> \"a\"))", True),
    ("CREATE TABLE t (a TEXT CHECK (a IN ('x', 'y')) NOT NULL, b INT CONSTRAINT ck_b CHECK (b > 0))", True),
    ("CREATE TABLE t (a TEXT, CHECK (a <> 'x'), CONSTRAINT b_ck CHECK (a <> 'y'), CONSTRAINT a_ck CHECK (1))", True),
    ("CREATE TABLE t (\n\ta INT, \n\tCONSTRAINT ck_multi CHECK (a > 0\n\t\tAND a < 10)\n)", False),
    (
        "CREATE TABLE t (id INTEGER, p INTEGER, CONSTRAINT fk_p FOREIGN KEY(p) REFERENCES parent (id) "
        "ON DELETE CASCADE ON UPDATE SET NULL DEFERRABLE INITIALLY DEFERRED)",
        True,
    ),
    ("CREATE TABLE t (p INTEGER, FOREIGN KEY (p) REFERENCES parent (id) ON DELETE SET DEFAULT NOT DEFERRABLE)", True),
    ("CREATE TABLE t (p INTEGER, FOREIGN KEY (p) REFERENCES parent (id) ON UPDATE NO ACTION ON DELETE RESTRICT)", True),
    ("CREATE TABLE t (p INTEGER, FOREIGN KEY (p) REFERENCES parent (id) DEFERRABLE INITIALLY IMMEDIATE)", True),
    ("CREATE TABLE t (p INTEGER, FOREIGN KEY (p) REFERENCES parent (id) ON DELETE CASCADE DEFERRABLE)", True),
    ("CREATE TABLE t (p INTEGER, FOREIGN KEY (p) REFERENCES parent (id) MATCH FULL)", False),
    (
        'CREATE TABLE t (a INTEGER, b TEXT, c INTEGER REFERENCES parent ("Other Id"), '
        'CONSTRAINT "fk ab" FOREIGN KEY (a, b) REFERENCES parent (id, code))',
        False,
    ),
    ('CREATE TABLE t (a INTEGER, b TEXT, CONSTRAINT "fk ab" FOREIGN KEY (a, b) REFERENCES "parent" (id, code))', True),
    ("CREATE TABLE t (a INTEGER, FOREIGN KEY (a) REFERENCES parent)", False),
    ("CREATE TABLE t (a INTEGER REFERENCES parent, b INTEGER REFERENCES parent (id))", False),
    ("CREATE TABLE t (a TEXT UNIQUE, b TEXT, c TEXT, UNIQUE (b), CONSTRAINT uq_c UNIQUE (c, a))", False),
    ("CREATE TABLE t (a TEXT, b TEXT, UNIQUE (b), CONSTRAINT uq_c UNIQUE (a, b))", True),
    ("CREATE TABLE t (code VARCHAR(10) UNIQUE, x INT)", False),
    ("CREATE TABLE t (id TEXT, CONSTRAINT pk_t PRIMARY KEY (id), UNIQUE (id))", True),
    ("CREATE TABLE t (id INTEGER, name TEXT, PRIMARY KEY (id, name))", True),
    ('CREATE TABLE t (id INTEGER, CONSTRAINT "quoted ""pk""" PRIMARY KEY (id))', False),
    ("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT DEFAULT 'a, b')", True),
    ("CREATE TABLE t (id INTEGER NOT NULL PRIMARY KEY DESC, v REAL DEFAULT -1.5, w BLOB DEFAULT X'00')", True),
    ("CREATE TABLE t (id INTEGER PRIMARY KEY, q INT, d INT GENERATED ALWAYS AS (q * 2) VIRTUAL)", False),
    ("CREATE TABLE t (id INTEGER PRIMARY KEY, q INT, d INT AS (q + 1) STORED)", False),
    ("CREATE TABLE t (id INTEGER, v TEXT, CONSTRAINT pk PRIMARY KEY (id)) WITHOUT ROWID", True),
    ("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT UNIQUE) WITHOUT ROWID", False),
    ("CREATE TABLE t (id INTEGER, v TEXT, PRIMARY KEY (id), UNIQUE (v)) WITHOUT ROWID, STRICT", True),
    ("CREATE TABLE t(id integer primary key, c text not null, constraint uq_c unique(c))", True),
    ("create table t (id integer, p integer, constraint fk_p foreign key (p) references parent (id) on delete set null)",
     True),
    ("CREATE TABLE t (unique_code TEXT, UNIQUE (unique_code))", False),
    ("CREATE TABLE t (my_constraint INTEGER PRIMARY KEY, x INT)", False),
    ("CREATE TABLE t (is_foreign INT, checked_at INT, primary_email TEXT, x_references INT)", False),
    ("CREATE TABLE t (checked_at INT, primary_email TEXT, x_references INT, check_in INT, PRIMARY KEY (check_in))",
     True),
    ('CREATE TABLE t (a INT CONSTRAINT "ck a" CHECK (a > 0), b TEXT COLLATE "NOCASE" PRIMARY KEY)', False),
    ('CREATE TABLE t (a INT CONSTRAINT "ck a" CHECK (a > 0),\n b TEXT COLLATE "NOCASE" PRIMARY KEY)', True),
    ('CREATE TABLE t (a INTEGER, CONSTRAINT "uq a" UNIQUE (a), CONSTRAINT "pk" PRIMARY KEY (a))', False),
    ('CREATE TABLE t (a INTEGER, CONSTRAINT "uq a" UNIQUE (a),\n CONSTRAINT "pk" PRIMARY KEY (a))', True),
    ("CREATE TABLE t (a INTEGER, CONSTRAINT uq_a UNIQUE (a), CONSTRAINT pk_a PRIMARY KEY (a))", True),
    ('CREATE TABLE t (a TEXT COLLATE "NOCASE" NOT NULL, b TEXT COLLATE nocase, c TEXT DEFAULT (\'x\'))', True),
    ('CREATE TABLE t (a TEXT DEFAULT "dq", b TEXT DEFAULT CURRENT_TIMESTAMP)', False),
    ("CREATE TABLE t (a TEXT, UNIQUE (a) ON CONFLICT REPLACE)", False),
    ("CREATE TABLE t (a INT, b INT, CONSTRAINT ck CHECK (a > b), FOREIGN KEY(a) REFERENCES parent(id))", True),
    ("CREATE TABLE t (a INT, b INT, FOREIGN KEY(a)REFERENCES parent (id))", False),
    ("CREATE TABLE t (a INT, b INT, CONSTRAINT ck CHECK (a > b), FOREIGN KEY(a) REFERENCES parent (id))", True),
    ("CREATE TABLE t (a INT NOT NULL, b INT CONSTRAINT nn NOT NULL CHECK (b > 0))", False),
    ("CREATE TABLE t (\xe9 INT, \"\xfc\" TEXT)", False),
    ('CREATE TABLE "CamelCase" ("Id" INTEGER NOT NULL, "Name" VARCHAR(20), PRIMARY KEY ("Id"), UNIQUE ("Name"))', True),
    ("CREATE TABLE t (a INT, b INT, c INT, CHECK (a IN (1, (2 + (3 * (4))))), CHECK (b > 0 OR c > 0))", True),
    ("CREATE TABLE t (a INT, CHECK (a IN (1, (2 + (3 * (4 + (5 * (6 + (7)))))))))", False),
    ("CREATE TABLE t (a INT, CHECK (a IN (1, 2)) , CHECK(a<>3),CONSTRAINT\tck_t\tCHECK\t(a<>4))", True),
    ("CREATE TABLE t (a INT PRIMARY KEY CHECK (a > 0) CONSTRAINT named_ck CHECK (a < 9) DEFAULT 1)", True),
]


@pytest.mark.parametrize(("create", "plain"), TRICKY, ids=[str(number) for number in range(len(TRICKY))])
def test_tricky_texts_read_alike(conn: sa.Connection, create: str, plain: bool) -> None:
    _create(conn, PARENT, create)
    assert_same_both_ways(conn)
    table = next(name for name in reflect_sqlite._fetch(conn, "main").table_sql if name != "parent")
    assert (table in plain_tables(conn)) == plain


def test_index_lists_made_from_sqlite_master_are_the_pragmas(conn: sa.Connection) -> None:
    """Without WITHOUT ROWID tables or expression indexes, ``sqlite_master`` lists the indexes the pragma lists."""
    _create(
        conn,
        PARENT,
        "CREATE TABLE t (id TEXT PRIMARY KEY, a TEXT UNIQUE, b INT, c INT, UNIQUE (b, c), UNIQUE (c))",
        "create  unique index if not exists ux ON t (a, b)",
        'CREATE INDEX "ix t" ON t (b DESC) WHERE b > 0',
        "CREATE TABLE plain (id INTEGER PRIMARY KEY, v INT)",
    )
    catalogue = reflect_sqlite._fetch(conn, "main")
    assert not reflect_sqlite._needs_index_list(catalogue, [])
    for table in ("parent", "t", "plain"):
        pragma = {(row[1], row[2]) for row in conn.exec_driver_sql(f'PRAGMA index_list("{table}")')}
        assert {(row[1], row[2]) for row in catalogue.get("index_list", table)} == pragma
    assert_same_both_ways(conn)


@pytest.mark.parametrize(
    "create",
    ["CREATE TABLE w (a INT PRIMARY KEY, b INT UNIQUE) WITHOUT ROWID", "CREATE INDEX ix ON parent (lower(code))"],
)
def test_index_lists_come_from_the_pragma_when_sqlite_master_lacks_some(conn: sa.Connection, create: str) -> None:
    _create(conn, PARENT, create)
    catalogue = reflect_sqlite._fetch(conn, "main")
    for table in catalogue.tables:
        pragma = [row[:5] for row in conn.exec_driver_sql(f'PRAGMA index_list("{table}")')]
        assert [row[:5] for row in catalogue.get("index_list", table)] == pragma
        for row in pragma:
            info = [tuple(info) for info in conn.exec_driver_sql(f'PRAGMA index_info("{row[1]}")')]
            assert [info[:3] for info in catalogue.get("index_info", row[1])] == info
    assert_same_both_ways(conn)


def test_expression_and_partial_indexes_read_alike(conn: sa.Connection) -> None:
    _create(
        conn,
        PARENT,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INT, CONSTRAINT uq_a UNIQUE (a))",
        "CREATE INDEX ix_expr ON t (lower(a), b)",
        "CREATE INDEX ix_desc ON t (b DESC, a)",
        "CREATE UNIQUE INDEX ix_part ON t (b) WHERE b > 0",
        "CREATE INDEX ix_plain ON t (a COLLATE NOCASE)",
    )
    raw = assert_same_both_ways(conn)
    assert "t" in plain_tables(conn)
    assert [index["name"] for index in raw.indexes["t"]] == ["ix_desc", "ix_part", "ix_plain", "ix_expr"]


def test_types_warn_as_often_both_ways(conn: sa.Connection) -> None:
    """A foreign key without referred columns makes SQLAlchemy read the referred table's columns (types warn)."""
    _create(
        conn,
        "CREATE TABLE a_child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES m_parent)",
        "CREATE TABLE m_parent (id INTEGER(5) PRIMARY KEY, v INTEGER(7))",
        "CREATE TABLE z_child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES m_parent)",
    )
    assert_same_both_ways(conn)
    assert plain_tables(conn) == {"m_parent"}
    assert len(_read(conn, True)[1]) == 2


def test_attached_database_reads_alike(conn: sa.Connection, tmp_path: Path) -> None:
    conn.exec_driver_sql(f"ATTACH DATABASE '{tmp_path / 'aux.db'}' AS aux")
    _create(
        conn,
        "CREATE TABLE aux.parent (id INTEGER PRIMARY KEY, code TEXT UNIQUE)",
        "CREATE TABLE aux.child (\n\tid INTEGER NOT NULL, \n\tp INTEGER, \n\tPRIMARY KEY (id), \n"
        "\tCONSTRAINT fk FOREIGN KEY(p) REFERENCES parent (id) ON DELETE CASCADE\n)",
        "CREATE INDEX aux.ix_child_p ON child (p DESC)",
    )
    raw = assert_same_both_ways(conn, "aux")
    assert raw.foreign_keys["child"][0]["referred_schema"] == "aux"
    assert raw.foreign_keys["child"][0]["name"] == "fk"


# -- tables SQLAlchemy creates, and texts SQLite rewrites ----------------------------------------


def _metadata() -> sa.MetaData:
    convention = {"ck": "ck_%(table_name)s_%(constraint_name)s", "uq": "uq_%(table_name)s_%(column_0_N_name)s"}
    metadata = sa.MetaData(naming_convention=convention)
    sa.Table(
        "Parent Table",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("Code", sa.String(10), unique=True),
        sa.Column("kind", sa.String(5), sa.CheckConstraint("kind IN ('a', 'b')", name="kind")),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "child",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "parent_id",
            sa.Integer,
            sa.ForeignKey("Parent Table.id", ondelete="CASCADE", deferrable=True, initially="DEFERRED"),
        ),
        sa.Column("code", sa.String(10), sa.ForeignKey("Parent Table.Code", name="fk, named", onupdate="SET NULL")),
        sa.Column("qty", sa.Numeric(12, 2), server_default="0", nullable=False),
        sa.Column("note", sa.Text, server_default=sa.text("'a, (b)'")),
        sa.Column("at", sa.DateTime, server_default=sa.func.current_timestamp()),
        sa.Column("flag", sa.Boolean, sa.CheckConstraint("flag IN (0, 1)", name="flag")),
        sa.Column("select", sa.Integer),
        sa.Column("twice", sa.Integer, sa.Computed("qty * 2")),
        sa.UniqueConstraint("code", "qty"),
        sa.CheckConstraint("qty >= 0", name="qty_positive"),
        sa.Index("ix_child_note", "note", sqlite_where=sa.text("note IS NOT NULL")),
    )
    sa.Table(
        "keyed",
        metadata,
        sa.Column("a", sa.String(5), primary_key=True),
        sa.Column("b", sa.Integer, primary_key=True),
        sa.Column("c", sa.Integer, unique=True),
        sqlite_with_rowid=False,
    )
    sa.Table("plain", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.JSON))
    return metadata


def test_tables_created_by_sqlalchemy_read_alike(conn: sa.Connection) -> None:
    _metadata().create_all(conn)
    conn.commit()
    raw = assert_same_both_ways(conn)
    assert plain_tables(conn) == {"Parent Table", "keyed", "plain"}  # `child` has a computed column
    assert raw.primary_keys["keyed"]["constrained_columns"] == ["a", "b"]


def test_texts_rewritten_by_alter_table_read_alike(conn: sa.Connection) -> None:
    metadata = _metadata()
    metadata.remove(metadata.tables["child"])
    metadata.create_all(conn)
    _create(
        conn,
        "CREATE TABLE other (\n\tid INTEGER NOT NULL, \n\tp INTEGER, \n\tPRIMARY KEY (id), \n"
        '\tCONSTRAINT fk_p FOREIGN KEY(p) REFERENCES "Parent Table" (id)\n)',
        'ALTER TABLE "Parent Table" ADD COLUMN added INTEGER DEFAULT 3',
        "ALTER TABLE \"Parent Table\" ADD COLUMN \"two words\" TEXT DEFAULT 'x, y' NOT NULL",
        "ALTER TABLE plain ADD COLUMN later VARCHAR(10)",
        "ALTER TABLE plain RENAME COLUMN v TO \"V 2\"",
        'ALTER TABLE "Parent Table" RENAME TO renamed',
        "ALTER TABLE keyed ADD COLUMN d INT CHECK (d > 0)",
        "ALTER TABLE other RENAME COLUMN p TO parent",
    )
    sql = reflect_sqlite._fetch(conn, "main").table_sql
    assert ", added INTEGER DEFAULT 3" in sql["renamed"] and 'REFERENCES "renamed"' in sql["other"]
    assert_same_both_ways(conn)
    assert plain_tables(conn) == {"renamed", "keyed", "plain", "other"}


# -- random texts ---------------------------------------------------------------------------------

NAMES = ["a", "b2", "col_x", "Mixed", '"with space"', '"a,b"', '"Up"', "checked", "is_primary",
         "unique_code", "my_constraint", "x_foreign", "[br]", "`bt`", '"q""q"', '"check"']
TYPES = ["INTEGER", "TEXT", "VARCHAR(10)", "NUMERIC(12, 2)", "DOUBLE PRECISION", "BLOB", "", "BOOLEAN"]
DEFAULTS = ["0", "-1", "1.5", "'x'", "'a, b'", "'it''s'", "'CHECK (x)'", "(1 + 2)", "CURRENT_TIMESTAMP", "X'0A'",
            "NULL", "('(')", '"dq"']
EXPRESSIONS = ["{c} > 0", "{c} IN (1, 2)", "length({c}) < 5", "({c} <> 'x, y')", "{c} IS NOT NULL AND ({c} > (0))",
               "{c} <> ')'", "{c} <> 'unique'"]
ACTIONS = ["", " ON DELETE CASCADE", " ON UPDATE SET NULL ON DELETE SET DEFAULT", " ON DELETE NO ACTION",
           " DEFERRABLE INITIALLY DEFERRED", " NOT DEFERRABLE", " ON DELETE RESTRICT DEFERRABLE",
           " INITIALLY DEFERRED", " MATCH SIMPLE"]


def _random_table(rng: random.Random, name: str) -> str:
    """A CREATE TABLE text from a mix of the forms SQLAlchemy writes and hand-written oddities.

    Half the texts use only plain names and the layout SQLAlchemy writes, so that many
    take the fast path; the other half mixes in everything else.
    """
    odd = rng.random() < 0.5
    names = NAMES if odd else [n for n in NAMES if n[0] not in "[`" and "unique" not in n and n[-7:] != "foreign"
                               and "constraint" not in n and '""' not in n and n != '"check"']
    columns = rng.sample(names, rng.randint(1, min(6, len(names))))
    key_done = False
    elements = []
    for column in columns:
        parts = [column, rng.choice(TYPES if odd else TYPES[:-2])]
        for _ in range(rng.randint(0, 3)):
            kind = rng.choice(["notnull", "default", "pk", "unique", "check", "ref", "collate", "null"])
            if kind == "notnull":
                parts.append("NOT NULL")
            elif kind == "null":
                parts.append("NULL")
            elif kind == "default":
                parts.append("DEFAULT " + rng.choice(DEFAULTS))
            elif kind == "pk" and not key_done:
                key_done = True
                suffix = rng.choice(["", " AUTOINCREMENT" if parts[1] == "INTEGER" else "", " DESC"])
                parts.append("PRIMARY KEY" + suffix)
            elif kind == "unique" and odd:
                parts.append("UNIQUE")
            elif kind == "check":
                named = rng.choice(["", f"CONSTRAINT ck_{rng.randint(0, 99)} ", 'CONSTRAINT "ck q" '])
                parts.append(f"{named}CHECK ({rng.choice(EXPRESSIONS).format(c=column)})")
            elif kind == "ref" and odd:
                parts.append("REFERENCES parent" + rng.choice(["", " (id)", ' ("Other Id")']))
            elif kind == "collate":
                parts.append("COLLATE " + rng.choice(["NOCASE", '"NOCASE"', "binary"]))
        elements.append(" ".join(part for part in parts if part))
    for _ in range(rng.randint(0, 4)):
        some = ", ".join(rng.sample(columns, rng.randint(1, min(2, len(columns)))))
        named = rng.choice(["", f"CONSTRAINT c{rng.randint(0, 999)} ", 'CONSTRAINT "c q" ', "constraint lower_c "])
        kind = rng.choice(["pk", "unique", "check", "fk", "fk"])
        if kind == "pk" and not key_done:
            key_done = True
            elements.append(f"{named}PRIMARY KEY ({some})")
        elif kind == "unique":
            elements.append(f"{named}UNIQUE ({some})")
        elif kind == "check":
            elements.append(f"{named}CHECK ({rng.choice(EXPRESSIONS).format(c=columns[0])})")
        elif kind == "fk":
            referred = rng.choice(["", " (id)", " (id)", "(id)", ' ("Other Id")'])
            space = rng.choice([" ", ""])
            if not odd:
                referred = referred or " (id)"
            actions = rng.choice(ACTIONS if odd else ACTIONS[:-2])
            elements.append(f"{named}FOREIGN KEY{space}({columns[0]}) REFERENCES parent{referred}{actions}")
    layout = rng.choice(["sqlalchemy", "sqlalchemy", "line", "loose", "comments"] if odd else ["sqlalchemy"])
    if layout == "sqlalchemy":
        body = "\n\t" + ", \n\t".join(elements) + "\n"
    elif layout == "line":
        body = ", ".join(elements)
    elif layout == "loose":
        body = "\n  " + "\n  , ".join(elements) + "\n"
    else:
        body = "\n" + ",\n".join(f"  {element} -- note, UNIQUE (x)" for element in elements) + "\n/* end */"
    tail = rng.choice(["", "", " WITHOUT ROWID" if key_done else "", " STRICT"])
    text = f"CREATE TABLE {name} ({body}){tail}"
    return text.lower() if rng.random() < 0.15 else text


@pytest.mark.parametrize("seed", range(8))
def test_random_texts_read_alike(conn: sa.Connection, seed: int) -> None:
    rng = random.Random(seed)
    _create(conn, PARENT)
    created = 0
    for number in range(60):
        try:
            _create(conn, _random_table(rng, f"r{number}"))
        except sa.exc.DBAPIError:  # SQLite refused the combination
            conn.rollback()
            continue
        created += 1
        if rng.random() < 0.2:
            try:
                _create(conn, f"ALTER TABLE r{number} ADD COLUMN added_{number} TEXT DEFAULT 'v, w'")
            except sa.exc.DBAPIError:
                conn.rollback()
    assert created > 20
    assert_same_both_ways(conn)
    assert len(plain_tables(conn)) > 10


def _texts() -> list[str]:
    """CREATE TABLE texts of every kind these tests make (random ones with SQLAlchemy's layout included)."""
    rng = random.Random(99)
    texts = [create for create, _ in TRICKY] + [_random_table(rng, f"r{number}") for number in range(1000)]
    dialect = sqlite.dialect()
    texts += [str(sa.schema.CreateTable(t).compile(dialect=dialect)).strip() for t in _metadata().tables.values()]
    added = [text.replace("\n\tPRIMARY KEY", ", added INTEGER DEFAULT 3, \n\tPRIMARY KEY") for text in texts]
    return texts + [text for text in added if "added" in text]


def test_line_layout_reads_as_the_whole_text() -> None:
    """A text `_line_clauses` reads is one `_TABLE` accepts, and it finds the clauses found in the whole text."""
    read_by_lines = 0
    for text in _texts():
        if not text.isascii():
            continue
        by_lines = reflect_sqlite._line_clauses(text, {})
        if by_lines is None:
            continue
        read_by_lines += 1
        lower = text.lower()
        assert reflect_sqlite._TABLE.fullmatch(lower), text
        whole = reflect_sqlite._clauses(text, lower)
        assert [(line[slice(*m.span())].strip(" \t"), m.groups()) for line, m in by_lines] == [
            (sql[slice(*m.span())].strip(" \t"), m.groups()) for sql, m in whole
        ], text
    assert read_by_lines > 100


# -- the scenario corpus -------------------------------------------------------------------------


def test_scenario_models_read_alike(tmp_path: Path) -> None:
    from databases.test_reflect_equivalence import LABELS, MODELS, _metadata as corpus_metadata

    plain = total = 0
    for label in LABELS:
        if "sqlite" not in MODELS[label][1]:
            continue
        engine = sa.create_engine(f"sqlite:///{tmp_path / label}.db", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                corpus_metadata(label).create_all(connection)
                connection.commit()
                assert_same_both_ways(connection)
                plain += len(plain_tables(connection))
                total += len(reflect_sqlite._fetch(connection, "main").tables)
        finally:
            engine.dispose()
    assert plain > 0.9 * total
