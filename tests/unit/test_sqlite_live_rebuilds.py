"""SQLite table rebuilds keep what only the live database has (issue 12, data loss 2).

A rebuild (``CREATE TABLE`` new, copy, ``DROP``, ``RENAME``) used to recreate the
table from the migrations' definition alone: a hand-added column, its values and
its index were lost, triggers on the table dropped with it, and a view over it
made the rename fail. Each test adds such objects by hand, runs a migration that
rebuilds the table, and checks that rows and objects are intact after the upgrade
and after ``downgrade -1``, and that ``diff`` reports the same drift as before.
Rebuilds are SQLite's alone, so these tests run on SQLite only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import cli, execute, fetch_rows, set_models, write_project
from schemashift import api
from schemashift.errors import SchemashiftError
from schemashift.operations import AddColumn, AddConstraint, AlterColumn, CreateTable, DropColumn, DropTable, ExecuteSQL, Operation
from schemashift.model.schema import Column, ForeignKey, PrimaryKey, Table
from schemashift.model.types import Type
from schemashift.history.writer import write_migration

BASE = """
from sqlalchemy.orm import DeclarativeBase

class Base(DeclarativeBase):
    pass
"""

ID = Column("id", Type("integer"), nullable=False, autoincrement=True)
NAME = Column("name", Type("string", length=250))
WIDE = NAME.evolve(type=Type("string", length=500))
NOTE = Column("note", Type("string", length=40))
RUNS = Table("runs", (ID, NAME, NOTE), primary_key=PrimaryKey(("id",)))

#: The hand-made drift of most tests: a column with values and an index, an extra index on a
#: known column, a trigger on the table and a view over it.
DRIFT = (
    "ALTER TABLE runs ADD COLUMN legacy_note TEXT DEFAULT 'n/a'",
    "CREATE INDEX ix_runs_legacy ON runs (legacy_note)",
    "CREATE INDEX ix_runs_name_extra ON runs (name)",
    "CREATE TABLE audit (what TEXT)",
    "CREATE TRIGGER runs_audit AFTER INSERT ON runs BEGIN INSERT INTO audit VALUES (new.name); END",
    "CREATE VIEW legacy_runs AS SELECT id, legacy_note FROM runs WHERE legacy_note IS NOT NULL",
    "INSERT INTO runs (id, name, note, legacy_note) VALUES (1, 'first', 'a', 'keep me'), (2, 'second', NULL, NULL)",
)


@dataclass
class Project:
    """A SQLite project migrated in-process with hand-written operations."""

    project: api.Project
    url: str
    out: list[str] = field(default_factory=list)

    def migrate(self, message: str, *operations: Operation) -> None:
        history = self.project.history()
        write_migration(self.project.config.migrations_dir, message, list(operations), parent=history.head)
        self.project._history = None

    def up(self, target: str = "head", **options: Any) -> str:
        self.out.clear()
        api.upgrade(self.project, target, out=self.out.append, **options)
        return "\n".join(self.out)

    def down(self, target: str = "-1") -> None:
        api.downgrade(self.project, target, out=self.out.append)

    def drift(self) -> list[str]:
        return api.diff(self.project, against="migrations").lines()[1:]

    def sql(self, *statements: str) -> None:
        execute(self.url, *statements)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    write_project(tmp_path, url, BASE)
    found = Project(api.open_project(tmp_path / "schemashift.toml"), url)
    found.migrate("create runs", CreateTable(RUNS))
    found.up()
    return found


def objects(url: str) -> list[tuple[str, str, str]]:
    """Indexes, triggers and views with their SQL, and each user table's columns (not the CREATE TABLE text)."""
    rows = fetch_rows(url, "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE '%schemashift%' "
                           "AND sql IS NOT NULL ORDER BY type, name")
    found = [(kind, name, sql) for kind, name, sql in rows if kind != "table"]
    for _, name, _ in [r for r in rows if r[0] == "table"]:
        columns = fetch_rows(url, f'SELECT name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(\'{name}\')')
        found.append(("table", name, repr(columns)))
    return found


