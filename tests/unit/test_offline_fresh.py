"""`upgrade --sql` from base prints the fresh build `upgrade` runs on an empty database (SQL snapshots, no database).

Three migrations, written with fixed revisions, give one fresh build: the tables
of the head schema, then the version row of every migration (``statements_done``
0, as `schemashift.runtime.fresh` records them), in one transaction where DDL is
transactional. ``--step-by-step`` or ``step_by_step = true`` print every
migration instead; a data migration on the way ends the build before it. The
cached script (`offline.cached_script`) answers the same text.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from schemashift import cli
from schemashift.history import manifest
from schemashift.history.writer import write_migration
from schemashift.migration import AddColumn, Column, CreateTable, ExecuteSQL, ForeignKey, Index, PrimaryKey, Table, Type
from schemashift.planning import offline

URLS = {"sqlite": "sqlite:///nowhere.db", "postgresql": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "mysql": "mysql+pymysql://nobody@127.0.0.1:1/none"}

ROWS = """\
INSERT INTO schemashift_version (revision, parent, checksum, message, state, direction, statements_done) VALUES ('a1', NULL, '<checksum>', 'authors', 'applied', 'up', 0);
INSERT INTO schemashift_version (revision, parent, checksum, message, state, direction, statements_done) VALUES ('b2', 'a1', '<checksum>', 'books', 'applied', 'up', 0);
INSERT INTO schemashift_version (revision, parent, checksum, message, state, direction, statements_done) VALUES ('c3', 'b2', '<checksum>', 'title', 'applied', 'up', 0);
"""
TITLE = "-- fresh build: 3 migrations (0001_authors .. 0003_title) as one, from the schema at c3\n"
EXPECTED = {
    "sqlite": TITLE + """BEGIN;
CREATE TABLE authors (
\tid INTEGER NOT NULL,
\tname VARCHAR(50) NOT NULL,
\tPRIMARY KEY (id)
);
CREATE TABLE books (
\tid INTEGER NOT NULL,
\tauthor_id INTEGER NOT NULL,
\ttitle VARCHAR(80),
\tPRIMARY KEY (id),
\tCONSTRAINT fk_books_author FOREIGN KEY(author_id) REFERENCES authors (id)
);
CREATE INDEX ix_books_author ON books (author_id);
""" + ROWS + "COMMIT;",
    "postgresql": TITLE + """BEGIN;
CREATE TABLE authors (id SERIAL NOT NULL, name VARCHAR(50) NOT NULL, PRIMARY KEY (id));
CREATE TABLE books (id SERIAL NOT NULL, author_id INTEGER NOT NULL, title VARCHAR(80), PRIMARY KEY (id), \
CONSTRAINT fk_books_author FOREIGN KEY(author_id) REFERENCES authors (id));
CREATE INDEX ix_books_author ON books (author_id);
""" + ROWS + "COMMIT;",
    "mysql": TITLE + """\
