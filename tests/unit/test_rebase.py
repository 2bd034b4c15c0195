"""`schemashift rebase`: forked migration histories (two merged git branches) made linear again."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from helpers import cli, scalar, write_project
from schemashift import api
from schemashift.errors import MigrationError
from schemashift.migration import AddColumn, Column, CreateTable, CreateIndex, Index, PrimaryKey, Table, Type
from schemashift.operations import Operation
from schemashift.history import manifest
from schemashift.history.chain import History, load_all
from schemashift.history.rebase import find_forks, rebase, reparent_source
from schemashift.history.writer import write_migration

EARLY, LATE = datetime(2026, 3, 1, 9, 0), datetime(2026, 3, 2, 17, 30)


def users() -> CreateTable:
    return CreateTable(Table("users", columns=(Column("id", Type("integer"), nullable=False),),
                             primary_key=PrimaryKey(("id",))))


def add(column: str) -> AddColumn:
    return AddColumn("users", Column(column, Type("string", length=50)))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def merged(tmp_path: Path, older: list[tuple[str, list[Operation]]], newer: list[tuple[str, list[Operation]]],
           *, older_created: datetime = EARLY, newer_created: datetime = LATE) -> tuple[Path, str]:
    """A folder as git leaves it after merging two branches that each added migrations on the same parent."""
    main = tmp_path / "migrations"
    base = write_migration(main, "create users", [users()], None, created=datetime(2026, 1, 1))
    for name, steps, created in (("older", older, older_created), ("newer", newer, newer_created)):
        branch = tmp_path / name
        shutil.copytree(main, branch)
        parent = base.revision
        for message, operations in steps:
            parent = write_migration(branch, message, operations, parent, created=created).revision
    for name in ("older", "newer"):
        for path in (tmp_path / name).iterdir():
            shutil.copy2(path, main / path.name)
    return main, base.revision


def test_history_load_names_both_files_and_rebase(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    base = write_migration(folder, "create users", [users()], None)
    first = write_migration(folder, "add email", [add("email")], base.revision)
    second = write_migration(folder, "add phone", [add("phone")], first.revision)
    second.path.write_text(second.path.read_text().replace(first.revision, base.revision))  # the hand-made fork
    with pytest.raises(MigrationError) as caught:
        History.load(folder)
    message = str(caught.value)
    assert first.path.name in message and second.path.name in message and "schemashift rebase" in message
    forks = find_forks(load_all(folder))
    assert [(parent, [m.path.name for m in roots]) for parent, roots in forks] == [
        (base.revision, [first.path.name, second.path.name])
    ]


def test_newer_branch_goes_on_top_and_numbering_continues(tmp_path: Path) -> None:
    folder, base = merged(tmp_path, [("add email", [add("email")]), ("add age", [add("age")])],
                          [("add phone", [add("phone")]), ("index phone", [CreateIndex("users", Index("ix_phone", ("phone",)))])])
    before = snapshot(folder)
    older = {m.revision: m for m in load_all(folder) if m.message in ("add email", "add age")}
    lines: list[str] = []
    changed = rebase(folder, out=lines.append)

    history = History.load(folder)
    assert [m.path.name for m in history] == [
        "0001_create_users.py", "0002_add_email.py", "0003_add_age.py", "0004_add_phone.py", "0005_index_phone.py",
    ]
    assert [m.message for m in history][1:3] == ["add email", "add age"] and set(history.revisions[1:3]) == set(older)
    root = history.chain[3]
    assert root.parent == history.chain[2].revision and history.chain[1].parent == base
    assert changed == [folder / "0004_add_phone.py", folder / "0005_index_phone.py"]
    after = snapshot(folder)
    for name in ("0001_create_users.py", "0002_add_email.py", "0003_add_age.py"):
        assert after[name] == before[name]
    assert after["0005_index_phone.py"] == before["0003_index_phone.py"]
    old_root = before["0002_add_phone.py"].decode()
    expected = old_root.replace(f'parent = "{base}"', f'parent = "{root.parent}"').replace(
        f"Parent: {base}", f"Parent: {root.parent}")
    assert after["0004_add_phone.py"].decode() == expected != old_root
    assert not [name for name in after if name.startswith(".")]
    assert any("0002_add_phone.py -> 0004_add_phone.py" in line for line in lines)
    assert rebase(folder, out=lines.append) == [] and "Nothing to rebase" in lines[-1]


def test_created_header_beats_file_number(tmp_path: Path) -> None:
    folder, _ = merged(tmp_path, [("add email", [add("email")])], [("add phone", [add("phone")])],
                       older_created=LATE, newer_created=EARLY)
    rebase(folder, out=lambda line: None)
    assert [m.message for m in History.load(folder)] == ["create users", "add phone", "add email"]
    assert sorted(p.name for p in folder.iterdir()) == ["0001_create_users.py", "0002_add_phone.py", "0003_add_email.py"]


def test_same_created_time_breaks_ties_by_number(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    base = write_migration(folder, "create users", [users()], None, created=EARLY)
    first = write_migration(folder, "add email", [add("email")], base.revision, created=EARLY)
    second = write_migration(folder, "add phone", [add("phone")], base.revision, created=EARLY)
    rebase(folder, out=lambda line: None)
    assert History.load(folder).revisions == [base.revision, first.revision, second.revision]
    assert second.path.exists()  # already numbered after the other branch: only re-parented


def test_two_first_migrations_and_crlf_files(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    one = write_migration(folder, "create users", [users()], None, created=EARLY)
    two = write_migration(folder, "create things", [CreateTable(Table("things", columns=(Column("id", Type("integer")),)))],
                          None, created=LATE)
    crlf = two.path.read_bytes().replace(b"\n", b"\r\n")
    two.path.write_bytes(crlf)
    rebase(folder, out=lambda line: None)
    assert History.load(folder).revisions == [one.revision, two.revision]
    assert two.path.read_bytes() == crlf.replace(b"parent = None", f'parent = "{one.revision}"'.encode()).replace(
        b"Parent: (none)", f"Parent: {one.revision}".encode())


def test_nested_forks_and_three_branches(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    base = write_migration(folder, "create users", [users()], None, created=EARLY)
    a = write_migration(folder, "add a", [add("a")], base.revision, created=datetime(2026, 3, 1, 10))
    b = write_migration(folder, "add b", [add("b")], base.revision, created=datetime(2026, 3, 1, 11))
    b1 = write_migration(folder, "add b1", [add("b1")], b.revision, created=datetime(2026, 3, 1, 13))
    b2 = write_migration(folder, "add b2", [add("b2")], b.revision, created=datetime(2026, 3, 1, 12))
    c = write_migration(folder, "add c", [add("c")], base.revision, created=datetime(2026, 3, 1, 14))
    rebase(folder, out=lambda line: None)
    history = History.load(folder)
    assert history.revisions == [base.revision, a.revision, b.revision, b2.revision, b1.revision, c.revision]
    assert [m.path.name[:4] for m in history] == ["0001", "0002", "0003", "0004", "0005", "0006"]


def test_conflicting_branches_are_refused_and_nothing_changes(tmp_path: Path) -> None:
    folder, _ = merged(tmp_path, [("add email", [add("email")])], [("add mail", [add("phone"), add("email")])])
    before = snapshot(folder)
    with pytest.raises(MigrationError) as caught:
        rebase(folder, out=lambda line: None)
    message = str(caught.value)
    assert "0002_add_mail.py" in message and "0002_add_email.py" in message and "users.email already exists" in message
    assert snapshot(folder) == before


def test_unrewritable_parent_is_refused(tmp_path: Path) -> None:
    folder, base = merged(tmp_path, [("add email", [add("email")])], [("add phone", [add("phone")])])
    path = folder / "0002_add_phone.py"
    path.write_text(path.read_text().replace(f'parent = "{base}"', f'parent = "{base}"[:]'))
    before = snapshot(folder)
    with pytest.raises(MigrationError, match="by hand"):
        rebase(folder, out=lambda line: None)
    assert snapshot(folder) == before
    assert reparent_source(b"parent: str | None = 'x'  # keep\n", "abc") == b"parent: str | None = 'abc'  # keep\n"


def test_renames_that_take_each_others_names(tmp_path: Path) -> None:
    folder, _ = merged(tmp_path, [("add email", [add("email")])], [("step", [add("phone")]), ("step", [add("age")])])
    before = snapshot(folder)
    rebase(folder, out=lambda line: None)
    after = snapshot(folder)
    assert list(after) == ["0001_create_users.py", "0002_add_email.py", "0003_step.py", "0004_step.py"]
    assert after["0004_step.py"] == before["0003_step.py"] and b"phone" in after["0003_step.py"]


def test_failed_proof_restores_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import schemashift.history.rebase as scripts

    folder, _ = merged(tmp_path, [("add email", [add("email")])], [("step", [add("phone")]), ("step", [add("age")])])
    before = snapshot(folder)

    def broken_proof(folder: Path, expected: object) -> None:
        raise MigrationError("replay failed")

    monkeypatch.setattr(scripts, "_prove", broken_proof)
    with pytest.raises(MigrationError, match="every file was restored"):
        rebase(folder, out=lambda line: None)
    assert snapshot(folder) == before


MODELS = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    email: Mapped[str | None] = mapped_column(sa.String(50))
    phone: Mapped[str | None] = mapped_column(sa.String(50))
'''


def test_cli_rebase_on_sqlite_project(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    project = write_project(tmp_path / "proj", url, MODELS)
    folder = project / "migrations"
    base = write_migration(folder, "create users", [users()], None, created=EARLY)
    phone = write_migration(folder, "add phone", [add("phone")], base.revision, created=LATE)
    cli(project, "upgrade")  # this database got the newer branch before the merge
    shutil.move(phone.path, tmp_path / phone.path.name)
    email = write_migration(folder, "add email", [add("email")], base.revision, created=EARLY)
    shutil.move(tmp_path / phone.path.name, folder / "0002_add_phone.py")
    manifest.write(folder, manifest.entries_of([base, email]))  # the sum file as the merge left it

    refused = cli(project, "upgrade", check=False)
    assert refused.returncode == 2 and "schemashift rebase" in refused.stderr and "Traceback" not in refused.stderr

    done = cli(project, "rebase")
    assert "0002_add_phone.py -> 0003_add_phone.py" in done.stdout
    assert "verify --accept" in done.stdout and "lacks 0002_add_email.py" in done.stdout
    assert "OK" in cli(project, "manifest", "--check").stdout  # rewritten with the re-parented file's checksum
    assert [row["file"] for row in api.history(api.open_project(project / "schemashift.toml"))] == [
        "0001_create_users.py", "0002_add_email.py", "0003_add_phone.py",
    ]
    assert cli(project, "verify", check=False).returncode == 1
    cli(project, "verify", "--accept")
    cli(project, "check")

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    cli(project, "upgrade", "--url", fresh)
    assert scalar(fresh, "SELECT count(*) FROM pragma_table_info('users')") == 3
