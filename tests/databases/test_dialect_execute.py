"""Compiled SQL run on real databases: each operation kind works and keeps the rows; the lock excludes.

Every backend (SQLite, PostgreSQL, MariaDB) runs the same scenarios through
`Dialect.compile`, one commit per operation, checking the stored rows after each
step; table and enum names are unique per test so tests never share objects.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from decimal import Decimal
from typing import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from schemashift import operations as ops
from schemashift.dialects import get_dialect
from schemashift.dialects.base import Dialect
from schemashift.dialects.mysql.dialect import MySQLDialect
from schemashift.errors import LockTimeout
from schemashift.model.schema import (
    CheckConstraint,
    Column,
    Computed,
    ForeignKey,
    Identity,
    Index,
    PrimaryKey,
    Schema,
    Table,
    UniqueConstraint,
)
from schemashift.model.types import Type

INT = Type("integer")


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[sa.Engine]:
    """An engine whose connections really close (session locks end with them)."""
    engine = sa.create_engine(db_url, poolclass=NullPool)
    yield engine
    engine.dispose()


class Runner:
    """Compiles operations for the connection's database and runs them, one commit each."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.dialect: Dialect = get_dialect(connection.dialect.name)
        self.schema = Schema()

    def run(self, *operations: ops.Operation) -> None:
        for operation in operations:
            after = operation.apply(self.schema)
            for statement in self.dialect.compile(operation, self.schema, after):
                self.connection.exec_driver_sql(statement)
            self.connection.commit()
            self.schema = after

    def rows(self, table: str, *columns: str) -> list[tuple[object, ...]]:
        names = ", ".join(self.dialect.quote(c) for c in columns)
        result = self.connection.exec_driver_sql(f"SELECT {names} FROM {self.dialect.quote(table)} ORDER BY 1").all()
        self.connection.commit()
        return [tuple(row) for row in result]

    def insert(self, table: str, columns: str, values: str) -> None:
        self.connection.exec_driver_sql(f"INSERT INTO {table} ({columns}) VALUES {values}")
        self.connection.commit()

    def inspect(self) -> sa.Inspector:
        return sa.inspect(self.connection)


@pytest.fixture
def runner(engine: sa.Engine) -> Iterator[Runner]:
    with engine.connect() as connection:
        yield Runner(connection)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"


def library(authors: str, books: str, status: str) -> tuple[Table, Table]:
    """An authors table and a books table with every kind of key, constraint and index."""
    author_table = Table(
        authors,
        (Column("id", INT, nullable=False, autoincrement=True), Column("name", Type("string", length=50), nullable=False)),
        primary_key=PrimaryKey(("id",)),
    )
    book_table = Table(
        books,
        (
            Column("id", INT, nullable=False, autoincrement=True),
            Column("title", Type("string", length=100), nullable=False),
            Column("author_id", INT),
            Column("status", Type("enum", values=("draft", "published"), name=status), default="'draft'"),
            Column("price", Type("numeric", precision=10, scale=2)),
            Column("code", Type("string", length=10)),
        ),
        primary_key=PrimaryKey(("id",)),
        indexes=(Index(f"ix_{books}_title", ("title",)),),
        uniques=(UniqueConstraint(("title", "author_id"), f"uq_{books}"),),
        foreign_keys=(ForeignKey(("author_id",), authors, ("id",), f"fk_{books}"),),
        checks=(CheckConstraint("price >= 0", f"ck_{books}"),),
    )
    return author_table, book_table


