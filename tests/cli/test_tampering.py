"""Tampering: edited, missing, unknown and forked migrations, each caught by `status`, `upgrade` and `verify`.

Every case starts from a database with some revisions applied and one pending,
then tampers with the folder or the version table. `status` reports the problem
(exit 0, a PROBLEM line), `upgrade` refuses (exit 2, one line on stderr) and
`verify` fails (exit 1); each message names what resolves it. Around every
command the database is compared with a snapshot — version and history rows
and the reflected schema — and must not have changed. `verify --accept` records
an intended edit, after which everything passes and the pending revision applies.

The CLI runs in-process (`schemashift.cli.main`), against the module's database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers import execute
from schemashift import cli
from schemashift.migration import AddColumn, Column, CreateIndex, CreateTable, Index, PrimaryKey, Table, Type
from schemashift.history.loader import Migration
from schemashift.history.writer import write_migration


@dataclass
class Project:
    """A project folder on the module's database, with three revisions applied to the first two."""

    directory: Path
    url: str
    migrations: list[Migration]

    @property
    def config(self) -> str:
        return str(self.directory / "schemashift.toml")


def run(project: Project, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`schemashift --config … ARGS` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli.main(["--config", project.config, *args])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(url: str) -> tuple[object, ...]:
    """Version rows, history rows and the schema (tables, columns, indexes) of the database."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = sorted(inspector.get_table_names())
            schema = [(name, [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
                      sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(name)))
                      for name in tables]
            versions = [tuple(row) for row in conn.exec_driver_sql(
                "SELECT revision, parent, checksum, state, statements_done FROM schemashift_version ORDER BY revision")]
            history = [tuple(row) for row in conn.exec_driver_sql(
                "SELECT revision, direction, checksum, outcome FROM schemashift_version_history ORDER BY id")]
    finally:
        engine.dispose()
    return tables, schema, versions, history


def drop_all(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            metadata = sa.MetaData()
            metadata.reflect(conn)
            metadata.drop_all(conn)
    finally:
        engine.dispose()


@pytest.fixture
def project(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    """Three migrations, the first two applied; the database is emptied first (one per module and backend)."""
    drop_all(db_url)
    (tmp_path / "schemashift.toml").write_text(
        f'migrations = "migrations"\ndefault_env = "test"\n\n[env.test]\nurl = "{db_url}"\n')
    folder = tmp_path / "migrations"
    key = Column("id", Type("integer"), nullable=False, autoincrement=True)
    first = write_migration(folder, "create book", [CreateTable(Table(
        "book", columns=(key, Column("title", Type("string", length=40))), primary_key=PrimaryKey(("id",))))], None)
    second = write_migration(folder, "add isbn", [AddColumn("book", Column("isbn", Type("string", length=13)))],
                             first.revision)
    third = write_migration(folder, "index isbn", [CreateIndex("book", Index("ix_book_isbn", ("isbn",)))],
                            second.revision)
    project = Project(tmp_path, db_url, [first, second, third])
    code, _, err = run(project, capsys, "upgrade", second.revision)
    assert code == 0, err
    return project


def one_line(err: str) -> str:
    """The single error line of a refused command."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("schemashift: error: ") and "Traceback" not in err, err
    return lines[0]


def assert_detected(project: Project, capsys: pytest.CaptureFixture[str], *expected: str,
                    status_fails: bool = False) -> None:
    """`status`, `status --json`, `upgrade` and `verify` all report it and leave the database as it was."""
    before = snapshot(project.url)

    code, out, err = run(project, capsys, "status")
    if status_fails:  # the folder itself cannot be read as one history
        assert code == 2 and all(text in one_line(err) for text in expected), err
    else:
        assert code == 2, err  # a problem that needs action
        problems = [line for line in out.splitlines() if line.startswith("PROBLEM: ")]
        assert len(problems) == 1 and all(text in problems[0] for text in expected), out
        code, out, err = run(project, capsys, "status", "--json")
        assert code == 2 and all(text in json.loads(out)["problems"][0] for text in expected), out
    assert snapshot(project.url) == before

    code, out, err = run(project, capsys, "upgrade")
    assert code == 2 and all(text in one_line(err) for text in expected), (code, out, err)
    assert not any(line.startswith("applied ") for line in out.splitlines()), out
    assert snapshot(project.url) == before

    code, out, err = run(project, capsys, "verify")
    if status_fails:
        assert code == 2 and all(text in one_line(err) for text in expected), err
    else:
        assert code == 1, (code, out, err)
        problems = [line for line in out.splitlines() if line.startswith("PROBLEM: ")]
        assert any(all(text in line for text in expected) for line in problems), out
    assert snapshot(project.url) == before


def test_edited_migration_is_detected(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.migrations[0].path
    path.write_text(path.read_text().replace("length=40", "length=80"))
    assert_detected(project, capsys, path.name, "edited after it was applied", "schemashift verify --accept")


def test_verify_accept_records_an_intended_edit(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.migrations[1].path
    path.write_text(path.read_text() + "\n# reviewed: isbn is 13 characters\n")
    code, out, _ = run(project, capsys, "verify", "--accept")
    assert code == 0 and f"accepted the edit of {path.name}" in out, out
    code, out, _ = run(project, capsys, "verify")
    assert code == 0 and out.startswith("OK:"), out
    code, out, _ = run(project, capsys, "status")
    assert "PROBLEM" not in out and "Pending: 1" in out, out
    code, out, err = run(project, capsys, "upgrade")
    assert code == 0 and f"applied {project.migrations[2].path.stem}" in out, err
    code, out, _ = run(project, capsys, "history", "--applied", "--json")
    rows = json.loads(out)
    assert [(row["revision"], row["direction"], row["outcome"]) for row in rows] == [
        (project.migrations[0].revision, "up", "ok"), (project.migrations[1].revision, "up", "ok"),
        (project.migrations[1].revision, "accept", "accepted"), (project.migrations[2].revision, "up", "ok"),
    ]


def test_accept_does_not_excuse_a_missing_file(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.migrations[2].path.unlink()
    project.migrations[1].path.unlink()
    before = snapshot(project.url)
    code, out, _ = run(project, capsys, "verify", "--accept")
    assert code == 1 and "missing" in out, out
    assert snapshot(project.url) == before


def test_missing_applied_migration_is_detected(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # the applied head's file (and the pending one after it) deleted: the folder is still one line
    project.migrations[2].path.unlink()
    project.migrations[1].path.unlink()
    assert_detected(project, capsys, project.migrations[1].revision, "migration file is missing",
                    "restore it from version control")


def test_missing_file_inside_the_chain_is_detected(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.migrations[1].path.unlink()  # 0003's parent is gone from the folder
    assert_detected(project, capsys, project.migrations[2].path.name, project.migrations[1].revision,
                    "does not exist", status_fails=True)


def test_unknown_revision_in_database_is_detected(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # a revision this folder never had: the database was migrated by other (newer) code
    execute(project.url, "INSERT INTO schemashift_version (revision, parent, checksum, message, state, direction, "
                         f"statements_done) VALUES ('0badc0ffee00', '{project.migrations[1].revision}', 'x', "
                         "'from another branch', 'applied', 'up', 1)")
    assert_detected(project, capsys, "0badc0ffee00", "migration file is missing")


def test_forked_migrations_are_detected(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # another branch also added a migration after 0002; git merged both files
    folder = project.directory / "migrations"
    other = write_migration(folder, "add price", [AddColumn("book", Column("price", Type("integer")))],
                            project.migrations[1].revision)
    assert_detected(project, capsys, project.migrations[2].path.name, other.path.name, "schemashift rebase",
                    status_fails=True)
    code, out, err = run(project, capsys, "rebase")
    assert code == 0, err
    code, out, err = run(project, capsys, "upgrade")
    assert code == 0 and out.count("applied ") == 2, (out, err)
