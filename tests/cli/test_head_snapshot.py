"""`schemashift.head` from the command line: `manifest` writes it, `manifest --check` notes a missing or stale one,
`generate` keeps it current, `rebase` and `squash` rewrite it (SQLite, no server)."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import cli, write_project
from schemashift.history import cache, manifest, snapshot
from schemashift.history.chain import History
from schemashift.history.writer import write_migration
from schemashift.migration import AddColumn, Column, CreateTable, ExecuteSQL, PrimaryKey, Table, Type

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(50))
{extra}
"""


def models(extra: str = "") -> str:
    return MODELS.format(extra=extra)


def valid(folder: Path) -> snapshot.Snapshot | None:
    """The snapshot of `folder` as a run would read it (None: missing or stale)."""
    entries = manifest.read(folder)
    return snapshot.read(folder, manifest.first_line(entries)) if entries is not None else None


def compiled_for_sqlite(found: snapshot.Snapshot) -> bool:
    """True when `found` holds the fresh build's SQL for the project's database alone (its URL is SQLite's)."""
    return set(found.compiled) == {"sqlite"} and found.sql_for("sqlite") is not None


def project(tmp_path: Path) -> Path:
    directory = write_project(tmp_path / "project", f"sqlite:///{tmp_path / 'app.db'}", models())
    cli(directory, "generate", "-m", "create users")
    return directory


def test_manifest_writes_it_and_check_notes_it(tmp_path: Path) -> None:
    directory = project(tmp_path)
    folder = directory / "migrations"
    out = cli(directory, "manifest").stdout
    assert f"wrote {snapshot.SNAPSHOT_NAME}: the schema at" in out
    head = History.load(folder).head
    found = valid(folder)
    assert found is not None and found.revision == head and compiled_for_sqlite(found)
    checked = cli(directory, "manifest", "--check").stdout
    assert checked.startswith("OK:") and "NOTE" not in checked

    (folder / snapshot.SNAPSHOT_NAME).unlink()
    missing = cli(directory, "manifest", "--check")  # the manifest alone decides the exit code
    assert missing.returncode == 0
    assert f"NOTE: {snapshot.SNAPSHOT_NAME} is missing" in missing.stdout and "schemashift manifest" in missing.stdout

    cli(directory, "manifest")
    path = folder / snapshot.SNAPSHOT_NAME
    path.write_text(path.read_text().replace("create users", "create people"))
    stale = cli(directory, "manifest", "--check")
    assert stale.returncode == 0 and f"NOTE: {snapshot.SNAPSHOT_NAME} is stale" in stale.stdout
    cli(directory, "manifest")
    assert "NOTE" not in cli(directory, "manifest", "--check").stdout


def test_generate_keeps_it_current(tmp_path: Path) -> None:
    directory = project(tmp_path)
    folder = directory / "migrations"
    cli(directory, "manifest")
    write_project(directory, f"sqlite:///{tmp_path / 'app.db'}",
                  models("    email = sa.Column(sa.String(80))"))
    cli(directory, "generate", "-m", "add email")
    history = History.load(folder)
    found = valid(folder)
    assert found is not None and found.revision == history.head and found.messages[history.head] == "add email"
    assert compiled_for_sqlite(found)
    assert "NOTE" not in cli(directory, "manifest", "--check").stdout

    data = write_migration(folder, "backfill", [ExecuteSQL("UPDATE users SET name = 'x'")], history.head)
    assert valid(folder) is not None and valid(folder).revision == history.head  # type: ignore[union-attr]
    write_project(directory, f"sqlite:///{tmp_path / 'app.db'}",
                  models("    email = sa.Column(sa.String(80))\n    age = sa.Column(sa.Integer)"))
    cli(directory, "generate", "-m", "add age")  # after a data migration: stays where the fresh prefix ends
    found = valid(folder)
    assert found is not None and found.revision == history.head and data.revision not in found.messages
    assert compiled_for_sqlite(found)
    assert "NOTE" not in cli(directory, "manifest", "--check").stdout


def _users() -> CreateTable:
    return CreateTable(Table("users", columns=(Column("id", Type("integer"), nullable=False),),
                             primary_key=PrimaryKey(("id",))))