def test_every_operation_keeps_the_rows(runner: Runner) -> None:
    authors, books, status = unique("au"), unique("bk"), unique("st")
    author_table, book_table = library(authors, books, status)
    runner.run(ops.CreateTable(author_table), ops.CreateTable(book_table))
    runner.insert(authors, "id, name", "(1, 'Ann'), (2, 'Bob')")
    runner.insert(books, "id, title, author_id, status, price, code",
                  "(1, 'Alpha', 1, 'draft', 10.50, '7'), (2, 'Beta', 2, 'published', 3.00, '42')")
    expected = [(1, "Alpha", 1, Decimal("10.50")), (2, "Beta", 2, Decimal("3.00"))]
    assert runner.rows(books, "id", "title", "author_id", "price") == expected

    runner.run(ops.AddColumn(books, Column("pages", INT, nullable=False, default="0", comment="page count")))
    assert runner.rows(books, "id", "pages") == [(1, 0), (2, 0)]
    runner.run(ops.AddColumn(books, Column("added", Type("datetime"), default="CURRENT_TIMESTAMP")))  # SQLite: rebuild
    runner.run(ops.AlterColumn(books, "price", Column("price", Type("numeric", precision=12, scale=2), nullable=False)))
    runner.run(ops.AlterColumn(books, "code", Column("code", INT)))
    assert runner.rows(books, "id", "code", "price") == [(1, 7, Decimal("10.50")), (2, 42, Decimal("3.00"))]
    runner.run(ops.AddColumn(books, Column("twice", INT, computed=Computed("code * 2"))))
    assert runner.rows(books, "id", "twice") == [(1, 14), (2, 84)]
    runner.run(ops.AlterColumn(books, "title", Column("title", Type("string", length=200), nullable=False, comment="name")))
    runner.run(ops.RenameColumn(books, "title", "name"))
    assert runner.rows(books, "id", "name") == [(1, "Alpha"), (2, "Beta")]

    runner.run(ops.CreateIndex(books, Index(f"ix_{books}_price", ("price", "id"), unique=True)),
               ops.RenameIndex(books, f"ix_{books}_price", f"ix_{books}_cost"),
               ops.DropIndex(books, f"ix_{books}_title"))
    indexes = {i["name"] for i in runner.inspect().get_indexes(books)}
    assert f"ix_{books}_cost" in indexes and f"ix_{books}_title" not in indexes

    runner.run(ops.AddConstraint(books, CheckConstraint("price < 1000", f"ck_{books}_max")),
               ops.DropConstraint(books, f"ck_{books}"),
               ops.DropConstraint(books, f"fk_{books}"),
               ops.DropConstraint(books, f"uq_{books}"),
               ops.AddConstraint(books, UniqueConstraint(("name",), f"uq_{books}_name")),
               ops.AddConstraint(books, ForeignKey(("author_id",), authors, ("id",), f"fk_{books}_author")))
    assert [fk["name"] for fk in runner.inspect().get_foreign_keys(books)] == [f"fk_{books}_author"]
    assert runner.rows(books, "id", "name", "author_id") == [(1, "Alpha", 1), (2, "Beta", 2)]

    assert runner.rows(books, "id", "twice") == [(1, 14), (2, 84)]  # SQLite rebuilds recompute it
    runner.run(ops.DropColumn(books, "pages"), ops.DropColumn(books, "twice"), ops.RenameTable(books, f"{books}_v"))
    assert runner.rows(f"{books}_v", "id", "name", "code") == [(1, "Alpha", 7), (2, "Beta", 42)]
    runner.run(ops.DropTable(f"{books}_v"), ops.DropTable(authors))
    assert not {authors, books, f"{books}_v"} & set(runner.inspect().get_table_names())


def test_primary_key_drop_and_add_keep_the_rows(runner: Runner) -> None:
    name = unique("pk")
    table = Table(name, (Column("id", INT, nullable=False), Column("v", INT)), primary_key=PrimaryKey(("id",), f"pk_{name}"))
    runner.run(ops.CreateTable(table))
    runner.insert(name, "id, v", "(1, 10), (2, 20)")
    runner.run(ops.DropConstraint(name, f"pk_{name}"))
    assert runner.inspect().get_pk_constraint(name)["constrained_columns"] == []
    runner.run(ops.AddConstraint(name, PrimaryKey(("id", "v"), f"pk_{name}")))
    assert runner.inspect().get_pk_constraint(name)["constrained_columns"] == ["id", "v"]
    assert runner.rows(name, "id", "v") == [(1, 10), (2, 20)]


