"""`schemashift squash`: a run of migrations replaced by one that declares `replaces`."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from conftest import create_database, drop_database
from helpers import cli, execute, fetch_rows, inspect_schema, scalar, write_project
from schemashift.history import manifest
from schemashift.migration import (AddColumn, Column, CreateIndex, CreateTable, ExecuteSQL, ForeignKey, Index, RenameColumn,
                                   PrimaryKey, Table, Type)
from schemashift.history.chain import History
from schemashift.history.writer import write_migration

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id = sa.Column(sa.Integer, primary_key=True)
    email = sa.Column(sa.String(80))
    age = sa.Column(sa.Integer)


class Post(Base):
    __tablename__ = "posts"
    id = sa.Column(sa.Integer, primary_key=True)
    user_id = sa.Column(sa.Integer, sa.ForeignKey("users.id"), nullable=False)
    __table_args__ = (sa.Index("ix_posts_user_id", "user_id"),)
"""


def _users() -> CreateTable:
    return CreateTable(Table("users", columns=(Column("id", Type("integer"), nullable=False),),
                             primary_key=PrimaryKey(("id",))))


def _posts() -> CreateTable:
    return CreateTable(Table("posts", columns=(Column("id", Type("integer"), nullable=False),
                                               Column("user_id", Type("integer"), nullable=False)),
                             primary_key=PrimaryKey(("id",)),
                             foreign_keys=(ForeignKey(("user_id",), "users", ("id",)),)))


def four_migrations(folder: Path, third: list | None = None) -> list[str]:
    """users; email; posts + index (or `third`); age: the revisions in order."""
    steps = [
        ("create users", [_users()]),
        ("add email", [AddColumn("users", Column("email", Type("string", length=80)))]),
        ("create posts", third or [_posts(), CreateIndex("posts", Index("ix_posts_user_id", ("user_id",)))]),
        ("add age", [AddColumn("users", Column("age", Type("integer")))]),
    ]
    revisions: list[str] = []
    for message, operations in steps:
        revisions.append(write_migration(folder, message, operations, revisions[-1] if revisions else None).revision)
    return revisions


