"""A NOT NULL column added to a table that holds rows: the same on every database.

Before: MariaDB filled 5,000 existing rows with ``''`` silently, while PostgreSQL
and SQLite refused the statement. Now `generate` asks for a one-off value (tested
at a terminal in test_rename_prompt.py), written as ``AddColumn(fill=...)``, which
fills the existing rows and is not kept as a default; and `upgrade` refuses a
migration without one (an older or hand-written file) while the table holds rows,
with one line and nothing changed, on SQLite, PostgreSQL and MariaDB alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import cli, execute, fetch_rows, scalar, set_models, write_project
from schemashift import api
from schemashift.operations import AddColumn, CreateTable, ExecuteSQL, RenameTable
from schemashift.model.schema import Column, PrimaryKey, Table
from schemashift.model.types import Type
from schemashift.history.writer import write_migration

ROWS = 5000

V1 = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Item(Base):
    __tablename__ = "item"
    id: Mapped[int] = mapped_column(primary_key=True)
'''
V2 = V1 + "    name: Mapped[str] = mapped_column(sa.String(50))\n"


def fill_items(url: str) -> None:
    execute(url, "INSERT INTO item (id) VALUES " + ", ".join(f"({i})" for i in range(1, ROWS + 1)))


def columns_of_item(url: str) -> list[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return [c["name"] for c in sa.inspect(connection).get_columns("item")]
    finally:
        engine.dispose()


def applied(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM schemashift_version"))  # type: ignore[arg-type]


@pytest.fixture
def project(fresh_db: str, tmp_path: Path) -> Path:
    """`item(id)` upgraded and holding ROWS rows."""
    directory = write_project(tmp_path, fresh_db, V1)
    cli(directory, "generate", "-m", "items")
    cli(directory, "upgrade")
    fill_items(fresh_db)
    return directory


def hand_written(directory: Path, message: str, *operations: object) -> None:
    """A migration file as an older schemashift (or a person) writes it: no fill."""
    project = api.open_project(directory / "schemashift.toml")
    write_migration(project.config.migrations_dir, message, list(operations), parent=project.history().head)


NAME = Column("name", Type("string", length=50), nullable=False)


def test_upgrade_refuses_a_bare_not_null_column_on_a_filled_table(project: Path, fresh_db: str) -> None:
    """The regression: nothing fills the rows, so every database refuses before its first statement."""
    hand_written(project, "other", CreateTable(Table("other", (Column("id", Type("integer"), nullable=False),),
                                                     primary_key=PrimaryKey(("id",)))))
    hand_written(project, "name", AddColumn("item", NAME))
    dry = cli(project, "upgrade", "--dry-run")
    assert "check that item has no rows" in dry.stdout and "REFUSED: upgrade refused" in dry.stdout, dry.stdout
    result = cli(project, "upgrade", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    assert "item.name NOT NULL with no default" in message and "nothing was changed" in message, message
    assert "--default item.name=VALUE" in message and "server_default" in message, message
    # nothing changed: not even the migration before it in the same run
    assert columns_of_item(fresh_db) == ["id"]
    assert applied(fresh_db) == 1 and scalar(fresh_db, "SELECT count(*) FROM item") == ROWS
    assert cli(project, "status", check=False).returncode in (0, 1)
    assert "PARTLY" not in cli(project, "status", check=False).stdout
    # an empty table takes the column
    execute(fresh_db, "DELETE FROM item")
    cli(project, "upgrade")
    assert columns_of_item(fresh_db) == ["id", "name"] and applied(fresh_db) == 3


def test_a_renamed_table_is_checked_under_its_present_name(project: Path, fresh_db: str) -> None:
    hand_written(project, "rename and name", RenameTable("item", "thing"), AddColumn("thing", NAME))
    result = cli(project, "upgrade", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "thing.name NOT NULL with no default" in result.stderr and "nothing was changed" in result.stderr
    assert columns_of_item(fresh_db) == ["id"] and applied(fresh_db) == 1  # not renamed either


def test_rows_added_by_a_data_step_are_refused_too(project: Path, fresh_db: str) -> None:
    """Where the check before the run cannot see the rows (a data step adds them), the check in the step stops it."""
    execute(fresh_db, "DELETE FROM item")
    insert = ExecuteSQL("INSERT INTO item (id) VALUES (1), (2)", reverse="DELETE FROM item")
    hand_written(project, "rows then name", insert, AddColumn("item", NAME))
    result = cli(project, "upgrade", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "item.name NOT NULL with no default" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert columns_of_item(fresh_db) == ["id"]  # MariaDB did not fill it with ''


def test_generate_with_a_fill_fills_existing_rows_once(project: Path, fresh_db: str) -> None:
    set_models(project, V2)
    refused = cli(project, "generate", "-m", "name", check=False)
    assert refused.returncode == 2 and "--default item.name=VALUE" in refused.stderr, refused.stderr
    cli(project, "generate", "-m", "name", "--default", "item.name=n/a")
    text = sorted((project / "migrations").glob("0002_*.py"))[0].read_text()
    assert 'fill="n/a"' in text, text
    sql = cli(project, "upgrade", "--sql").stdout
    assert "DEFAULT 'n/a'" in sql, sql
    cli(project, "upgrade")
    assert fetch_rows(fresh_db, "SELECT count(*), min(name), max(name) FROM item") == [(ROWS, "n/a", "n/a")]
    assert cli(project, "diff", check=False).returncode == 0  # no default was kept
    with pytest.raises(Exception):  # noqa: B017 - the driver's own IntegrityError/OperationalError
        execute(fresh_db, "INSERT INTO item (id) VALUES (0)")
    cli(project, "downgrade", "-1")
    assert columns_of_item(fresh_db) == ["id"] and scalar(fresh_db, "SELECT count(*) FROM item") == ROWS
    cli(project, "upgrade")
    assert fetch_rows(fresh_db, "SELECT count(*), min(name) FROM item") == [(ROWS, "n/a")]


# -- no database: which columns need a fill, and what a typed value becomes ----------------------------

@pytest.mark.parametrize(("column", "needed"), [
    (NAME, True),
    (NAME.evolve(nullable=True), False),
    (NAME.evolve(default="'x'"), False),
    (Column("id", Type("integer"), nullable=False, autoincrement=True), False),
    (Column("n", Type("bigint"), nullable=False, sequence="n_seq"), False),
])
def test_needs_fill(column: Column, needed: bool) -> None:
    from schemashift.operations import needs_fill

    assert needs_fill(column) is needed


@pytest.mark.parametrize(("kind", "text", "value"), [
    (Type("integer"), " 42 ", 42), (Type("boolean"), "Yes", True), (Type("boolean"), "0", False),
    (Type("float"), "1.5", 1.5), (Type("numeric", precision=10, scale=2), "3.10", "3.10"),
    (Type("string", length=5), "", ""), (Type("enum", values=("a", "b")), "b", "b"),
    (Type("date"), "2024-01-31", "2024-01-31"),
])
def test_fill_value_converts_by_kind(kind: Type, text: str, value: object) -> None:
    from schemashift.operations import fill_value

    converted = fill_value(text, Column("c", kind, nullable=False))
    assert converted == value and type(converted) is type(value)


@pytest.mark.parametrize(("kind", "text"), [
    (Type("integer"), "4.5"), (Type("boolean"), "maybe"), (Type("numeric"), "nan"), (Type("enum", values=("a",)), "z"),
])
def test_fill_value_refuses_what_does_not_fit(kind: Type, text: str) -> None:
    from schemashift.errors import MigrationError
    from schemashift.operations import fill_value

    with pytest.raises(MigrationError, match="is not a value for c"):
        fill_value(text, Column("c", kind, nullable=False))


def test_differ_asks_the_questioner_and_keeps_the_answer() -> None:
    from schemashift.autodetect.differ import RenameDecisions, diff
    from schemashift.model.schema import Schema

    table = Table("item", (Column("id", Type("integer"), nullable=False),), primary_key=PrimaryKey(("id",)))
    old = Schema().with_table(table)
    new = Schema().with_table(table.evolve(columns=table.columns + (NAME,)))
    asked: list[str] = []

    class Answers:
        def ask_rename(self, kind: str, old: str, new: str) -> bool | None:
            return None

        def ask_fill(self, column: str, type_text: str, convert):  # type: ignore[no-untyped-def]
            asked.append(f"{column} {type_text}")
            return convert("none yet")

    operations = diff(old, new, RenameDecisions(questioner=Answers(), settle_fills=True))
    assert asked == ["item.name string(50)"]
    assert operations == [AddColumn("item", NAME, fill="none yet")]
    assert diff(old, new) == [AddColumn("item", NAME)]  # without settle_fills (check, diff): no question


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_offline_script_refuses_on_mariadb_while_rows_exist(project: Path, fresh_db: str) -> None:
    """`--sql --from` on MariaDB (which would fill the rows with '' silently) checks in SQL, not in a comment."""
    import sqlalchemy as sa

    start = api.open_project(project / "schemashift.toml").history().head
    hand_written(project, "name", AddColumn("item", NAME))
    script = cli(project, "upgrade", "--sql", "--from", str(start)).stdout  # no database: it cannot look
    guard = next(line for line in script.splitlines() if "_schemashift_guard" in line)
    assert script.index(guard) < script.index("ADD COLUMN name"), script
    engine = sa.create_engine(fresh_db, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            with pytest.raises(sa.exc.DBAPIError, match="refused_item_has_rows_name_needs_a_value"):
                for statement in guard.rstrip(";").split("; "):
                    connection.exec_driver_sql(statement)
        execute(fresh_db, "DELETE FROM item")
        with engine.connect() as connection:  # an empty table passes
            for statement in guard.rstrip(";").split("; "):
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