def test_enum_values_added_removed_and_dropped(runner: Runner) -> None:
    name, status = unique("en"), unique("st")
    kind = Type("enum", values=("draft", "published"), name=status)
    table = Table(name, (Column("id", INT, nullable=False), Column("status", kind, default="'draft'")), primary_key=PrimaryKey(("id",)))
    runner.run(ops.CreateTable(table))
    runner.insert(name, "id, status", "(1, 'draft'), (2, 'published')")

    runner.run(ops.AlterColumn(name, "status", Column("status", kind.evolve(values=("new", "draft", "published", "gone")),
                                                      default="'draft'")))
    runner.insert(name, "id, status", "(3, 'gone'), (4, 'new')")
    runner.connection.exec_driver_sql(f"DELETE FROM {name} WHERE id = 4")
    runner.connection.commit()
    runner.run(ops.AlterColumn(name, "status", Column("status", kind.evolve(values=("draft", "published", "gone")),
                                                      default="'published'")))
    assert runner.rows(name, "id", "status") == [(1, "draft"), (2, "published"), (3, "gone")]
    runner.insert(name, "id", "(5)")
    assert runner.rows(name, "id", "status")[-1] == (5, "published")

    runner.run(ops.AlterColumn(name, "status", Column("status", Type("string", length=20), nullable=False, default="'draft'")))
    assert runner.rows(name, "id", "status") == [(1, "draft"), (2, "published"), (3, "gone"), (5, "published")]
    runner.run(ops.DropTable(name))
    if runner.dialect.native_enum:
        found = runner.connection.exec_driver_sql(f"SELECT count(*) FROM pg_type WHERE typname = '{status}'").scalar()
        assert found == 0


def test_not_null_with_default_fills_nulls_and_keeps_referencing_tables(runner: Runner) -> None:
    parent, child = unique("par"), unique("chi")
    note = Type("string", length=20)
    runner.run(ops.CreateTable(Table(parent, (Column("id", INT, nullable=False), Column("note", note)),
                                     primary_key=PrimaryKey(("id",)), indexes=(Index(f"ix_{parent}", ("note",)),))),
               ops.CreateTable(Table(child, (Column("id", INT, nullable=False), Column("parent_id", INT)),
                                     primary_key=PrimaryKey(("id",)),
                                     foreign_keys=(ForeignKey(("parent_id",), parent, ("id",), f"fk_{child}"),))))
    runner.insert(parent, "id, note", "(1, NULL), (2, 'kept')")
    runner.insert(child, "id, parent_id", "(1, 1), (2, 2)")
    runner.run(ops.AlterColumn(parent, "note", Column("note", note, nullable=False, default="'none'")))
    assert runner.rows(parent, "id", "note") == [(1, "none"), (2, "kept")]
    assert [i["name"] for i in runner.inspect().get_indexes(parent)] == [f"ix_{parent}"]
    assert runner.inspect().get_foreign_keys(child)[0]["referred_table"] == parent
    assert runner.rows(child, "id", "parent_id") == [(1, 1), (2, 2)]


def test_postgresql_identity_serial_and_schema(runner: Runner) -> None:
    if runner.dialect.name != "postgresql":
        pytest.skip("identity columns and schemas: PostgreSQL")
    space, name = unique("sch"), unique("idn")
    runner.connection.exec_driver_sql(f"CREATE SCHEMA {space}")
    table = Table(name, (Column("id", INT, nullable=False, autoincrement=True), Column("v", INT)),
                  primary_key=PrimaryKey(("id",)), schema=space, comment="numbers")
    runner.run(ops.CreateTable(table))
    runner.insert(f"{space}.{name}", "v", "(10), (20)")
    runner.run(ops.AlterColumn(name, "id", table.column("id").evolve(identity=Identity()), schema=space))
    runner.insert(f"{space}.{name}", "v", "(30)")
    rows = runner.connection.exec_driver_sql(f"SELECT id, v FROM {space}.{name} ORDER BY id").all()
    assert [tuple(r) for r in rows] == [(1, 10), (2, 20), (3, 30)]
    runner.run(ops.AddColumn(name, Column("w", INT, comment="added"), schema=space),
               ops.AlterColumn(name, "w", Column("w", Type("bigint"), default="5", comment=None), schema=space),
               ops.RenameTable(name, f"{name}_r", schema=space),
               ops.DropTable(f"{name}_r", schema=space))
    runner.connection.exec_driver_sql(f"DROP SCHEMA {space}")
    runner.connection.commit()