@pytest.fixture()
def databases(backend: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A factory of fresh databases on `backend`, dropped at the end."""
    made: list[str] = []

    def make() -> str:
        name = f"ss_squash_{uuid.uuid4().hex[:8]}"
        made.append(name)
        return create_database(backend, name, tmp_path)

    yield make
    for name in made:
        drop_database(backend, name)


def _project(directory: Path, url: str, migrations: Path) -> Path:
    write_project(directory, url, MODELS)
    shutil.rmtree(directory / "migrations")
    shutil.copytree(migrations, directory / "migrations")
    return directory


def test_squash_first_three(databases, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old = tmp_path / "old_migrations"
    revisions = four_migrations(old)
    full, at3, at2, fresh = databases(), databases(), databases(), databases()
    # databases built with the old files: at head, at revision 3, at revision 2
    cli(_project(tmp_path / "full", full, old), "upgrade")
    cli(_project(tmp_path / "at3", at3, old), "upgrade", revisions[2])
    cli(_project(tmp_path / "at2", at2, old), "upgrade", revisions[1])
    execute(at3, "INSERT INTO users (id, email) VALUES (1, 'a@b.c')")

    # squash the first three in a project copy
    new = _project(tmp_path / "new", fresh, old)
    out = cli(new, "squash", "--to", revisions[2], "-m", "initial").stdout
    assert "replaces 3 migration(s)" in out
    history = History.load(new / "migrations")
    assert len(history) == 2 and list(history.chain[0].replaces) == revisions[:3]
    assert history.chain[1].revision == revisions[3] and history.chain[1].parent == history.chain[0].revision
    assert history.chain[0].path.name.startswith("0001_")
    assert sorted(p.name for p in (new / "migrations").glob("*.py")) == [
        history.chain[0].path.name, "0004_add_age.py"]
    assert manifest.problems(new / "migrations", history) == []
    cli(new, "manifest", "--check")

    # a fresh database from the squashed history has the schema of the full replay
    cli(new, "upgrade")
    assert inspect_schema(fresh) == inspect_schema(full)
    assert cli(new, "status", check=False).returncode == 0

    # a database at revision 3 (old files) upgrades with the new files, keeps its rows
    for url in (at3, at2):
        (tmp_path / "new" / "schemashift.toml").write_text(
            (tmp_path / "new" / "schemashift.toml").read_text().replace(
                _current_url(tmp_path / "new"), url))
        if url == at3:
            status = cli(new, "status", check=False)
            assert status.returncode == 1, status.stdout + status.stderr  # pending: add age
            result = cli(new, "upgrade")
            assert "Recorded" in result.stdout
            assert cli(new, "status", check=False).returncode == 0
            assert cli(new, "verify", check=False).returncode == 0
            assert inspect_schema(at3) == inspect_schema(full)
            assert fetch_rows(at3, "SELECT id, email FROM users") == [(1, "a@b.c")]
            cli(new, "downgrade", "-1")
            cli(new, "upgrade")
            assert inspect_schema(at3) == inspect_schema(full)
        else:
            # in the middle of the range: without the kept replaced files it cannot be upgraded (refused) ...
            before = inspect_schema(at2)
            rows = scalar(at2, "SELECT COUNT(*) FROM schemashift_version")
            kept = new / "migrations" / "replaced"
            assert sorted(p.name for p in kept.glob("*.py")) == [
                "0001_create_users.py", "0002_add_email.py", "0003_create_posts.py"]
            kept.rename(tmp_path / "kept")
            result = cli(new, "upgrade", check=False)
            assert result.returncode == 2, result.stdout + result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "old migration files first" in lines[0] and "Traceback" not in result.stderr
            assert cli(new, "status", check=False).returncode == 2
            assert inspect_schema(at2) == before
            assert scalar(at2, "SELECT COUNT(*) FROM schemashift_version") == rows
            # ... with them, status says to upgrade and upgrade runs the rest of the range, then the squash is recorded
            (tmp_path / "kept").rename(kept)
            status = cli(new, "status", check=False)
            assert status.returncode == 2 and "run `schemashift upgrade`" in status.stdout + status.stderr
            result = cli(new, "upgrade")
            assert "running the rest of it" in result.stdout and "Recorded" in result.stdout, result.stdout
            assert inspect_schema(at2) == inspect_schema(full)
            assert cli(new, "status", check=False).returncode == 0
            assert cli(new, "verify", check=False).returncode == 0

    # a database at head (old files, so the last migration's recorded checksum names the old parent)
    toml = tmp_path / "new" / "schemashift.toml"
    toml.write_text(toml.read_text().replace(_current_url(tmp_path / "new"), full))
    schema = inspect_schema(full)
    status = cli(new, "status", check=False)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Recorded" in cli(new, "upgrade").stdout
    assert cli(new, "status", check=False).returncode == 0
    assert cli(new, "verify", check=False).returncode == 0
    assert inspect_schema(full) == schema
    assert {row[0] for row in fetch_rows(full, "SELECT revision FROM schemashift_version")} == set(
        History.load(new / "migrations").revisions)


def _current_url(directory: Path) -> str:
    for line in (directory / "schemashift.toml").read_text().splitlines():
        if line.startswith("url = "):
            return line.split('"')[1]
    raise AssertionError("no url")


def test_squash_keeps_a_data_migration(tmp_path: Path) -> None:
    """A data step in the range is kept after the schema steps before it (see test_squash_data.py)."""
    old = tmp_path / "migrations"
    four_migrations(old, third=[_posts(), ExecuteSQL("UPDATE users SET email = 'x'")])
    write_project(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", MODELS)
    cli(tmp_path, "squash", "-m", "all")
    operations = History.load(old).chain[0].operations
    assert [type(op).__name__ for op in operations][-2:] == ["ExecuteSQL", "AddColumn"]


def test_squash_needs_two_migrations(tmp_path: Path) -> None:
    old = tmp_path / "migrations"
    revisions = four_migrations(old)
    write_project(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", MODELS)
    result = cli(tmp_path, "squash", "--to", revisions[0], "-m", "x", check=False)
    assert result.returncode == 2 and "at least two" in result.stderr


def test_squash_from_the_middle(tmp_path: Path) -> None:
    """--from REV: the squashed migration follows REV's parent; a database at that parent upgrades through it."""
    old = tmp_path / "old"
    revisions = four_migrations(old)
    full, part = tmp_path / "full.db", tmp_path / "part.db"
    cli(_project(tmp_path / "a", f"sqlite:///{full}", old), "upgrade")
    cli(_project(tmp_path / "b", f"sqlite:///{part}", old), "upgrade", revisions[0])
    execute(f"sqlite:///{part}", "INSERT INTO users (id) VALUES (7)")
    project = tmp_path / "b"
    cli(project, "squash", "--from", revisions[1], "-m", "rest")
    history = History.load(project / "migrations")
    assert history.revisions[0] == revisions[0] and list(history.chain[1].replaces) == revisions[1:]
    assert history.chain[1].parent == revisions[0] and len(history) == 2
    cli(project, "upgrade")
    assert inspect_schema(f"sqlite:///{part}") == inspect_schema(f"sqlite:///{full}")
    assert fetch_rows(f"sqlite:///{part}", "SELECT id FROM users") == [(7,)]
    assert cli(project, "status", check=False).returncode == 0


def test_squash_from_the_middle_refuses_a_rename(tmp_path: Path) -> None:
    """A rename inside a range after the first migration would become drop + add: refused, files untouched."""
    folder = tmp_path / "migrations"
    first = write_migration(folder, "create users", [_users()], None).revision
    email = write_migration(folder, "add email", [AddColumn("users", Column("email", Type("string", length=80)))],
                            first).revision
    second = write_migration(folder, "rename email", [RenameColumn("users", "email", "mail")], email).revision
    write_migration(folder, "add age", [AddColumn("users", Column("age", Type("integer")))], second)
    write_project(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", MODELS)
    before = {p.name: p.read_bytes() for p in folder.glob("*.py")}
    result = cli(tmp_path, "squash", "--from", second, "-m", "x", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "drop" in lines[0] and "email" in lines[0]
    assert {p.name: p.read_bytes() for p in folder.glob("*.py")} == before
