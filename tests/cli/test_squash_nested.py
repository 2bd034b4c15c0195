"""Nested squashes, and `stamp` / `upgrade --sql --from` naming a revision a squash replaced (SQLite)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from helpers import cli, execute, fetch_rows, inspect_schema, write_project
from schemashift.history.chain import History
from schemashift.history.writer import write_migration
from schemashift.migration import AddColumn, Column, CreateIndex, CreateTable, ExecuteSQL, Index, PrimaryKey, Table, Type

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id = sa.Column(sa.Integer, primary_key=True)
    email = sa.Column(sa.String(80), index=True)
    age = sa.Column(sa.Integer)
    city = sa.Column(sa.String(40))
"""


def five(folder: Path) -> list[str]:
    steps = [
        [CreateTable(Table("users", columns=(Column("id", Type("integer"), nullable=False),),
                           primary_key=PrimaryKey(("id",))))],
        [AddColumn("users", Column("email", Type("string", length=80)))],
        [AddColumn("users", Column("age", Type("integer"))), ExecuteSQL("UPDATE users SET age = 30")],
        [CreateIndex("users", Index("ix_users_email", ("email",)))],
        [AddColumn("users", Column("city", Type("string", length=40)))],
    ]
    revisions: list[str] = []
    for number, operations in enumerate(steps, 1):
        revisions.append(write_migration(folder, f"step {number}", operations,
                                         revisions[-1] if revisions else None).revision)
    return revisions


def _db(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}.db"


def _use(project: Path, url: str) -> None:
    toml = project / "schemashift.toml"
    lines = [f'url = "{url}"' if line.startswith("url = ") else line for line in toml.read_text().splitlines()]
    toml.write_text("\n".join(lines) + "\n")


def test_nested_squash_stamp_and_offline_from_a_replaced_revision(tmp_path: Path) -> None:
    old = write_project(tmp_path / "old", _db(tmp_path, "full"), MODELS)
    revisions = five(old / "migrations")
    cli(old, "upgrade")
    for name in ("mid", "stamped", "offline"):
        _use(old, _db(tmp_path, name))
        cli(old, "upgrade", revisions[1])
        execute(_db(tmp_path, name), "INSERT INTO users (id, email) VALUES (1, 'a@b.c')")
    execute(_db(tmp_path, "stamped"), "DELETE FROM schemashift_version")  # as if built by hand

    new = tmp_path / "new"
    shutil.copytree(old, new)
    _use(new, _db(tmp_path, "fresh"))
    cli(new, "squash", "--to", revisions[2], "-m", "first three")
    inner = History.load(new / "migrations").chain[0]
    cli(new, "squash", "-m", "everything")  # holds the first squash
    history = History.load(new / "migrations")
    assert len(history) == 1 and list(history.chain[0].replaces) == [inner.revision, *revisions[3:]]
    kept = sorted(p.name for p in (new / "migrations" / "replaced").glob("*.py"))
    assert len(kept) == 6 and inner.path.name in kept
    cli(new, "manifest", "--check")
    full = inspect_schema(_db(tmp_path, "full"))

    cli(new, "upgrade")  # fresh from the squash
    assert inspect_schema(_db(tmp_path, "fresh")) == full

    # at revision 2 of the inner squash: runs step 3 (data step too), records the inner squash, runs 4-5, records the outer
    _use(new, _db(tmp_path, "mid"))
    result = cli(new, "upgrade")
    assert result.stdout.count("Recorded") == 2, result.stdout
    assert inspect_schema(_db(tmp_path, "mid")) == full
    assert fetch_rows(_db(tmp_path, "mid"), "SELECT id, email, age FROM users") == [(1, "a@b.c", 30)]
    assert cli(new, "status", check=False).returncode == 0 and cli(new, "verify", check=False).returncode == 0
    assert fetch_rows(_db(tmp_path, "mid"), "SELECT revision FROM schemashift_version") == [(history.head,)]

    # the database at head with the old files: recorded at the outer squash (all its parts ran), nothing run
    _use(new, _db(tmp_path, "full"))
    assert cli(new, "status", check=False).returncode == 0
    assert cli(new, "upgrade").stdout.count("Recorded") == 1
    assert fetch_rows(_db(tmp_path, "full"), "SELECT revision FROM schemashift_version") == [(history.head,)]
    assert cli(new, "status", check=False).returncode == 0 and inspect_schema(_db(tmp_path, "full")) == full

    # stamp naming a replaced revision (by prefix), then upgrade
    _use(new, _db(tmp_path, "stamped"))
    assert "Recorded" in cli(new, "stamp", revisions[1][:8], "--yes").stdout
    cli(new, "upgrade")
    assert inspect_schema(_db(tmp_path, "stamped")) == full
    assert cli(new, "status", check=False).returncode == 0

    # --sql --from a replaced revision: the script brings a database there to head and records the squashes
    _use(new, _db(tmp_path, "offline"))
    script = cli(new, "upgrade", "--sql", "--from", revisions[1]).stdout
    assert "UPDATE users SET age = 30" in script and "record " in script
    with sqlite3.connect(tmp_path / "offline.db") as connection:
        connection.executescript(script)
    assert inspect_schema(_db(tmp_path, "offline")) == full
    assert fetch_rows(_db(tmp_path, "offline"), "SELECT revision FROM schemashift_version") == [(history.head,)]
    assert cli(new, "status", check=False).returncode == 0
