"""`repair` and `upgrade` never destroy what the run did not create (issue 12, data loss items 1 and 4).

* A table that already exists with a column of its own (`item(id, legacy)` with
  a row) and a migration that creates `item(id, name)`: `upgrade` fails; `repair
  undo` and `repair continue` keep `legacy` and its row (before the fix they
  dropped the column, then the table, with no backup).
* A database built by `create_all` or by Alembic, with no schemashift history:
  `upgrade` stops before its first statement (exit 2, one line pointing to
  `schemashift baseline`), and leaves everything as it was.
* A failure inside a step after its first statements ran (MariaDB error 1071 on
  a CREATE INDEX after the CREATE TABLE; a unique CREATE INDEX CONCURRENTLY on
  PostgreSQL): `repair undo` leaves nothing behind, `repair continue` works once
  the cause is fixed.
* `repair.locate` after a crash looks only at the objects of the interrupted
  operation and never proposes to drop anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import schemashift
from helpers import cli, execute, fetch_rows, scalar, write_project
from schemashift import api
from schemashift.dialects import get_dialect
from schemashift.errors import SchemashiftError
from schemashift.migration import (
    Column, CreateIndex, CreateTable, ExecuteSQL, Index, PrimaryKey, Table, Type,
)
from schemashift.operations import AddColumn, DropTable
from schemashift.planning.plan import up_step
from schemashift.runtime.repair import RepairRefused, locate
from schemashift.model.schema import Schema
from schemashift.history.writer import write_migration
from schemashift.runtime.versions import AppliedRevision

EMPTY_MODELS = """
from sqlalchemy.orm import DeclarativeBase

class Base(DeclarativeBase):
    pass
