"""End to end through the CLI on SQLite, PostgreSQL and MariaDB: the P1 walking skeleton.

models v1 -> generate -> upgrade -> rows -> models v2 -> generate -> upgrade ->
live schema equals v2 -> downgrade -1 -> equals v1, rows kept -> upgrade again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import cli, execute, scalar, set_models, write_project

V1 = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    born: Mapped[int | None] = mapped_column(sa.Integer)
    nickname: Mapped[str | None] = mapped_column(sa.String(30))
    active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
'''

V2 = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), index=True)
    born: Mapped[int | None] = mapped_column(sa.BigInteger)
    email: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())

class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("author.id", ondelete="CASCADE"))
    price: Mapped[float | None] = mapped_column(sa.Numeric(10, 2))
'''


@pytest.fixture(scope="module")
def project(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("proj"), db_url, V1)


def test_v1_generate_and_upgrade(project: Path, db_url: str) -> None:
    first = cli(project, "generate", "-m", "create author")
    assert "create table author" in first.stdout
    assert len(list((project / "migrations").glob("0001_*.py"))) == 1
    again = cli(project, "generate", "-m", "nothing")
    assert "No changes" in again.stdout
    assert len(list((project / "migrations").glob("*.py"))) == 1
    cli(project, "check")
    cli(project, "upgrade")
    execute(db_url, "INSERT INTO author (name, born, nickname) VALUES ('Ada', 1815, 'countess')",
            "INSERT INTO author (name, born) VALUES ('Alan', 1912)")
    assert cli(project, "diff").returncode == 0


def test_v2_generate_upgrade_matches_models(project: Path, db_url: str) -> None:
    set_models(project, V2)
    assert cli(project, "check", check=False).returncode == 1
    result = cli(project, "generate", "-m", "books and email", "--no-rename")
    for expected in ("create table book", "add column author.email", "drop column author.nickname",
                     "alter column author.name", "create index"):
        assert expected in result.stdout, result.stdout
    assert cli(project, "generate", "-m", "again").stdout.startswith("No changes")
    cli(project, "check")
    cli(project, "upgrade")
    diff = cli(project, "diff", check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert scalar(db_url, "SELECT count(*) FROM author") == 2
    assert scalar(db_url, "SELECT born FROM author WHERE name = 'Alan'") == 1912
    execute(db_url, "INSERT INTO book (title, author_id, price) VALUES ('Notes', 1, 9.50)")


def test_downgrade_one_returns_to_v1_with_rows(project: Path, db_url: str) -> None:
    cli(project, "downgrade", "-1")
    set_models(project, V1)
    diff = cli(project, "diff", check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert scalar(db_url, "SELECT count(*) FROM author") == 2
    assert scalar(db_url, "SELECT name FROM author WHERE born = 1815") == "Ada"


def test_upgrade_again_and_status(project: Path, db_url: str) -> None:
    set_models(project, V2)
    cli(project, "upgrade")
    assert cli(project, "diff", check=False).returncode == 0
    status = cli(project, "status")
    assert "Pending: 0" in status.stdout
    assert scalar(db_url, "SELECT count(*) FROM author") == 2