def test_rebase_rewrites_it(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "project", f"sqlite:///{tmp_path / 'app.db'}", models())
    folder = directory / "migrations"
    base = write_migration(folder, "create users", [_users()], None)
    cli(directory, "manifest")
    branch = tmp_path / "branch"
    shutil.copytree(folder, branch)
    write_migration(folder, "add email", [AddColumn("users", Column("email", Type("string", length=50)))],
                    base.revision)
    write_migration(branch, "add phone", [AddColumn("users", Column("phone", Type("string", length=20)))],
                    base.revision)
    shutil.copy2(next(branch.glob("0002_*.py")), folder / "0002_add_phone.py")  # as a merge of both leaves it
    cli(directory, "rebase")
    history = History.load(folder)
    found = valid(folder)
    assert found is not None and found.revision == history.head and len(history) == 3 and compiled_for_sqlite(found)
    assert "NOTE" not in cli(directory, "manifest", "--check").stdout


def test_squash_rewrites_it(tmp_path: Path) -> None:
    directory = write_project(tmp_path / "project", f"sqlite:///{tmp_path / 'app.db'}", models())
    folder = directory / "migrations"
    parent = write_migration(folder, "create users", [_users()], None).revision
    for column in ("email", "phone", "fax"):
        parent = write_migration(folder, f"add {column}", [AddColumn("users", Column(column, Type("integer")))],
                                 parent).revision
    cli(directory, "manifest")
    before = valid(folder)
    assert before is not None and before.revision == parent
    cli(directory, "squash", "-m", "initial")
    history = History.load(folder)
    found = valid(folder)
    assert len(history) == 1 and found is not None and found.revision == history.head
    assert found.state.schema == before.state.schema and compiled_for_sqlite(found)
    assert "NOTE" not in cli(directory, "manifest", "--check").stdout


def test_check_exits_by_the_manifest_alone(tmp_path: Path) -> None:
    directory = project(tmp_path)
    folder = directory / "migrations"
    cli(directory, "manifest")
    (folder / snapshot.SNAPSHOT_NAME).unlink()
    first = next(folder.glob("0001_*.py"))
    first.write_text(first.read_text() + "\n# edited\n")
    result = cli(directory, "manifest", "--check", check=False)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PROBLEM:") and lines[-1].startswith(f"NOTE: {snapshot.SNAPSHOT_NAME} is missing")


def test_generate_after_an_unrecorded_edit_keeps_it_to_the_manifest(tmp_path: Path) -> None:
    """A migration edited by hand without `schemashift manifest`, then `generate`: the snapshot moves on from what the
    manifest lists, not from the edited file, so once the edit is undone (the manifest matches again) it is what
    replaying the chain builds."""
    directory = project(tmp_path)
    folder = directory / "migrations"
    url = f"sqlite:///{tmp_path / 'app.db'}"
    write_project(directory, url, models("    email = sa.Column(sa.String(80))"))
    cli(directory, "generate", "-m", "add email")
    edited = next(folder.glob("0002_*.py"))
    original = edited.read_text()
    edited.write_text(original.replace("operations = [", 'operations = [\n    AddColumn("users", Column("x", '
                                       'Type("integer"))),', 1))
    write_project(directory, url, models("    email = sa.Column(sa.String(80))\n    x = sa.Column(sa.Integer)\n"
                                         "    y = sa.Column(sa.Integer)"))
    cli(directory, "generate", "-m", "add y")
    edited.write_text(original)  # the edit undone: the manifest matches the files again
    history = History.load(folder)
    assert manifest.problems(folder, history) == []
    found = valid(folder)
    assert found is None or found.state.schema == cache.state_at(history, found.revision)


def test_a_new_project_without_a_migrations_folder_gets_it(tmp_path: Path) -> None:
    """The first `generate` of a project whose migrations folder does not exist yet (no `schemashift init`)."""
    directory = write_project(tmp_path / "project", f"sqlite:///{tmp_path / 'app.db'}", models())
    (directory / "migrations").rmdir()
    cli(directory, "generate", "-m", "create users")
    found = valid(directory / "migrations")
    assert found is not None and found.revision == History.load(directory / "migrations").head