"""
INTEGER = Type("integer")
#: On PostgreSQL this makes a step journaled (CREATE INDEX CONCURRENTLY cannot run in a transaction).
CONCURRENTLY = (("postgresql_concurrently", "true"),)


def _id() -> Column:
    return Column("id", INTEGER, nullable=False, autoincrement=True)


def _migrate(directory: Path, message: str, *operations: Any) -> str:
    history = api.open_project(directory / "schemashift.toml").history()
    return write_migration(directory / "migrations", message, list(operations), parent=history.head).revision


def _backend(url: str) -> str:
    return sa.make_url(url).get_backend_name()


def _tables(url: str) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return sorted(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()


def _current(directory: Path) -> str | None:
    project = api.open_project(directory / "schemashift.toml")
    with project.connect() as connection:
        return api.current_revision(project.recorder(connection).applied(), project.history())


def _legacy_kept(url: str, table: str = "item") -> None:
    assert fetch_rows(url, f"SELECT id, legacy FROM {table}") == [(1, "keep me")]


# -- 1. a table that was there before ------------------------------------------------------


def test_existing_table_survives_failed_upgrade_and_both_repairs(fresh_db: str, tmp_path: Path) -> None:
    """`item(id, legacy)` with a row is there; the migration creates `item(id, name)`: nothing of it is lost."""
    url, backend = fresh_db, _backend(fresh_db)
    directory = write_project(tmp_path, url, EMPTY_MODELS)
    first = _migrate(directory, "first", CreateTable(Table("first", (_id(), Column("x", INTEGER)),
                                                           primary_key=PrimaryKey(("id",)))))
    cli(directory, "upgrade")
    execute(url, "CREATE TABLE item (id INTEGER PRIMARY KEY, legacy VARCHAR(20))",
            "INSERT INTO item (id, legacy) VALUES (1, 'keep me')")
    # on PostgreSQL the index built CONCURRENTLY makes the step journaled, and runs before the failure
    second = _migrate(directory, "item",
                      CreateIndex("first", Index("ix_first_x", ("x",), options=CONCURRENTLY)),
                      CreateTable(Table("item", (_id(), Column("name", Type("string", length=50))),
                                        primary_key=PrimaryKey(("id",)))))
    journaled = backend != "sqlite"
    failed = cli(directory, "upgrade", check=False)
    assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert ("PARTLY upgraded" in failed.stderr) == journaled, failed.stderr
    _legacy_kept(url)

    undone = cli(directory, "repair", "undo")
    assert ("Nothing to repair" in undone.stdout) != journaled, undone.stdout
    _legacy_kept(url)
    assert _current(directory) == first
    assert "ix_first_x" not in {i["name"] for i in sa.inspect(sa.create_engine(url)).get_indexes("first")}

    again = cli(directory, "upgrade", check=False)
    assert again.returncode == 2
    if journaled:
        refused = cli(directory, "repair", "continue", check=False)  # the cause is still there: fails again
        assert refused.returncode == 2 and "already exists" in refused.stderr, refused.stderr
        _legacy_kept(url)
    execute(url, "ALTER TABLE item RENAME TO item_legacy")  # the user fixes the cause
    cli(directory, "repair", "continue") if journaled else cli(directory, "upgrade")
    assert _current(directory) == second
    _legacy_kept(url, "item_legacy")
    assert [c["name"] for c in sa.inspect(sa.create_engine(url)).get_columns("item")] == ["id", "name"]


def test_existing_table_crash_variant_is_left_alone(fresh_db: str, tmp_path: Path) -> None:
    """The same failure recorded as a crash (`running`): repair still touches neither `legacy` nor its row."""
    url, backend = fresh_db, _backend(fresh_db)
    if backend == "sqlite":
        pytest.skip("SQLite runs every step in a transaction: nothing is journaled")
    directory = write_project(tmp_path, url, EMPTY_MODELS)
    first = _migrate(directory, "first", CreateTable(Table("first", (_id(), Column("x", INTEGER)),
                                                           primary_key=PrimaryKey(("id",)))))
    cli(directory, "upgrade")
    execute(url, "CREATE TABLE item (id INTEGER PRIMARY KEY, legacy VARCHAR(20))",
            "INSERT INTO item (id, legacy) VALUES (1, 'keep me')")
    second = _migrate(directory, "item",
                      CreateIndex("first", Index("ix_first_x", ("x",), options=CONCURRENTLY)),
                      CreateTable(Table("item", (_id(), Column("name", Type("string", length=50))),
                                        primary_key=PrimaryKey(("id",)))))
    assert cli(directory, "upgrade", check=False).returncode == 2
    execute(url, f"UPDATE schemashift_version SET state = 'running', running_statement = failed_statement, "
                 f"failed_statement = NULL WHERE revision = '{second}'")
    cli(directory, "repair", "undo")
    _legacy_kept(url)
    assert _current(directory) == first
    assert cli(directory, "upgrade", check=False).returncode == 2
    execute(url, f"UPDATE schemashift_version SET state = 'running' WHERE revision = '{second}'")
    assert cli(directory, "repair", "continue", check=False).returncode == 2
    _legacy_kept(url)


# -- 4. a failure after the first statements of an operation ---------------------------------------


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_mariadb_1071_after_create_table_is_undoable_and_continuable(fresh_db: str, tmp_path: Path) -> None:
    """CREATE TABLE ran, its CREATE INDEX failed (1071): undo leaves nothing; continue works once fixed.

    (MariaDB 10.11 turns a too long single-column UNIQUE index into ``USING HASH``
    and silently shortens a plain one; a two-column index over 3072 bytes fails.)
    """
    url = fresh_db
    execute(url, "ALTER DATABASE CHARACTER SET utf8mb4")
    directory = write_project(tmp_path, url, EMPTY_MODELS)
    text = Type("string", length=500)
    revision = _migrate(directory, "doc", CreateTable(Table(
        "doc", (_id(), Column("a", text), Column("b", text)), primary_key=PrimaryKey(("id",)),
        indexes=(Index("ix_doc_ab", ("a", "b")),))))
    failed = cli(directory, "upgrade", check=False)
    assert failed.returncode == 2 and "1071" in failed.stderr and "(1 of its statements ran)" in failed.stderr, failed.stderr

    undone = cli(directory, "repair", "undo")
    assert "drop table doc" in undone.stdout, undone.stdout
    assert _tables(url) == ["schemashift_version", "schemashift_version_history"]
    assert scalar(url, "SELECT count(*) FROM schemashift_version") == 0
    assert _current(directory) is None

    assert cli(directory, "upgrade", check=False).returncode == 2
    assert cli(directory, "repair", "continue", check=False).returncode == 2  # not fixed yet: fails again, same place
    assert scalar(url, "SELECT statements_done FROM schemashift_version") == 1
    execute(url, "ALTER TABLE doc MODIFY a VARCHAR(500) CHARACTER SET latin1, MODIFY b VARCHAR(500) CHARACTER SET latin1")
    cli(directory, "repair", "continue")
    assert _current(directory) == revision
    indexes = sa.inspect(sa.create_engine(url)).get_indexes("doc")
    assert [i["name"] for i in indexes] == ["ix_doc_ab"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_failed_concurrent_index_is_undoable_and_continuable(fresh_db: str, tmp_path: Path) -> None:
    """A unique CREATE INDEX CONCURRENTLY fails on duplicates after the table was created and filled.

    PostgreSQL leaves an INVALID index behind such a failure: it is dropped with
    the failure, so `repair continue` can build it again and `repair undo` leaves nothing.
    """
    url = fresh_db
    directory = write_project(tmp_path, url, EMPTY_MODELS)
    revision = _migrate(
        directory, "doc",
        CreateTable(Table("doc", (_id(), Column("a", Type("string", length=20))), primary_key=PrimaryKey(("id",)))),
        ExecuteSQL("INSERT INTO doc (a) VALUES ('x'), ('x')", reverse="DELETE FROM doc"),
        CreateIndex("doc", Index("ux_doc_a", ("a",), unique=True, options=CONCURRENTLY)))
    failed = cli(directory, "upgrade", check=False)
    assert failed.returncode == 2 and "PARTLY" in failed.stderr, failed.stderr
    assert scalar(url, "SELECT count(*) FROM pg_class WHERE relname = 'ux_doc_a'") == 0  # no invalid leftover

    cli(directory, "repair", "undo")
    assert _tables(url) == ["schemashift_version", "schemashift_version_history"]
    assert _current(directory) is None

    assert cli(directory, "upgrade", check=False).returncode == 2
    execute(url, "DELETE FROM doc WHERE id = (SELECT max(id) FROM doc)")  # the user fixes the cause
    cli(directory, "repair", "continue")
    assert _current(directory) == revision
    assert fetch_rows(url, "SELECT indisvalid FROM pg_index JOIN pg_class ON pg_class.oid = indexrelid "
                           "WHERE relname = 'ux_doc_a'") == [(True,)]


# -- a database that schemashift did not build -----------------------------------------------


APP_MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

class Base(DeclarativeBase):
    pass

class Author(Base):
    __tablename__ = "author"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(80), nullable=False, index=True)

class Book(Base):
    __tablename__ = "book"
    id = sa.Column(sa.Integer, primary_key=True)
    author_id = sa.Column(sa.ForeignKey("author.id"), nullable=False)
    title = sa.Column(sa.String(200))
"""


