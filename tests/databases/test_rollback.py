"""Rollback that loses nothing: backups of dropped data, refusals and the stairway check.

Each database test works in its own fresh database on SQLite, PostgreSQL and
MariaDB, writes migrations from `schemashift.operations` objects, fills the tables, and
compares every row (by column name) before an upgrade and after the downgrade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import cli, execute, scalar, write_project
from schemashift import api
from schemashift.planning import backups
from schemashift.errors import IrreversibleError, SchemashiftError
from schemashift.runtime.executor import MigrationContext
from schemashift.operations import (
    AddColumn,
    AlterColumn,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropIndex,
    DropTable,
    ExecuteSQL,
    Operation,
    RunPython,
)
from schemashift.planning.plan import build_plan
from schemashift.model.schema import Column, Computed, Index, PrimaryKey, Table, UniqueConstraint
from schemashift.model.types import Type
from schemashift.history.loader import Migration
from schemashift.history.writer import write_migration

MODELS = """
from sqlalchemy.orm import DeclarativeBase

class Base(DeclarativeBase):
    pass
"""

INTEGER, BIGINT, SMALLINT = Type("integer"), Type("bigint"), Type("smallint")


def string(length: int | None = None) -> Type:
    return Type("string", length=length)


def table(name: str, *columns: Column, key: tuple[str, ...] | None = ("id",), **extra: Any) -> Table:
    """A table whose first column is an autoincrement integer `id` key (unless `key` is None)."""
    ident = (Column("id", INTEGER, nullable=False, autoincrement=True),) if key == ("id",) else ()
    return Table(name, ident + columns, primary_key=PrimaryKey(key) if key else None, **extra)


# -- a project driven through the Python API -----------------------------------------


@dataclass
class Scenario:
    """A throw-away project on one database, migrated in-process."""

    project: api.Project
    url: str
    out: list[str] = field(default_factory=list)

    def migrate(self, message: str, *operations: Operation) -> Migration:
        """Write the next migration file."""
        history = self.project.history()
        migration = write_migration(self.project.config.migrations_dir, message, list(operations), parent=history.head)
        self.project._history = None
        return migration

    def up(self, target: str = "head", **options: Any) -> None:
        api.upgrade(self.project, target, out=self.out.append, **options)

    def down(self, target: str = "-1", **options: Any) -> None:
        api.downgrade(self.project, target, out=self.out.append, **options)

    def lines(self, action: Any, *args: Any, **options: Any) -> str:
        """What `action` prints."""
        self.out.clear()
        action(*args, **options)
        return "\n".join(self.out)

    def sql(self, *statements: str) -> None:
        execute(self.url, *statements)

    def rows(self) -> dict[str, list[str]]:
        """Every row of every user table, by column name, sorted: equal data gives equal results."""
        return table_rows(self.url)

    def current(self) -> str | None:
        with self.project.connect() as connection:
            return api.current_revision(self.project.recorder(connection).applied(), self.project.history())

    def backups(self) -> list[dict[str, Any]]:
        return api.backups_list(self.project)


def make_scenario(directory: Path, url: str, settings: str = "") -> Scenario:
    write_project(directory, url, MODELS, extra_config=settings)
    return Scenario(api.open_project(directory / "schemashift.toml"), url)


def table_rows(url: str) -> dict[str, list[str]]:
    """User tables (not schemashift's own) mapped to their rows as sorted ``(column, value)`` reprs."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            names = sorted(n for n in sa.inspect(connection).get_table_names()
                           if not n.startswith(("_schemashift_", "schemashift_version")))
            quote = connection.dialect.identifier_preparer.quote
            found: dict[str, list[str]] = {}
            for name in names:
                rows = connection.execute(sa.text(f"SELECT * FROM {quote(name)}")).mappings().all()
                found[name] = sorted(repr(sorted(dict(row).items())) for row in rows)
            return found
    finally:
        engine.dispose()


@pytest.fixture
def scenario(fresh_db: str, tmp_path: Path) -> Scenario:
    # the plain statements: narrowing and enum-value removal keep their data here; safe mode would refuse them
    # (tests/databases/test_safe_mode.py)
    return make_scenario(tmp_path, fresh_db, "safe = false\n")