def without(found: list[tuple[str, str, str]], table: str) -> list[tuple[str, str, str]]:
    return [entry for entry in found if entry[:2] != ("table", table)]


def data(url: str) -> dict[str, list[tuple[object, ...]]]:
    return {
        "runs": fetch_rows(url, "SELECT id, name, note, legacy_note FROM runs ORDER BY id"),
        "view": fetch_rows(url, "SELECT * FROM legacy_runs ORDER BY id"),
    }


# -- the reproduction, through the CLI with models ------------------------------------


def models(length: int) -> str:
    return f"""
        import sqlalchemy as sa
        from sqlalchemy.orm import DeclarativeBase

        class Base(DeclarativeBase):
            pass

        class Run(Base):
            __tablename__ = "runs"
            id = sa.Column(sa.Integer, primary_key=True)
            name = sa.Column(sa.String({length}))
            note = sa.Column(sa.String(40))
        """


def test_widening_keeps_hand_added_column_values_index_trigger_and_view(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    write_project(tmp_path, url, models(250))
    cli(tmp_path, "generate", "-m", "create runs")
    cli(tmp_path, "upgrade")
    execute(url, *DRIFT)
    drift_before = cli(tmp_path, "diff", check=False).stdout
    assert "legacy_note" in drift_before and "ix_runs_legacy" in drift_before
    before, rows = objects(url), data(url)

    set_models(tmp_path, models(500))
    cli(tmp_path, "generate", "-m", "widen name")
    dry = cli(tmp_path, "upgrade", "--dry-run").stdout
    assert ("keep what only the live database has on runs: column legacy_note (with its values), "
            "index ix_runs_legacy, index ix_runs_name_extra, trigger runs_audit, view legacy_runs") in dry
    script = cli(tmp_path, "upgrade", "--sql").stdout
    assert "INSERT INTO _schemashift_new_runs (id, name, note, legacy_note) SELECT" in script
    assert "CREATE TRIGGER runs_audit" in script and "DROP VIEW legacy_runs" in script
    cli(tmp_path, "upgrade")

    assert data(url) == rows
    after = objects(url)
    assert without(after, "runs") == without(before, "runs")
    assert "VARCHAR(500)" in dict(((k, n), s) for k, n, s in after)[("table", "runs")]
    assert cli(tmp_path, "diff", check=False).stdout == drift_before
    execute(url, "INSERT INTO runs (id, name) VALUES (3, 'third')")  # the trigger still fires
    assert fetch_rows(url, "SELECT what FROM audit") == [("first",), ("second",), ("third",)]
    execute(url, "DELETE FROM runs WHERE id = 3", "DELETE FROM audit WHERE what = 'third'")

    cli(tmp_path, "downgrade", "-1")
    assert data(url) == rows
    assert objects(url) == before
    set_models(tmp_path, models(250))
    assert cli(tmp_path, "diff", check=False).stdout == drift_before


def test_offline_sql_says_live_only_objects_are_unknown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    write_project(tmp_path, url, models(250))
    cli(tmp_path, "generate", "-m", "create runs")
    set_models(tmp_path, models(500))
    cli(tmp_path, "generate", "-m", "widen name")
    script = cli(tmp_path, "upgrade", "--sql", "--from", "base", "--step-by-step").stdout  # (else: a fresh build)
    assert "-- rebuild of runs as the migrations define it: without a database, columns, constraints, indexes" in script


# -- each kind of live-only object, through hand-written operations ------------------------------


def test_every_rebuild_kind_carries_the_drift(project: Project) -> None:
    project.sql(*DRIFT)
    drift, before, rows = project.drift(), objects(project.url), data(project.url)
    project.migrate("widen", AlterColumn("runs", "name", new=WIDE))
    project.migrate("not null", AlterColumn("runs", "name", new=WIDE.evolve(nullable=False, default="'?'")))
    project.migrate("drop note", DropColumn("runs", "note"))
    project.up()  # three rebuilds of one table in one run
    assert fetch_rows(project.url, "SELECT id, name, legacy_note FROM runs ORDER BY id") == [
        (1, "first", "keep me"), (2, "second", None)]
    assert without(objects(project.url), "runs") == without(before, "runs")
    assert project.drift() == drift
    project.down("-3")  # back again (the note values come back from their backup)
    assert data(project.url) == rows
    assert objects(project.url) == before
    assert project.drift() == drift


def test_views_and_triggers_over_a_rebuilt_table_survive(project: Project) -> None:
    project.sql(
        "CREATE TABLE audit (what TEXT)",
        "CREATE VIEW named AS SELECT id, name FROM runs",
        "CREATE VIEW named_upper AS SELECT id, upper(name) AS loud FROM named",  # depends on the table through a view
        "CREATE TRIGGER into_runs AFTER INSERT ON audit BEGIN INSERT INTO runs (name) VALUES (new.what); END",
        "CREATE TRIGGER on_view INSTEAD OF DELETE ON named BEGIN DELETE FROM runs WHERE id = old.id; END",
        "INSERT INTO runs (id, name, note) VALUES (1, 'one', 'x')",
    )
    drift, before = project.drift(), objects(project.url)
    project.migrate("drop note", DropColumn("runs", "note"))
    project.up()
    assert without(objects(project.url), "runs") == without(before, "runs")
    assert fetch_rows(project.url, "SELECT * FROM named_upper") == [(1, "ONE")]
    project.sql("INSERT INTO audit VALUES ('two')", "DELETE FROM named WHERE id = 1")
    assert fetch_rows(project.url, "SELECT name FROM runs") == [("two",)]
    assert project.drift() == drift
    project.down()
    assert objects(project.url) == before
    assert project.drift() == drift


def test_generated_live_only_column_is_carried_not_copied(project: Project) -> None:
    project.sql("ALTER TABLE runs ADD COLUMN doubled INTEGER GENERATED ALWAYS AS (id * 2) VIRTUAL",
                "INSERT INTO runs (id, name) VALUES (21, 'x')")
    before = objects(project.url)
    project.migrate("widen", AlterColumn("runs", "name", new=WIDE))
    project.up()
    assert fetch_rows(project.url, "SELECT id, doubled FROM runs") == [(21, 42)]
    assert without(objects(project.url), "runs") == without(before, "runs")


# -- what cannot be carried: refused before anything changes -------------------------------------


@pytest.mark.parametrize("statement, kind, name", [
    ("CREATE TRIGGER uses_note AFTER UPDATE ON runs BEGIN SELECT new.note; END", "trigger", "uses_note"),
    ("CREATE VIEW notes AS SELECT note FROM runs", "view", "notes"),
    ("CREATE INDEX ix_note_by_hand ON runs (note)", "index", "ix_note_by_hand"),
])
def test_object_using_a_removed_column_is_refused(project: Project, statement: str, kind: str, name: str) -> None:
    """A trigger, view or index that uses a dropped column cannot be re-created as it is, and
    schemashift will not rewrite or silently drop the user's object: it refuses, as SQLite's own
    ``ALTER TABLE DROP COLUMN`` does, and nothing changes."""
    project.sql(statement, "INSERT INTO runs (id, name, note) VALUES (1, 'one', 'kept')")
    before = objects(project.url)
    project.migrate("drop note", DropColumn("runs", "note"))
    with pytest.raises(SchemashiftError, match=rf"only the live database has uses columns this removes: {kind} {name} \(runs.note\)"):
        project.up()
    assert objects(project.url) == before
    assert fetch_rows(project.url, "SELECT note FROM runs") == [("kept",)]
    assert len(project.project.history().chain) == 2
    with project.project.connect() as connection:
        assert api.current_revision(project.project.recorder(connection).applied(), project.project.history()) \
            == project.project.history().chain[0].revision


def test_object_dropped_by_sql_earlier_in_the_run_is_not_refused(project: Project) -> None:
    """After raw SQL the rebuild reads the live table when it runs (the plan cannot know what the SQL did)."""
    project.sql("CREATE TRIGGER uses_note AFTER UPDATE ON runs BEGIN SELECT new.note; END",
                "ALTER TABLE runs ADD COLUMN legacy_note TEXT", "INSERT INTO runs (id, legacy_note) VALUES (1, 'x')")
    project.migrate("drop trigger", ExecuteSQL("DROP TRIGGER uses_note",
                                               reverse="CREATE TRIGGER uses_note AFTER UPDATE ON runs BEGIN SELECT new.note; END"))
    project.migrate("drop note", DropColumn("runs", "note"))
    assert "-- Python: rebuild_runs_keeping_live_objects()" in project.up(sql=True)
    assert "keep what only the live database has on runs: read when the rebuild runs" in project.up(dry_run=True)
    project.up()
    assert fetch_rows(project.url, "SELECT id, legacy_note FROM runs") == [(1, "x")]
    project.down("-2")
    assert fetch_rows(project.url, "SELECT name FROM sqlite_master WHERE type = 'trigger'") == [("uses_note",)]
    assert fetch_rows(project.url, "SELECT id, legacy_note FROM runs") == [(1, "x")]


def test_foreign_key_check_after_rebuild(project: Project) -> None:
    """A rebuild adding a foreign key that rows violate is rolled back; older violations do not block."""
    owners = Table("owners", (ID,), primary_key=PrimaryKey(("id",)))
    project.migrate("owners", CreateTable(owners), AlterColumn("runs", "note", new=Column("note", Type("integer"))))
    project.up()
    project.sql("INSERT INTO owners (id) VALUES (1)", "INSERT INTO runs (id, note) VALUES (1, 1), (2, 7)")
    project.migrate("fk", AddConstraint("runs", ForeignKey(("note",), "owners", ("id",), name="fk_runs_owner")))
    with pytest.raises(SchemashiftError, match="1 more row\\(s\\) of runs violate its foreign keys"):
        project.up()
    assert fetch_rows(project.url, "SELECT id, note FROM runs ORDER BY id") == [(1, 1), (2, 7)]
    project.sql("DELETE FROM runs WHERE id = 2")
    project.up()
    project.sql("PRAGMA foreign_keys=OFF", "INSERT INTO runs (id, note) VALUES (3, 9)")  # violation made by hand
    project.migrate("widen", AlterColumn("runs", "name", new=WIDE))
    project.up()  # the rebuild adds no violation: not blocked by the old one
    assert fetch_rows(project.url, "SELECT id, note FROM runs ORDER BY id") == [(1, 1), (3, 9)]


def test_live_only_column_keeps_its_constraints_and_comments(project: Project) -> None:
    project.sql("ALTER TABLE runs ADD COLUMN \"odd, name\" TEXT /* hand-made, (odd) */ COLLATE NOCASE "
                "CHECK (length(\"odd, name\") < 5)",
                "INSERT INTO runs (id, \"odd, name\") VALUES (1, 'AbC')")
    before = objects(project.url)
    project.migrate("widen", AlterColumn("runs", "name", new=WIDE))
    project.up()
    assert without(objects(project.url), "runs") == without(before, "runs")
    assert fetch_rows(project.url, "SELECT id FROM runs WHERE \"odd, name\" = 'abc'") == [(1,)]  # still NOCASE
    with pytest.raises(Exception, match="CHECK constraint failed"):
        project.sql("INSERT INTO runs (id, \"odd, name\") VALUES (2, 'too long')")
    project.down()
    assert objects(project.url) == before


def test_table_replaced_earlier_in_the_run_carries_nothing_stale(project: Project) -> None:
    """A table the plan drops and creates again has none of the old live-only columns to carry."""
    project.sql("ALTER TABLE runs ADD COLUMN legacy_note TEXT", "CREATE INDEX ix_runs_legacy ON runs (legacy_note)")
    project.migrate("replace runs", DropTable("runs"), CreateTable(RUNS), AlterColumn("runs", "name", new=WIDE))
    project.up(allow_data_loss=True)
    assert [row[0] for row in fetch_rows(project.url, "SELECT name FROM pragma_table_info('runs')")] == ["id", "name", "note"]
    assert project.drift() == []


def test_dry_run_still_counts_rows_at_risk_beside_carried_objects(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    write_project(tmp_path, url, BASE, extra_config="keep_data = false\n")
    project = Project(api.open_project(tmp_path / "schemashift.toml"), url)
    project.migrate("create runs", CreateTable(RUNS))
    project.up()
    project.sql("ALTER TABLE runs ADD COLUMN legacy_note TEXT", "INSERT INTO runs (id, note) VALUES (1, 'x')")
    project.migrate("drop note", DropColumn("runs", "note"))
    shown = project.up(dry_run=True, allow_data_loss=True)
    assert "keep what only the live database has on runs: column legacy_note (with its values)" in shown
    assert "drop column runs.note: 1 row(s) would lose values" in shown


def test_live_only_table_constraints_are_carried(project: Project) -> None:
    """A table rebuilt by hand with constraints the migrations do not have keeps them (never a second primary key)."""
    project.sql(
        "CREATE TABLE runs_by_hand (id INTEGER NOT NULL, name VARCHAR(250), note VARCHAR(40), PRIMARY KEY (id), "
        "CONSTRAINT ck_short_name CHECK (length(name) < 10), UNIQUE (note))",
        "INSERT INTO runs_by_hand (id, name, note) VALUES (1, 'short', 'a')",
        "DROP TABLE runs", "ALTER TABLE runs_by_hand RENAME TO runs",
    )
    drift, before = project.drift(), objects(project.url)
    assert drift  # the check and the unique constraint are drift
    project.migrate("widen", AlterColumn("runs", "name", new=WIDE))
    assert "keep what only the live database has on runs: constraint CONSTRAINT ck_short_name CHECK (length(name) < 10), " \
           "constraint UNIQUE (note)" in project.up(dry_run=True)
    project.up()
    assert project.drift() == drift
    with pytest.raises(Exception, match="CHECK constraint failed"):
        project.sql("INSERT INTO runs (id, name) VALUES (2, 'far too long a name')")
    with pytest.raises(Exception, match="UNIQUE constraint failed"):
        project.sql("INSERT INTO runs (id, name, note) VALUES (3, 'x', 'a')")
    project.down()
    assert objects(project.url) == before
    assert project.drift() == drift
    project.migrate("drop note", DropColumn("runs", "note"))
    with pytest.raises(SchemashiftError, match=r"constraint UNIQUE \(note\) \(runs.note\)"):
        project.up()


def test_columns_the_live_table_defines_otherwise_keep_their_definition(project: Project) -> None:
    """A column the rebuild does not change keeps its live definition: its drift stays drift, not silently fixed."""
    project.sql(
        "CREATE TABLE runs_by_hand (id INTEGER NOT NULL, name VARCHAR(250), note VARCHAR(40) NOT NULL DEFAULT 'n', "
        "PRIMARY KEY (id))",
        "INSERT INTO runs_by_hand (id, name) VALUES (1, 'one')",
        "DROP TABLE runs", "ALTER TABLE runs_by_hand RENAME TO runs",
    )
    drift, before = project.drift(), objects(project.url)
    assert any("note" in line for line in drift)
    project.migrate("widen", AlterColumn("runs", "name", new=WIDE))
    assert "column note defined as live (note VARCHAR(40) NOT NULL DEFAULT 'n')" in project.up(dry_run=True)
    project.up()
    assert project.drift() == drift
    assert without(objects(project.url), "runs") == without(before, "runs")
    project.sql("INSERT INTO runs (id, name) VALUES (2, 'two')")
    assert fetch_rows(project.url, "SELECT id, note FROM runs ORDER BY id") == [(1, "n"), (2, "n")]
    project.down()
    assert objects(project.url) == before


def test_a_rebuild_adding_a_column_the_live_table_already_has_is_refused(project: Project) -> None:
    """Like SQLite's own ``ADD COLUMN`` (duplicate column name): the live column's values are never replaced."""
    project.sql("ALTER TABLE runs ADD COLUMN legacy_note TEXT", "INSERT INTO runs (id, legacy_note) VALUES (1, 'x')")
    project.migrate("adopt", AddColumn("runs", Column("legacy_note", Type("text"), nullable=False, default="(lower('n'))")))
    with pytest.raises(SchemashiftError, match="the column legacy_note it adds already exists in the live database"):
        project.up()
    assert fetch_rows(project.url, "SELECT id, legacy_note FROM runs") == [(1, "x")]


def test_row_only_sql_before_a_rebuild_keeps_the_plan_as_sql(project: Project) -> None:
    """An UPDATE before the rebuild changes no schema object: the rebuild stays planned SQL (``--sql`` shows it)."""
    project.sql("ALTER TABLE runs ADD COLUMN legacy_note TEXT", "INSERT INTO runs (id, legacy_note) VALUES (1, 'x')")
    project.migrate("fill and tighten", ExecuteSQL("UPDATE runs SET name = 'unnamed' WHERE name IS NULL; -- DROP VIEW x"),
                    AlterColumn("runs", "name", new=NAME.evolve(nullable=False)))
    script = project.up(sql=True)
    assert "-- Python: rebuild" not in script
    assert "INSERT INTO _schemashift_new_runs (id, name, note, legacy_note) SELECT" in script
    project.up()
    assert fetch_rows(project.url, "SELECT id, name, legacy_note FROM runs") == [(1, "unnamed", "x")]


def test_a_filled_not_null_column_keeps_what_only_the_live_table_has(project: Project) -> None:
    """`AddColumn(fill=...)` runs as an in-place add then a rebuild; that rebuild carries the drift too."""
    project.sql(*DRIFT)
    before = without(objects(project.url), "runs")
    project.migrate("kind", AddColumn("runs", Column("kind", Type("string", length=10), nullable=False), fill="plain"))
    project.up()
    assert fetch_rows(project.url, "SELECT id, kind, legacy_note FROM runs ORDER BY id") == [
        (1, "plain", "keep me"), (2, "plain", None)]
    assert without(objects(project.url), "runs") == before
    project.down()
    assert data(project.url)["runs"] == [(1, "first", "a", "keep me"), (2, "second", None, None)]


# -- an extension's operation that SQLite runs as a rebuild ------------------------------------

PLUGIN = '''
from dataclasses import dataclass

from schemashift.dialects.base import table_at
from schemashift.operations import Operation


@dataclass(frozen=True)
class MarkTable(Operation):
    """A table-level operation of an extension (not schemashift's own), compiled on SQLite as a rebuild."""

    table: str

    @property
    def table_key(self):
        return self.table

    def apply(self, schema):
        return schema

    def inverse(self):
        return self

    def describe(self):
        return f"mark {self.table}"


def compile_mark_table(dialect, op, before, after):
    return dialect.rebuild(table_at(before, op.table_key), table_at(after, op.table_key), after)
'''


def test_an_extension_operation_rebuilt_on_sqlite_keeps_live_only_objects(
        project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebuild detection is not a list of our classes: an extension's rebuild carries live objects over too."""
    from schemashift.dialects.sqlite.dialect import SQLiteDialect
    from schemashift.history import manifest

    (tmp_path / "rebuild_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import rebuild_plugin  # type: ignore[import-not-found]

    try:
        monkeypatch.setattr(SQLiteDialect, "compile_mark_table", rebuild_plugin.compile_mark_table, raising=False)
        project.sql(*DRIFT)
        before = objects(project.url), data(project.url)
        project.migrate("mark runs", ExecuteSQL("SELECT 1"))
        folder = project.project.config.migrations_dir
        path = sorted(folder.glob("0002_*.py"))[0]
        text = path.read_text().replace("from schemashift.migration import *",
                                        "from schemashift.migration import *\nfrom rebuild_plugin import MarkTable")
        path.write_text(text.replace("ExecuteSQL('SELECT 1')", "MarkTable('runs')").replace(
            'ExecuteSQL("SELECT 1")', 'MarkTable("runs")'))
        assert "MarkTable('runs')" in path.read_text() or 'MarkTable("runs")' in path.read_text()
        manifest.rebuild(folder)
        project.project.forget_history()
        project.up()
        assert (objects(project.url), data(project.url)) == before
    finally:
        from schemashift import operations as ops

        ops.OPERATIONS.pop("MarkTable", None)
        sys.modules.pop("rebuild_plugin", None)