# --- locking -------------------------------------------------------------------------------------------------------


def test_second_connection_waits_then_times_out(engine: sa.Engine) -> None:
    dialect, name = get_dialect(engine.dialect.name), unique("lock")
    with engine.connect() as first, engine.connect() as second:
        with dialect.lock(first, name, 1):
            with first.begin():  # the lock outlives the holder's own transactions
                first.exec_driver_sql("SELECT 1")
            started = time.monotonic()
            with pytest.raises(LockTimeout, match="could not take the migration lock"):
                with dialect.lock(second, name, 0.3):
                    pass
            assert 0.25 <= time.monotonic() - started < 3
        with dialect.lock(second, name, 1):
            second.exec_driver_sql("SELECT 1")
            second.commit()


def test_other_lock_names_do_not_block(engine: sa.Engine) -> None:
    dialect = get_dialect(engine.dialect.name)
    if dialect.rebuilds_tables:
        pytest.skip("SQLite has one lock file per database, whatever the name")
    with engine.connect() as first, engine.connect() as second:
        with dialect.lock(first, unique("lock"), 1), dialect.lock(second, unique("lock"), 0):
            pass


def test_mysql_lock_names_short_and_long(engine: sa.Engine) -> None:
    """One statement takes `<database>:<name>`; a name past the server's 64 characters is hashed as before."""
    dialect = get_dialect(engine.dialect.name)
    if dialect.name not in ("mysql", "mariadb"):
        pytest.skip("GET_LOCK names: MariaDB/MySQL")
    with engine.connect() as first, engine.connect() as second:
        database = first.exec_driver_sql("SELECT DATABASE()").scalar()
        first.commit()
        for name in (unique("lock"), unique("lock") + "x" * 80):
            held = MySQLDialect._lock_name(f"{database}:{name}")
            with dialect.lock(first, name, 1):
                assert first.exec_driver_sql(f"SELECT IS_USED_LOCK('{held}')").scalar() is not None
                first.commit()
                with pytest.raises(LockTimeout), dialect.lock(second, name, 0):
                    pass
            assert first.exec_driver_sql(f"SELECT IS_USED_LOCK('{held}')").scalar() is None
            first.commit()


def test_killed_holder_leaves_no_lock(engine: sa.Engine) -> None:
    name = unique("lock")
    url = engine.url.render_as_string(hide_password=False)
    script = (
        "import sys, sqlalchemy as sa\n"
        "from schemashift.dialects import get_dialect\n"
        "engine = sa.create_engine(sys.argv[1])\n"
        "with engine.connect() as connection, get_dialect(engine.dialect.name).lock(connection, sys.argv[2], 5):\n"
        "    print('locked', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, url, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        dialect = get_dialect(engine.dialect.name)
        with engine.connect() as connection:
            with pytest.raises(LockTimeout):
                with dialect.lock(connection, name, 0.1):
                    pass
            holder.kill()
            holder.wait(10)
            with dialect.lock(connection, name, 10):
                pass
    finally:
        holder.kill()
        holder.wait(10)


def test_sqlite_memory_needs_no_lock() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as first, engine.connect() as second:
        with get_dialect("sqlite").lock(first, "x", 0), get_dialect("sqlite").lock(second, "x", 0):
            pass