def _snapshot(url: str) -> dict[str, Any]:
    """Every table with its columns, keys, indexes and row count."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            found: dict[str, Any] = {}
            for name in sorted(inspector.get_table_names()):
                found[name] = {
                    "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                                for c in inspector.get_columns(name)],
                    "pk": inspector.get_pk_constraint(name)["constrained_columns"],
                    "fks": sorted((f["constrained_columns"], f["referred_table"]) for f in inspector.get_foreign_keys(name)),
                    "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                      for i in inspector.get_indexes(name)),
                    "rows": connection.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar(),
                }
            return found
    finally:
        engine.dispose()


def _built_by_create_all(url: str, directory: Path, *, alembic: bool) -> None:
    namespace: dict[str, Any] = {}
    exec(APP_MODELS, namespace)  # noqa: S102 - the test's own models
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        namespace["Base"].metadata.create_all(engine)
    finally:
        engine.dispose()
    statements = ["INSERT INTO author (id, name) VALUES (1, 'Ann')",
                  "INSERT INTO book (id, author_id, title) VALUES (1, 1, 'First')"]
    if alembic:
        statements += ["CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
                       "INSERT INTO alembic_version (version_num) VALUES ('1a2b3c4d5e6f')"]
    execute(url, *statements)


@pytest.mark.parametrize("alembic", [False, True], ids=["create_all", "alembic"])
def test_upgrade_refuses_a_database_it_did_not_build(fresh_db: str, tmp_path: Path, alembic: bool) -> None:
    url = fresh_db
    directory = write_project(tmp_path, url, APP_MODELS)
    _built_by_create_all(url, directory, alembic=alembic)
    cli(directory, "generate", "-m", "app")
    before = _snapshot(url)

    refused = cli(directory, "upgrade", check=False)
    assert refused.returncode == 2, refused
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert "2 table(s) not created by schemashift" in line and "author" in line and "book" in line, line
    assert "bring it under schemashift with `schemashift baseline` (or `schemashift stamp REV`)" in line, line
    assert ("alembic_version" in line) == alembic, line
    assert _snapshot(url) == before  # no version table, no record, nothing changed

    assert cli(directory, "upgrade", "--dry-run", check=False).returncode == 2
    status = cli(directory, "status", check=False)
    assert status.returncode == 2, status.stdout  # a problem needing action
    assert "not created by schemashift" in status.stdout and "schemashift baseline" in status.stdout, status.stdout
    assert "drop table" not in status.stdout, status.stdout

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with pytest.raises(SchemashiftError, match="schemashift baseline"):
            schemashift.upgrade(engine, config=directory / "schemashift.toml")
    finally:
        engine.dispose()
    assert _snapshot(url) == before


def test_upgrade_goes_on_beside_unrelated_tables(fresh_db: str, tmp_path: Path) -> None:
    """Tables the migrations never create (another application's) do not stop an upgrade from base."""
    url = fresh_db
    execute(url, "CREATE TABLE other_app (id INTEGER PRIMARY KEY, note VARCHAR(20))",
            "INSERT INTO other_app (id, note) VALUES (1, 'theirs')")
    directory = write_project(tmp_path, url, APP_MODELS)
    cli(directory, "generate", "-m", "app")
    cli(directory, "upgrade")
    assert fetch_rows(url, "SELECT id, note FROM other_app") == [(1, "theirs")]
    assert {"author", "book", "other_app"} <= set(_tables(url))


# -- locate: only the interrupted operation's objects ---------------------------------------------


def _row(state: str, done: int) -> AppliedRevision:
    return AppliedRevision("r1", None, "c", "m", None, None, state, "up", done, None, None, None)


class _Migration:
    revision, parent, message, checksum = "r1", None, "m", "c"
    path = Path("0001_m.py")

    def __init__(self, operations: list[Any]) -> None:
        self.operations = operations


DOC = Table("doc", (_id(), Column("a", Type("string", length=20))), primary_key=PrimaryKey(("id",)),
            indexes=(Index("ix_doc_a", ("a",)),))
UNRELATED = Table("zzz", (_id(),), primary_key=PrimaryKey(("id",)))


def _step(*operations: Any):  # type: ignore[no-untyped-def]
    return up_step(get_dialect("mysql"), _Migration(list(operations)), Schema())  # type: ignore[arg-type]


def test_locate_failed_first_statement_changes_nothing() -> None:
    step = _step(CreateTable(DOC))
    live = Schema.of([DOC.evolve(columns=(_id(), Column("legacy", INTEGER)), indexes=()), UNRELATED])
    position = locate(step, _row("failed", 0), live, get_dialect("mysql"))
    assert (position.ops_done, position.resume_at, position.finish, position.unwind) == (0, 0, [], [])


def test_locate_crash_on_a_table_that_was_there_leaves_it() -> None:
    step = _step(CreateTable(DOC))
    live = Schema.of([DOC.evolve(columns=(_id(), Column("legacy", INTEGER)), indexes=()), UNRELATED])
    position = locate(step, _row("running", 0), live, get_dialect("mysql"))
    assert (position.ops_done, position.resume_at, position.finish, position.unwind) == (0, 0, [], [])


def test_locate_crash_half_way_touches_only_that_table() -> None:
    step = _step(CreateTable(DOC))
    assert len(step.statements) == 2  # CREATE TABLE, CREATE INDEX
    live = Schema.of([DOC.evolve(indexes=()), UNRELATED])
    position = locate(step, _row("running", 1), live, get_dialect("mysql"))
    assert [type(op).__name__ for op in position.finish] == ["CreateIndex"]
    assert position.unwind == [DropTable("doc", definition=position.unwind[0].definition)]  # type: ignore[attr-defined]
    assert all(op.table_key == "doc" for op in position.finish + position.unwind)


def test_locate_refuses_to_drop_a_table_holding_foreign_columns() -> None:
    step = _step(CreateTable(DOC))
    live = Schema.of([DOC.evolve(columns=(*DOC.columns, Column("legacy", INTEGER)), indexes=())])
    with pytest.raises(RepairRefused, match="legacy"):
        locate(step, _row("failed", 1), live, get_dialect("mysql"))


def test_locate_ignores_drift_beside_an_added_column() -> None:
    base = Table("item", (_id(), Column("legacy", INTEGER)), primary_key=PrimaryKey(("id",)))
    migration = _Migration([AddColumn("item", Column("name", INTEGER))])
    step = up_step(get_dialect("mysql"), migration, Schema.of([base.evolve(columns=(_id(),))]))  # type: ignore[arg-type]
    position = locate(step, _row("running", 0), Schema.of([base, UNRELATED]), get_dialect("mysql"))
    assert (position.ops_done, position.finish, position.unwind) == (0, [], [])
    done = base.evolve(columns=(*base.columns, Column("name", INTEGER)))
    position = locate(step, _row("running", 0), Schema.of([done, UNRELATED]), get_dialect("mysql"))
    assert (position.ops_done, position.resume_at, position.finish, position.unwind) == (1, 1, [], [])



@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_undo_of_a_failed_downgrade_puts_the_rows_back(fresh_db: str, tmp_path: Path) -> None:
    """A downgrade dropped a table (kept in a backup), then failed: `repair undo` re-creates it with its rows."""
    url = fresh_db
    directory = write_project(tmp_path, url, EMPTY_MODELS)
    _migrate(directory, "keep", CreateTable(Table("keep", (_id(),), primary_key=PrimaryKey(("id",)))))
    second = _migrate(directory, "t",
                      ExecuteSQL("SELECT 1", reverse="SELECT nope FROM nowhere"),
                      CreateTable(Table("t", (_id(), Column("v", INTEGER)), primary_key=PrimaryKey(("id",)))))
    cli(directory, "upgrade")
    execute(url, "INSERT INTO t (id, v) VALUES (1, 10), (2, 20)")
    failed = cli(directory, "downgrade", "-1", check=False)
    assert failed.returncode == 2 and "PARTLY downgraded" in failed.stderr, failed.stderr
    assert "t" not in _tables(url)
    cli(directory, "repair", "undo")
    assert _current(directory) == second
    assert fetch_rows(url, "SELECT id, v FROM t ORDER BY id") == [(1, 10), (2, 20)]
    assert cli(directory, "status").stdout.count("PROBLEM") == 0


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_undo_of_a_failed_upgrade_puts_a_dropped_column_back(fresh_db: str, tmp_path: Path) -> None:
    """An upgrade dropped a column (kept in a backup), then failed: `repair undo` adds it back with its values."""
    from schemashift.operations import DropColumn

    url = fresh_db
    directory = write_project(tmp_path, url, EMPTY_MODELS)
    first = _migrate(directory, "t", CreateTable(Table("t", (_id(), Column("v", INTEGER)),
                                                       primary_key=PrimaryKey(("id",)))))
    cli(directory, "upgrade")
    execute(url, "INSERT INTO t (id, v) VALUES (1, 10), (2, NULL)")
    _migrate(directory, "drop v", DropColumn("t", "v"), ExecuteSQL("SELECT nope FROM nowhere", reverse="SELECT 1"))
    failed = cli(directory, "upgrade", check=False)
    assert failed.returncode == 2 and "PARTLY upgraded" in failed.stderr, failed.stderr
    cli(directory, "repair", "undo")
    assert _current(directory) == first
    assert fetch_rows(url, "SELECT id, v FROM t ORDER BY id") == [(1, 10), (2, None)]


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_a_failure_at_the_first_statement_says_nothing_ran(fresh_db: str, tmp_path: Path) -> None:
    """The first statement of a step fails where DDL commits itself: the error says none of its statements completed
    (not "PARTLY upgraded (0 statements ran)"); once the cause is gone `repair continue` runs the step."""
    directory = write_project(tmp_path, fresh_db, EMPTY_MODELS)
    _migrate(directory, "a", CreateTable(Table("a", (_id(),), primary_key=PrimaryKey(("id",)))))
    cli(directory, "upgrade")
    execute(fresh_db, "CREATE TABLE b (id INTEGER PRIMARY KEY)")  # in the way of the next step's CREATE TABLE
    _migrate(directory, "b", CreateTable(Table("b", (_id(),), primary_key=PrimaryKey(("id",)))),
             CreateTable(Table("c", (_id(),), primary_key=PrimaryKey(("id",)))))
    failed = cli(directory, "upgrade", check=False)
    message = " ".join(failed.stderr.split())
    assert failed.returncode == 2 and "failed at statement 1 of 2" in message, message
    assert "none of its statements completed (the first failed)" in message and "PARTLY" not in message, message
    execute(fresh_db, "DROP TABLE b")
    cli(directory, "repair", "continue")
    assert _tables(fresh_db) == ["a", "b", "c", "schemashift_version", "schemashift_version_history"]