# -- no database: what counts as losing data, names, durations, refusals -------------------


@pytest.mark.parametrize("old, new, loses", [
    (string(100), string(20), True),
    (string(20), string(100), False),
    (string(20), string(), False),
    (string(20), Type("text"), False),
    (Type("text"), string(200), True),
    (INTEGER, SMALLINT, True),
    (INTEGER, BIGINT, False),
    (SMALLINT, INTEGER, False),
    (Type("integer", unsigned=True), INTEGER, True),
    (Type("integer", unsigned=True), BIGINT, False),
    (Type("numeric", precision=10, scale=2), Type("numeric", precision=12, scale=2), False),
    (Type("numeric", precision=10, scale=4), Type("numeric", precision=10, scale=2), True),
    (Type("numeric", precision=10, scale=2), Type("numeric", precision=10, scale=4), True),
    (Type("enum", values=("a", "b"), name="e"), Type("enum", values=("a", "b", "c"), name="e"), False),
    (Type("enum", values=("a", "b"), name="e"), Type("enum", values=("a",), name="e"), True),
    (Type("enum", values=("ab", "c"), name="e"), string(2), False),
    (Type("enum", values=("ab", "c"), name="e"), string(1), True),
    (Type("string", length=10, collation="C"), string(10), False),
    (Type("float"), INTEGER, True),
    (Type("datetime"), Type("date"), True),
])
def test_narrows(old: Type, new: Type, loses: bool) -> None:
    assert backups.narrows(old, new) is loses


def test_data_loss_classifies_operations() -> None:
    nick = Column("nick", string(30))
    plain = Column("total", INTEGER)
    assert backups.data_loss(DropColumn("t", "nick", definition=nick)) == "the values of t.nick"
    assert backups.data_loss(DropTable("t", definition=table("t"))) == "the rows of t"
    assert backups.data_loss(AddColumn("t", nick)) is None
    assert backups.data_loss(AlterColumn("t", "nick", new=nick.evolve(nullable=False), old=nick)) is None
    assert backups.data_loss(AlterColumn("t", "nick", new=nick.evolve(type=string(5)), old=nick)) is not None
    removal = AlterColumn("t", "e", new=Column("e", Type("enum", values=("a",), name="e")),
                          old=Column("e", Type("enum", values=("a", "b"), name="e")))
    assert backups.data_loss(removal) is None  # guarded by a check, nothing is lost
    generated = plain.evolve(computed=Computed("a + b"))
    assert backups.data_loss(AlterColumn("t", "total", new=generated, old=plain)) is not None
    assert backups.data_loss(AlterColumn("t", "total", new=plain, old=generated)) is None
    assert backups.data_loss(DropColumn("t", "total", definition=generated)) is None


def test_row_key_prefers_primary_key_then_not_null_unique() -> None:
    keyed = table("t", Column("code", string(10), nullable=False), Column("x", INTEGER))
    assert backups.row_key(keyed) == ("id",)
    assert backups.row_key(keyed, without="id") is None
    coded = keyed.evolve(uniques=(UniqueConstraint(("code",)),))
    assert backups.row_key(coded, without="id") == ("code",)
    nullable_unique = table("t", Column("x", INTEGER), key=None, uniques=(UniqueConstraint(("x",)),))
    assert backups.row_key(nullable_unique) is None
    indexed = table("t", Column("x", INTEGER, nullable=False), key=None, indexes=(Index("ix", ("x",), unique=True),))
    assert backups.row_key(indexed) == ("x",)


def test_backup_names_are_deterministic_and_short() -> None:
    assert backups.backup_name("3f2a9c1b7d4e", "up", 2) == "_schemashift_bk_3f2a9c1b7d4e_u_2"
    assert backups.backup_name("3f2a9c1b7d4e", "down", 0) == "_schemashift_bk_3f2a9c1b7d4e_d_0"
    long = backups.backup_name("0001_a_very_long_hand_written_revision_id", "up", 10)
    assert long == backups.backup_name("0001_a_very_long_hand_written_revision_id", "up", 10)
    assert long != backups.backup_name("0001_a_very_long_hand_written_revision_iD", "up", 10)
    assert long.startswith("_schemashift_bk_") and len(long) <= 63


