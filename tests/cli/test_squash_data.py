"""squash with data steps: kept in their places, ``elidable=True`` ones left out; old files still load."""

from __future__ import annotations

from pathlib import Path

from helpers import cli, fetch_rows, inspect_schema, write_project
from schemashift.history.chain import History
from schemashift.history.loader import load_migration
from schemashift.history.writer import write_migration
from schemashift.migration import (AddColumn, Column, CreateTable, ExecuteSQL, PrimaryKey, RenameColumn, RunPython,
                                   Table, Type)

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id = sa.Column(sa.Integer, primary_key=True)
    mail = sa.Column(sa.String(80))
    age = sa.Column(sa.Integer)
"""


def shout(ctx):  # type: ignore[no-untyped-def]
    ctx.connection.exec_driver_sql("UPDATE users SET email = UPPER(email)")


def seed_demo_row(ctx):  # type: ignore[no-untyped-def]
    ctx.connection.exec_driver_sql("INSERT INTO users (id, mail) VALUES (99, 'demo')")


def _history(folder: Path) -> list[str]:
    steps = [
        ("create users", [CreateTable(Table("users", columns=(Column("id", Type("integer"), nullable=False),
                                                               Column("email", Type("string", length=80))),
                                            primary_key=PrimaryKey(("id",))))]),
        ("seed", [ExecuteSQL("INSERT INTO users (id, email) VALUES (1, 'a@b.c')"), RunPython(shout)]),
        ("rename email", [RenameColumn("users", "email", "mail"), RunPython(seed_demo_row, elidable=True)]),
        ("add age", [AddColumn("users", Column("age", Type("integer"))),
                     ExecuteSQL("UPDATE users SET age = 5"),
                     ExecuteSQL("UPDATE users SET age = 6 WHERE id = 99", elidable=True)]),
    ]
    revisions: list[str] = []
    for message, operations in steps:
        revisions.append(write_migration(folder, message, operations, revisions[-1] if revisions else None).revision)
    return revisions


def test_data_steps_kept_in_order_and_elidable_left_out(tmp_path: Path) -> None:
    full = write_project(tmp_path / "full", f"sqlite:///{tmp_path / 'full.db'}", MODELS)
    _history(full / "migrations")
    cli(full, "upgrade")
    assert fetch_rows(f"sqlite:///{tmp_path / 'full.db'}", "SELECT id, mail, age FROM users ORDER BY id") == [
        (1, "A@B.C", 5), (99, "demo", 6)]

    squashed = write_project(tmp_path / "sq", f"sqlite:///{tmp_path / 'sq.db'}", MODELS)
    _history(squashed / "migrations")
    assert "replaces 4 migration(s)" in cli(squashed, "squash", "-m", "all").stdout
    history = History.load(squashed / "migrations")
    assert len(history) == 1
    operations = history.chain[0].operations
    kinds = [type(op).__name__ for op in operations]
    # the insert and the Python step before the rename, the rename kept as written (rows were written before it)
    assert kinds == ["CreateTable", "ExecuteSQL", "RunPython", "RenameColumn", "AddColumn", "ExecuteSQL"], kinds
    assert not any(getattr(op, "elidable", False) for op in operations)
    assert "seed_demo_row" not in history.chain[0].path.read_text()
    cli(squashed, "manifest", "--check")
    cli(squashed, "upgrade")
    assert inspect_schema(f"sqlite:///{tmp_path / 'sq.db'}") == inspect_schema(f"sqlite:///{tmp_path / 'full.db'}")
    assert fetch_rows(f"sqlite:///{tmp_path / 'sq.db'}", "SELECT id, mail, age FROM users ORDER BY id") == [
        (1, "A@B.C", 5)]
    assert cli(squashed, "status", check=False).returncode == 0


def test_data_step_before_schema_steps_meets_its_schema(tmp_path: Path) -> None:
    """A compacted stretch is split at each kept data step: the step sees the columns it was written for."""
    project = write_project(tmp_path / "p", f"sqlite:///{tmp_path / 'p.db'}", MODELS)
    folder = project / "migrations"
    first = write_migration(folder, "users", [CreateTable(Table(
        "users", columns=(Column("id", Type("integer"), nullable=False),), primary_key=PrimaryKey(("id",))))],
        None).revision
    second = write_migration(folder, "email", [AddColumn("users", Column("email", Type("string", length=80))),
                                               ExecuteSQL("INSERT INTO users (id, email) VALUES (2, 'x')")],
                             first).revision
    write_migration(folder, "mail+age", [AddColumn("users", Column("mail", Type("string", length=80))),
                                         ExecuteSQL("UPDATE users SET mail = email"),
                                         AddColumn("users", Column("age", Type("integer")))], second)
    cli(project, "squash", "-m", "all")
    kinds = [type(op).__name__ for op in History.load(folder).chain[0].operations]
    assert kinds == ["CreateTable", "ExecuteSQL", "AddColumn", "ExecuteSQL", "AddColumn"], kinds
    cli(project, "upgrade")
    assert fetch_rows(f"sqlite:///{tmp_path / 'p.db'}", "SELECT id, email, mail, age FROM users") == [(2, "x", "x", None)]


def test_files_without_elidable_still_load(tmp_path: Path) -> None:
    """Files written before ``elidable`` existed (no such keyword) load unchanged; the flag is written only when set."""
    path = tmp_path / "0001_old.py"
    path.write_text('revision = "aaaa1111"\nparent = None\nmessage = "old"\n'
                    "from schemashift.migration import *\n\n"
                    "def forward(ctx):\n    pass\n\n"
                    'operations = [ExecuteSQL("UPDATE t SET x = 1", reverse="UPDATE t SET x = 0"), '
                    "RunPython(forward, forward)]\n")
    migration = load_migration(path)
    assert [getattr(op, "elidable") for op in migration.operations] == [False, False]
    assert [op.inverse().elidable for op in migration.operations] == [False, False]  # type: ignore[attr-defined]
    written = write_migration(tmp_path / "new", "x", [ExecuteSQL("SELECT 1"), ExecuteSQL("SELECT 2", elidable=True)],
                              None)
    text = written.path.read_text()
    assert text.count("elidable=True") == 1 and "elidable=False" not in text
    assert [op.elidable for op in written.operations] == [False, True]  # type: ignore[attr-defined]


def test_same_function_name_twice_is_refused(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", f"sqlite:///{tmp_path / 'p.db'}", MODELS)
    folder = project / "migrations"
    for number, body in ((1, "pass"), (2, "ctx.connection.exec_driver_sql('SELECT 1')")):
        parent = '"aaaa0001"' if number == 2 else "None"
        (folder / f"000{number}_m{number}.py").write_text(
            f'revision = "aaaa000{number}"\nparent = {parent}\nmessage = "m{number}"\n'
            f"from schemashift.migration import *\n\ndef forward(ctx):\n    {body}\n\n"
            "operations = [RunPython(forward)]\n")
    before = {p.name: p.read_bytes() for p in folder.glob("*.py")}
    result = cli(project, "squash", "-m", "x", check=False)
    assert result.returncode == 2 and "different functions named 'forward'" in result.stderr
    assert {p.name: p.read_bytes() for p in folder.glob("*.py")} == before


def test_python_step_keeps_the_imports_of_its_file(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", f"sqlite:///{tmp_path / 'p.db'}", MODELS)
    folder = project / "migrations"
    first = write_migration(folder, "users", [CreateTable(Table(
        "users", columns=(Column("id", Type("integer"), nullable=False), Column("mail", Type("string", length=80))),
        primary_key=PrimaryKey(("id",))))], None).revision
    (folder / "0002_seed.py").write_text(
        'import json\nfrom textwrap import dedent as undent\nfrom schemashift.migration import *\n\n'
        f'revision = "bbbb0002"\nparent = "{first}"\nmessage = "seed"\n\n'
        "def seed(ctx):\n"
        "    mail = json.loads(undent('\"x@y.z\"'))\n"
        "    ctx.connection.exec_driver_sql(f\"INSERT INTO users (id, mail) VALUES (1, '{mail}')\")\n\n"
        "operations = [RunPython(seed)]\n")
    cli(project, "manifest")
    cli(project, "squash", "-m", "all")
    text = next(folder.glob("0001_*.py")).read_text()
    assert "import json" in text and "from textwrap import dedent as undent" in text and "def seed(ctx)" in text
    cli(project, "upgrade")
    assert fetch_rows(f"sqlite:///{tmp_path / 'p.db'}", "SELECT id, mail FROM users") == [(1, "x@y.z")]


def test_backfill_is_a_data_step_kept_in_place(tmp_path: Path) -> None:
    """A `Backfill` in the range is kept where it ran, like ExecuteSQL (it changes rows, not the schema)."""
    from schemashift.migration import Backfill

    project = write_project(tmp_path / "p", f"sqlite:///{tmp_path / 'p.db'}", MODELS)
    folder = project / "migrations"
    first = write_migration(folder, "users", [CreateTable(Table(
        "users", columns=(Column("id", Type("integer"), nullable=False), Column("age", Type("integer"))),
        primary_key=PrimaryKey(("id",)))), ExecuteSQL("INSERT INTO users (id) VALUES (1), (2)")], None).revision
    write_migration(folder, "ages", [Backfill("users", values={"age": 7}, batch_size=1),
                                     AddColumn("users", Column("mail", Type("string", length=80)))], first)
    cli(project, "squash", "-m", "all")
    kinds = [type(op).__name__ for op in History.load(folder).chain[0].operations]
    assert kinds == ["CreateTable", "ExecuteSQL", "Backfill", "AddColumn"], kinds
    cli(project, "upgrade")
    assert fetch_rows(f"sqlite:///{tmp_path / 'p.db'}", "SELECT id, age FROM users ORDER BY id") == [(1, 7), (2, 7)]