CREATE TABLE authors (id INTEGER NOT NULL AUTO_INCREMENT, name VARCHAR(50) NOT NULL, PRIMARY KEY (id));
CREATE TABLE books (id INTEGER NOT NULL AUTO_INCREMENT, author_id INTEGER NOT NULL, title VARCHAR(80), \
PRIMARY KEY (id), CONSTRAINT fk_books_author FOREIGN KEY(author_id) REFERENCES authors (id));
CREATE INDEX ix_books_author ON books (author_id);
""" + ROWS.rstrip("\n"),
}


def _project(root: Path, *, settings: str = "", data_migration: bool = False) -> Path:
    folder = root / "migrations"
    folder.mkdir(parents=True)
    when = datetime(2026, 1, 1)
    authors = Table("authors", columns=(Column("id", Type("integer"), nullable=False, autoincrement=True),
                                        Column("name", Type("string", length=50), nullable=False)),
                    primary_key=PrimaryKey(("id",)))
    books = Table("books", columns=(Column("id", Type("integer"), nullable=False, autoincrement=True),
                                    Column("author_id", Type("integer"), nullable=False)),
                  primary_key=PrimaryKey(("id",)), indexes=(Index("ix_books_author", ("author_id",)),),
                  foreign_keys=(ForeignKey(("author_id",), "authors", ("id",), name="fk_books_author"),))
    third = [AddColumn("books", Column("title", Type("string", length=80)))]
    write_migration(folder, "authors", [CreateTable(authors)], None, revision="a1", created=when)
    write_migration(folder, "books", [CreateTable(books)], "a1", revision="b2", created=when)
    write_migration(folder, "title", [*third, *([ExecuteSQL("UPDATE books SET title = 'x'")] if data_migration else [])],
                    "b2", revision="c3", created=when)
    manifest.rebuild(folder)
    (root / "schemashift.toml").write_text('migrations = "migrations"\ndefault_env = "t"\n[env.t]\n' + settings)
    return root


def _script(root: Path, url: str, *more: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert cli.main(["--config", str(root / "schemashift.toml"), "upgrade", "--sql", "--url", url, *more]) == 0
    return capsys.readouterr().out.rstrip("\n")


def _fresh_part(script: str) -> str:
    """The script from the fresh build on, checksums as ``<checksum>``, no space at the ends of lines."""
    text = re.sub(r"'[0-9a-f]{64}'", "'<checksum>'", script[script.index("-- fresh build"):])
    return "\n".join(line.rstrip() for line in text.splitlines())


@pytest.mark.parametrize("backend", sorted(URLS))
def test_sql_from_base_is_the_fresh_build(tmp_path: Path, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "p")
    script = _script(root, URLS[backend], "--from", "base", capsys=capsys)
    assert script.startswith(f"-- schemashift upgrade: base -> c3 ({backend})\nCREATE TABLE schemashift_version")
    assert _fresh_part(script) == EXPECTED[backend]
    assert "-- apply " not in script
    assert offline.cached_script(cli.parse_args(["--config", str(root / "schemashift.toml"), "upgrade", "--sql",
                                                 "--url", URLS[backend], "--from", "base"])) == script
    assert _script(root, URLS[backend], "--from", "base", capsys=capsys) == script  # from the cache


@pytest.mark.parametrize("how", ["flag", "setting"])
def test_step_by_step_prints_every_migration(tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "p", settings="step_by_step = true\n" if how == "setting" else "")
    more = ["--step-by-step"] if how == "flag" else []
    for _ in range(2):  # compiled, then from the cache: the same
        script = _script(root, URLS["postgresql"], "--from", "base", *more, capsys=capsys)
        assert "-- fresh build" not in script
        assert [line.split(":")[0] for line in script.splitlines() if line.startswith("-- apply")] == [
            "-- apply 0001_authors (a1)", "-- apply 0002_books (b2)", "-- apply 0003_title (c3)"]


def test_a_data_migration_ends_the_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "p", data_migration=True)
    script = _script(root, URLS["postgresql"], "--from", "base", capsys=capsys)
    assert "-- fresh build: 2 migrations (0001_authors .. 0002_books) as one, from the schema at b2" in script
    assert script.index("-- fresh build") < script.index("-- apply 0003_title (c3)")
    assert "ADD COLUMN title" in script and "UPDATE books SET title = 'x'" in script
    assert _script(root, URLS["postgresql"], "--from", "base", capsys=capsys) == script  # cached alike


def test_from_a_revision_is_step_by_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "p")
    script = _script(root, URLS["postgresql"], "--from", "a1", capsys=capsys)
    assert "-- fresh build" not in script and "-- apply 0002_books (b2)" in script


def test_a_long_build_commits_in_parts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Where DDL is transactional the script commits about every `TRANSACTION_SIZE` statements, never inside one
    operation's statements, and the version rows go with the last part (as `upgrade` runs a long build)."""
    from schemashift.planning import fresh

    monkeypatch.setattr(fresh, "TRANSACTION_SIZE", 1)
    root = _project(tmp_path / "p")
    script = _fresh_part(_script(root, URLS["postgresql"], "--from", "base", capsys=capsys))
    parts = script.split("COMMIT;\nBEGIN;\n")
    assert len(parts) == 2, script
    assert parts[0].rstrip().endswith("PRIMARY KEY (id));")  # authors alone
    assert parts[1].startswith("CREATE TABLE books") and "CREATE INDEX ix_books_author" in parts[1]
    assert parts[1].endswith(ROWS + "COMMIT;")


def test_sql_for_a_sqlite_file_not_there_yet_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``upgrade --sql`` for a SQLite file not created yet prints the fresh build of an empty database, and leaves
    no file behind (as `status` and `envs` leave none)."""
    root = _project(tmp_path / "p")
    url = f"sqlite:///{tmp_path / 'later.db'}"
    script = _script(root, url, capsys=capsys)
    assert not (tmp_path / "later.db").exists()
    assert _fresh_part(script) == EXPECTED["sqlite"]


def test_dry_run_for_a_sqlite_file_not_there_yet_creates_nothing(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "p")
    capsys.readouterr()
    url = f"sqlite:///{tmp_path / 'later.db'}"
    assert cli.main(["--config", str(root / "schemashift.toml"), "upgrade", "--dry-run", "--url", url]) == 0
    assert capsys.readouterr().out.startswith("Fresh build on sqlite: base -> c3 (3 migrations")
    assert not (tmp_path / "later.db").exists()