@pytest.mark.parametrize("text, seconds", [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("1w", 604800)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert backups.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "3 days", "-1d", "1y"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(SchemashiftError, match="invalid duration"):
        backups.parse_duration(text)


def _offline_plan(tmp_path: Path, *second: Operation, first: tuple[Operation, ...] | None = None):  # type: ignore[no-untyped-def]
    from schemashift.dialects import get_dialect
    from schemashift.history.chain import History

    author = table("author", Column("nick", string(30), nullable=False), Column("name", string(100)))
    one = write_migration(tmp_path, "one", list(first or (CreateTable(author),)), None, revision="aaaaaaaaaaaa")
    write_migration(tmp_path, "two", list(second), one.revision, revision="bbbbbbbbbbbb")
    history = History.load(tmp_path)
    return lambda start, goal: build_plan(history, get_dialect("sqlite"), start, goal)


def test_protect_keeps_before_and_restores_after(tmp_path: Path) -> None:
    plan = _offline_plan(tmp_path, DropColumn("author", "nick"))
    up = backups.protect(plan("aaaaaaaaaaaa", "bbbbbbbbbbbb"), keep=True, allow_data_loss=False)
    kinds = [type(op).__name__ for op in up.steps[0].operations]
    assert kinds == ["KeepData", "DropColumn"]
    assert any("CREATE TABLE _schemashift_bk_bbbbbbbbbbbb_u_0 AS SELECT" in s.describe() for s in up.steps[0].statements)
    down = plan("bbbbbbbbbbbb", "aaaaaaaaaaaa")
    assert [type(op).__name__ for op in backups.protect(down, keep=True, allow_data_loss=False).steps[0].operations] == [
        "CheckNoRows", "AddColumn"]  # nothing recorded: nothing to restore, and NOT NULL with nothing to fill it
    recorded = {"_schemashift_bk_bbbbbbbbbbbb_u_0": {"columns": "id,nick"}}
    restored = backups.protect(down, keep=True, allow_data_loss=False, kept=recorded).steps[0]
    # NOT NULL without default: added nullable, filled, then made NOT NULL
    assert [type(op).__name__ for op in restored.operations] == [
        "AddColumn", "RestoreData", "AlterColumn", "ForgetBackups"]
    assert restored.operations[0].column.nullable and not restored.operations[2].new.nullable
    assert restored.after == down.steps[0].after
    stale = {"_schemashift_bk_bbbbbbbbbbbb_u_0": {"columns": "id,other"}}
    assert len(backups.protect(down, keep=True, allow_data_loss=False, kept=stale).steps[0].operations) == 2


def test_protect_refuses_without_keeping_or_permission(tmp_path: Path) -> None:
    plan = _offline_plan(tmp_path, DropColumn("author", "name"))("aaaaaaaaaaaa", "bbbbbbbbbbbb")
    with pytest.raises(backups.DataLossRefused) as refused:
        backups.protect(plan, keep=False, allow_data_loss=False)
    message = str(refused.value)
    assert "0002_two (bbbbbbbbbbbb)" in message and "drop column author.name" in message
    assert "--allow-data-loss" in message and "allow_data_loss = true" in message
    assert refused.value.exit_code == 2
    allowed = backups.protect(plan, keep=False, allow_data_loss=True)
    assert [type(op).__name__ for op in allowed.steps[0].operations] == ["NotKept", "DropColumn"]
    assert "data loss allowed" in "\n".join(allowed.lines())
    marked = backups.protect(plan, keep=False, allow_data_loss=False, refuse=False)
    assert "REFUSED unless --allow-data-loss" in "\n".join(marked.lines())


def test_protect_refuses_values_it_cannot_match(tmp_path: Path) -> None:
    keyless = table("log", Column("message", string(100)), key=None)
    plan = _offline_plan(tmp_path, AlterColumn("log", "message", new=Column("message", string(10))),
                         first=(CreateTable(keyless),))("aaaaaaaaaaaa", "bbbbbbbbbbbb")
    with pytest.raises(backups.DataLossRefused, match="no primary key or NOT NULL unique key"):
        backups.protect(plan, keep=True, allow_data_loss=False)
    assert isinstance(backups.protect(plan, keep=True, allow_data_loss=True).steps[0].operations[0], backups.NotKept)


def test_protect_keeps_a_keyless_table_whole(tmp_path: Path) -> None:
    keyless = table("log", Column("message", string(100)), key=None)
    plan = _offline_plan(tmp_path, DropTable("log"), first=(CreateTable(keyless),))("aaaaaaaaaaaa", "bbbbbbbbbbbb")
    step = backups.protect(plan, keep=True, allow_data_loss=False).steps[0]
    assert isinstance(step.operations[0], backups.KeepData) and "the rows of log" in step.operations[0].describe()


# -- on the databases -----------------------------------------------------------------


def _library(s: Scenario) -> None:
    """v1: author (with a NOT NULL column, numbers, a unique code) and book, both filled."""
    author = table(
        "author",
        Column("code", string(10), nullable=False),
        Column("name", string(100), nullable=False),
        Column("nick", string(30), nullable=False),
        Column("born", INTEGER),
        Column("score", Type("numeric", precision=10, scale=4)),
        uniques=(UniqueConstraint(("code",), name="uq_author_code"),),
    )
    book = table("book", Column("title", string(200), nullable=False), Column("pages", INTEGER),
                 indexes=(Index("ix_book_title", ("title",)),))
    s.migrate("library", CreateTable(author), CreateTable(book))
    s.up()
    s.sql(
        "INSERT INTO author (code, name, nick, born, score) VALUES ('ada', 'Ada', 'countess', 1815, 1.2345)",
        "INSERT INTO author (code, name, nick, born, score) VALUES ('alan', 'Alan', 'prof', NULL, 99.9999)",
        "INSERT INTO author (code, name, nick, born, score) VALUES ('grace', 'Grace Brewster Murray Hopper', 'amazing', 1906, NULL)",
        "INSERT INTO book (title, pages) VALUES ('Notes', 60), ('Computing Machinery', NULL)",
    )


def test_destructive_changes_are_restored_exactly(scenario: Scenario) -> None:
    s = scenario
    _library(s)
    before = s.rows()
    s.migrate(
        "narrow and drop",
        DropColumn("author", "nick"),
        AlterColumn("author", "name", new=Column("name", string(40), nullable=False)),
        AlterColumn("author", "born", new=Column("born", SMALLINT)),
        AlterColumn("author", "score", new=Column("score", Type("numeric", precision=10, scale=2))),
        DropTable("book"),
    )
    s.up()
    kept = {row["source_table"] + ":" + row["columns"]: row["rows"] for row in s.backups()}
    assert kept == {"author:id,nick": 3, "author:id,name": 3, "author:id,born": 2, "author:id,score": 2, "book:*": 2}
    assert s.rows() != before
    s.down()
    assert s.rows() == before
    # numeric(10,2) -> (10,4) has fewer integer digits: the downgrade kept those values too
    assert [(row["direction"], row["columns"]) for row in s.backups()] == [("down", "id,score")]
    # and once more: a second round trip keeps and restores again
    s.up()
    s.down()
    assert s.rows() == before
    s.sql("INSERT INTO book (title) VALUES ('after')")  # the restored table's id sequence moved on
    assert scalar(s.url, "SELECT count(*) FROM book") == 3


def test_downgrade_of_added_things_keeps_them_for_the_next_upgrade(scenario: Scenario) -> None:
    s = scenario
    _library(s)
    s.migrate("email and shelf", AddColumn("author", Column("email", string(200))),
              CreateTable(table("shelf", Column("label", string(20), nullable=False))))
    s.up()
    s.sql("UPDATE author SET email = code || '@example.org'" if s.project.url.startswith(("sqlite", "postgresql"))
          else "UPDATE author SET email = CONCAT(code, '@example.org')",
          "INSERT INTO shelf (label) VALUES ('top'), ('bottom')")
    at_head = s.rows()
    s.down()  # drops author.email and shelf: both kept (direction "down")
    assert {row["direction"] for row in s.backups()} == {"down"}
    s.up()
    assert s.rows() == at_head
    assert s.backups() == []


def test_enum_value_removal(scenario: Scenario) -> None:
    s = scenario
    status = Type("enum", values=("open", "closed", "archived"), name="ticket_status")
    s.migrate("tickets", CreateTable(table("ticket", Column("status", status, nullable=False))))
    s.up()
    s.sql("INSERT INTO ticket (status) VALUES ('open'), ('closed'), ('open')")
    before = s.rows()
    narrower = Column("status", status.evolve(values=("open", "closed")), nullable=False)
    s.migrate("no more archived", AlterColumn("ticket", "status", new=narrower))
    s.up()
    s.down()
    assert s.rows() == before
    # a row using the removed value: refused, with a message saying which rows and what to do
    s.sql("INSERT INTO ticket (status) VALUES ('archived')")
    with pytest.raises(SchemashiftError, match=r"1 row\(s\) of ticket.status still use 'archived'"):
        s.up()
    if s.project.url.startswith("mysql"):  # journaled: the failed step is undone with repair
        api.repair(s.project, action="undo", out=s.out.append)
    assert s.current() == s.project.history().chain[0].revision
    assert scalar(s.url, "SELECT count(*) FROM ticket WHERE status = 'archived'") == 1


def test_keep_off_refuses_then_allows(fresh_db: str, tmp_path: Path) -> None:
    s = make_scenario(tmp_path, fresh_db, "keep_data = false\n")
    _library(s)
    s.migrate("drop nick", DropColumn("author", "nick"))
    with pytest.raises(backups.DataLossRefused, match=r"0002_drop_nick \(.*drop column author\.nick"):
        s.up()
    assert len(s.project.history().chain) == 2 and s.current() == s.project.history().chain[0].revision
    dry = s.lines(s.up, dry_run=True)
    assert "REFUSED unless --allow-data-loss" in dry
    assert "drop column author.nick: 3 row(s) would lose values" in dry
    s.up(allow_data_loss=True)
    assert s.backups() == []
    assert "nick" not in {c["name"] for c in _columns(s.url, "author")}
    with pytest.raises(backups.DataLossRefused):  # the downgrade of a created table would drop its rows
        s.down("base")


def test_cli_refusal_is_one_line_and_exit_2(fresh_db: str, tmp_path: Path) -> None:
    s = make_scenario(tmp_path, fresh_db, "keep_data = false\n")
    _library(s)
    s.migrate("drop nick", DropColumn("author", "nick"))
    result = cli(tmp_path, "upgrade", check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--allow-data-loss" in result.stderr
    cli(tmp_path, "upgrade", "--allow-data-loss")
    assert s.current() == s.project.history().head


def test_dry_run_and_sql_show_the_backups(scenario: Scenario, tmp_path: Path) -> None:
    s = scenario
    _library(s)
    s.migrate("drop book", DropTable("book"))
    dry = s.lines(s.up, dry_run=True)
    assert "keep the rows of book in _schemashift_bk_" in dry
    script = s.lines(s.up, sql=True)
    assert "CREATE TABLE _schemashift_bk_" in script and "_schemashift_backups" in script
    assert s.backups() == []  # neither ran anything
    s.up()
    script = s.lines(s.down, sql=True)
    assert "INSERT INTO book" in script and "FROM _schemashift_bk_" in script
    assert "restore the rows of book" in s.lines(s.down, dry_run=True)


def test_backups_list_and_prune(scenario: Scenario, tmp_path: Path) -> None:
    s = scenario
    _library(s)
    migration = s.migrate("drop born", DropColumn("author", "born"))
    s.up()
    [row] = s.backups()
    assert row["backup_table"] == backups.backup_name(migration.revision, "up", 0)
    assert (row["revision"], row["direction"], row["source_table"], row["columns"], row["rows"]) == (
        migration.revision, "up", "author", "id,born", 2)
    listed = cli(tmp_path, "backups", "list").stdout
    assert row["backup_table"] in listed
    assert api.backups_prune(s.project, "30d", out=s.out.append) == 0
    s.sql("UPDATE _schemashift_backups SET created_at = '2000-01-01 00:00:00'")
    pruned = cli(tmp_path, "backups", "prune", "--older-than", "1w").stdout
    assert "pruned 1 backup(s)" in pruned
    assert s.backups() == []
    assert not sa.inspect(sa.create_engine(s.url, poolclass=sa.pool.NullPool)).has_table(row["backup_table"])
    s.down()  # nothing kept any more: the column comes back empty
    assert scalar(s.url, "SELECT count(*) FROM author WHERE born IS NOT NULL") == 0


def test_irreversible_migrations_refuse_before_changing_anything(scenario: Scenario) -> None:
    s = scenario
    s.migrate("t", CreateTable(table("t", Column("n", INTEGER))))

    def fill(ctx: "MigrationContext") -> None:  # copied into the migration file: a string annotation
        ctx.execute("INSERT INTO t (n) VALUES (1)")

    s.migrate("python", RunPython(fill))
    s.migrate("sql", ExecuteSQL("UPDATE t SET n = n + 1", reverse="UPDATE t SET n = n - 1"))
    s.up()
    head = s.project.history().head
    with pytest.raises(IrreversibleError, match=r"cannot downgrade 0002_python\.py .*Python step fill has no `reverse`"):
        s.down("base")  # 0003 alone could go back; the plan is refused as a whole before it runs
    assert s.current() == head and scalar(s.url, "SELECT n FROM t") == 2
    s.migrate("more sql", ExecuteSQL("UPDATE t SET n = n * 5"))
    s.up()
    with pytest.raises(IrreversibleError, match=r"cannot downgrade 0004_more_sql\.py .*raw SQL without a `reverse`"):
        s.down("-1")
    assert s.current() == s.project.history().head and scalar(s.url, "SELECT n FROM t") == 10


def test_reversible_data_migrations_run_back(scenario: Scenario) -> None:
    s = scenario
    s.migrate("t", CreateTable(table("t", Column("n", INTEGER))))

    def fill(ctx: "MigrationContext") -> None:
        ctx.execute("INSERT INTO t (n) VALUES (1), (2)")

    def empty(ctx: "MigrationContext") -> None:
        ctx.execute("DELETE FROM t")

    s.migrate("python", RunPython(fill, reverse=empty))
    s.migrate("sql", ExecuteSQL("UPDATE t SET n = n * 10", reverse="UPDATE t SET n = n / 10"))
    s.up()
    assert scalar(s.url, "SELECT sum(n) FROM t") == 30
    s.down("-1")
    assert scalar(s.url, "SELECT sum(n) FROM t") == 3
    s.down("-1")
    assert scalar(s.url, "SELECT count(*) FROM t") == 0


def test_stairway_passes_on_a_good_history(scenario: Scenario) -> None:
    s = scenario
    s.migrate("author", CreateTable(table("author", Column("name", string(50), nullable=False))))
    s.migrate("more", AddColumn("author", Column("email", string(100))),
              CreateIndex("author", Index("ix_author_email", ("email",))))
    s.migrate("narrow", AlterColumn("author", "name", new=Column("name", string(20), nullable=False)),
              DropIndex("author", "ix_author_email"), DropColumn("author", "email"))
    assert s.lines(lambda: api.test_migrations(s.project, out=s.out.append)).count("ok   ") == 3
    assert s.current() == s.project.history().head
    assert api.status(s.project).schema_matches


def test_stairway_names_the_revision_that_fails(scenario: Scenario) -> None:
    s = scenario
    s.migrate("author", CreateTable(table("author", Column("name", string(50)))))
    bad = s.migrate("bad reverse", ExecuteSQL("UPDATE author SET name = name",
                                              reverse="CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    s.migrate("after", AddColumn("author", Column("x", INTEGER)))
    output: list[str] = []
    assert api.test_migrations(s.project, out=output.append) is False
    text = "\n".join(output)
    assert text.startswith("ok   0001_author.py")
    assert f"FAIL 0002_bad_reverse.py ({bad.revision}): after downgrade" in text
    assert "drop table stray" in text
    assert "0003_after" not in text


def test_stairway_refuses_a_database_not_at_base(scenario: Scenario) -> None:
    s = scenario
    s.migrate("author", CreateTable(table("author", Column("name", string(50)))))
    s.up()
    with pytest.raises(SchemashiftError, match="needs an empty database at base"):
        api.test_migrations(s.project, out=s.out.append)


def _columns(url: str, name: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return sa.inspect(engine).get_columns(name)
    finally:
        engine.dispose()
