"""Migration files on disk: loading, broken files, the revision chain, targets, paths and writing."""

from __future__ import annotations

import re
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from schemashift.errors import MigrationError, RevisionError
from schemashift.migration import Column, CreateTable, ExecuteSQL, PrimaryKey, RunPython, Table, Type
from schemashift.history.chain import History
from schemashift.history.loader import Migration, load_migration
from schemashift.history.writer import new_revision_id, next_filename, slugify, write_migration

SAMPLE = '''\
"""Add users table.

Revision: 3f2a9c1b7d4e
Parent: 1a2b3c4d5e6f
Created: 2026-11-25 18:30
"""
from schemashift.migration import *  # noqa: F401,F403

revision = "3f2a9c1b7d4e"
parent = "1a2b3c4d5e6f"
message = "Add users table"


def forward(ctx):
    ctx.connection.exec_driver_sql("UPDATE users SET name = 'x'")


def backward(ctx):
    pass


operations = [
    CreateTable(
        Table(
            "users",
            columns=(
                Column("id", Type("integer"), nullable=False, autoincrement=True),
                Column("name", Type("string", length=50)),
            ),
            primary_key=PrimaryKey(("id",)),
        ),
    ),
    RunPython(forward, reverse=backward),
    ExecuteSQL("UPDATE users SET name = 'y'", reverse="UPDATE users SET name = 'x'"),
]
'''


def migration_source(revision: str, parent: str | None, body: str = "operations = []") -> str:
    return (
        f'"""Step {revision}."""\nfrom schemashift.migration import *\n\n'
        f"revision = {revision!r}\nparent = {parent!r}\nmessage = 'step {revision}'\n{body}\n"
    )


def make_folder(folder: Path, files: dict[str, tuple[str, str | None]]) -> Path:
    """Write migration files {name: (revision, parent)} into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (revision, parent) in files.items():
        (folder / name).write_text(migration_source(revision, parent))
    return folder


def broken(tmp_path: Path, source: str, name: str = "0007_broken.py") -> MigrationError:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    with pytest.raises(MigrationError) as info:
        load_migration(path)
    text = str(info.value)
    assert name in text and "\n" not in text
    return info.value


A, B, C, D = "aaaa11111111", "bbbb22222222", "cccc33333333", "dddd44444444"


@pytest.fixture
def linear(tmp_path: Path) -> History:
    """Four migrations whose file names are NOT in parent order."""
    folder = make_folder(
        tmp_path / "migrations",
        {"0001_first.py": (A, None), "0002_third.py": (C, B), "0003_second.py": (B, A), "0004_fourth.py": (D, C)},
    )
    return History.load(folder)


# -- loading --------------------------------------------------------------


def test_load_sample(tmp_path: Path) -> None:
    path = tmp_path / "0002_add_users.py"
    path.write_text(SAMPLE)
    migration = load_migration(path)
    assert (migration.revision, migration.parent, migration.message) == ("3f2a9c1b7d4e", "1a2b3c4d5e6f", "Add users table")
    assert migration.path == path
    assert [type(op) for op in migration.operations] == [CreateTable, RunPython, ExecuteSQL]
    table = migration.operations[0].table
    assert table == Table("users", columns=(Column("id", Type("integer"), nullable=False, autoincrement=True),
                                           Column("name", Type("string", length=50))), primary_key=PrimaryKey(("id",)))
    step = migration.operations[1]
    assert step.forward.__name__ == "forward" and step.reverse.__name__ == "backward"
    assert re.fullmatch(r"[0-9a-f]{64}", migration.checksum)


def test_checksum_ignores_line_endings(tmp_path: Path) -> None:
    unix, windows = tmp_path / "0001_unix.py", tmp_path / "0001_windows.py"
    unix.write_bytes(SAMPLE.encode())
    windows.write_bytes(SAMPLE.replace("\n", "\r\n").encode())
    assert load_migration(unix).checksum == load_migration(windows).checksum
    edited = tmp_path / "0001_edited.py"
    edited.write_text(SAMPLE.replace("length=50", "length=51"))
    assert load_migration(edited).checksum != load_migration(unix).checksum


def test_modules_do_not_leak_or_clash(tmp_path: Path) -> None:
    before = set(sys.modules)
    first = make_folder(tmp_path / "one", {"0001_x.py": (A, None)})
    second = make_folder(tmp_path / "two", {"0001_x.py": (B, None)})
    assert load_migration(first / "0001_x.py").revision == A
    assert load_migration(second / "0001_x.py").revision == B
    assert set(sys.modules) == before
    assert not (first / "__pycache__").exists()


def test_edits_are_seen_immediately(tmp_path: Path) -> None:
    path = tmp_path / "0001_x.py"
    path.write_text(migration_source(A, None))
    assert load_migration(path).revision == A
    path.write_text(migration_source(B, None))  # same size, same second: no stale bytecode
    assert load_migration(path).revision == B


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    error = broken(tmp_path, 'revision = "x"\nparent = None\n\ndef forward(ctx:\n    pass\n')
    assert "0007_broken.py:4" in str(error) and "syntax" in str(error)


def test_name_error_names_file_and_line(tmp_path: Path) -> None:
    error = broken(tmp_path, 'from schemashift.migration import *\nrevision = "abc123"\nparent = None\n'
                   'operations = [AddColumn("t", Colum("c", Type("text")))]\n')
    assert "0007_broken.py:4" in str(error) and "NameError" in str(error) and "Colum" in str(error)


def test_error_raised_inside_the_file_is_one_line(tmp_path: Path) -> None:
    error = broken(tmp_path, 'def boom():\n    raise RuntimeError("first\\nsecond")\n\nboom()\n')
    assert "0007_broken.py:2" in str(error) and "RuntimeError: first second" in str(error)


def test_invalid_model_value_is_reported(tmp_path: Path) -> None:
    error = broken(tmp_path, 'from schemashift.migration import *\nrevision = "abc123"\nparent = None\n'
                   'operations = [AddColumn("t", Column("c", Type("strng")))]\n')
    assert "unknown type kind" in str(error)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('parent = None\noperations = []', "missing `revision"),
        ('revision = "abc123"\noperations = []', "missing `parent"),
        ('revision = "abc123"\nparent = None', "missing `operations"),
        ('revision = 5\nparent = None\noperations = []', "`revision` must be str"),
        ('revision = ""\nparent = None\noperations = []', "`revision` must be a non-empty id"),
        ('revision = "abc123"\nparent = 7\noperations = []', "`parent` must be str or NoneType"),
        ('revision = "abc123"\nparent = None\noperations = "x"', "`operations` must be list or tuple"),
        ('revision = "abc123"\nparent = None\nmessage = 3\noperations = []', "`message` must be a string"),
        ('revision = "abc123"\nparent = None\noperations = [1]', "operation 1 is a int"),
        ('from schemashift.migration import *\nrevision = "abc123"\nparent = None\n'
         'operations = [ExecuteSQL("x"), Table("t", columns=())]', "operation 2 is a Table"),
    ],
)
def test_wrong_contents(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in str(broken(tmp_path, body))


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="0009_gone.py"):
        load_migration(tmp_path / "0009_gone.py")
    (tmp_path / "0008_binary.py").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MigrationError, match="0008_binary.py"):
        load_migration(tmp_path / "0008_binary.py")


# -- the chain ------------------------------------------------------------


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    for folder in (tmp_path, tmp_path / "nope"):
        history = History.load(folder)
        assert history.chain == [] and history.head is None and len(history) == 0
        assert history.resolve("head", None) is None and history.resolve("base", None) is None
        assert history.upgrade_path(None, None) == []


def test_chain_follows_parents_not_file_names(linear: History) -> None:
    assert [m.revision for m in linear.chain] == [A, B, C, D]
    assert [m.path.name for m in linear] == ["0001_first.py", "0003_second.py", "0002_third.py", "0004_fourth.py"]
    assert linear.head == D
    assert linear.index(C) == 2 and linear.index(None) == -1
    assert linear.get(B).path.name == "0003_second.py" and linear.get("zzzz") is None
    assert isinstance(linear[A], Migration) and A in linear and "zzzz" not in linear
    with pytest.raises(RevisionError):
        linear["zzzz"]
    with pytest.raises(RevisionError, match="not in the migrations folder"):
        linear.index("ffff00000000")


def test_other_files_are_ignored(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"0001_a.py": (A, None)})
    (folder / "__init__.py").write_text("raise SystemExit")
    (folder / "helpers.py").write_text("raise SystemExit")
    (folder / "0002_notes.txt").write_text("not python")
    (folder / "README.md").write_text("# migrations")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "0001_a.cpython-311.pyc").write_bytes(b"junk")
    (folder / "0003_dir.py").mkdir()
    assert [m.revision for m in History.load(folder)] == [A]


def test_a_broken_file_stops_loading(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"0001_a.py": (A, None)})
    (folder / "0002_b.py").write_text("revision = (")
    with pytest.raises(MigrationError, match="0002_b.py"):
        History.load(folder)


def test_duplicate_revisions(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"0001_a.py": (A, None), "0002_b.py": (A, None)})
    with pytest.raises(MigrationError, match=r"0001_a.py and 0002_b.py both declare revision aaaa11111111"):
        History.load(folder)


def test_missing_parent(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"0001_a.py": (A, None), "0002_b.py": (B, "ffff00000000")})
    with pytest.raises(MigrationError, match=r"0002_b.py: parent ffff00000000 does not exist"):
        History.load(folder)


def test_two_roots(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"0001_a.py": (A, None), "0002_b.py": (B, None)})
    with pytest.raises(MigrationError) as info:
        History.load(folder)
    assert "0001_a.py" in str(info.value) and "0002_b.py" in str(info.value) and "first migrations" in str(info.value)


def test_fork_names_both_files_and_the_fix(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"0001_a.py": (A, None), "0002_mine.py": (B, A), "0002_theirs.py": (C, A)})
    with pytest.raises(MigrationError) as info:
        History.load(folder)
    text = str(info.value)
    assert "0002_mine.py" in text and "0002_theirs.py" in text and "schemashift rebase" in text and "\n" not in text


def test_cycle(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"0001_a.py": (A, None), "0002_b.py": (B, C), "0003_c.py": (C, B)})
    with pytest.raises(MigrationError, match="cycle"):
        History.load(folder)


# -- targets --------------------------------------------------------------


def test_resolve_named_and_relative_targets(linear: History) -> None:
    assert linear.resolve("head", A) == D
    assert linear.resolve("base", C) is None
    assert linear.resolve("-1", D) == C
    assert linear.resolve("-2", D) == B
    assert linear.resolve("-1", A) is None
    assert linear.resolve("+1", None) == A
    assert linear.resolve("+2", B) == D
    assert linear.resolve("+0", B) == B
    assert linear.resolve(" head ", None) == D


@pytest.mark.parametrize(("target", "current"), [("-1", None), ("-5", C), ("+1", D), ("+5", None)])
def test_relative_targets_out_of_range(linear: History, target: str, current: str | None) -> None:
    with pytest.raises(RevisionError, match="out of range") as info:
        linear.resolve(target, current)
    assert "\n" not in str(info.value)


def test_resolve_ids_and_prefixes(linear: History) -> None:
    assert linear.resolve(B, None) == B
    assert linear.resolve("cccc", None) == C
    assert linear.resolve("dddd4444", A) == D


def test_ambiguous_prefix(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"0001_a.py": ("abcd11111111", None), "0002_b.py": ("abcd22222222", "abcd11111111")})
    with pytest.raises(RevisionError) as info:
        History.load(folder).resolve("abcd", None)
    text = str(info.value)
    assert "ambiguous" in text and "abcd11111111 (0001_a.py)" in text and "abcd22222222 (0002_b.py)" in text
    assert History.load(folder).resolve("abcd2", None) == "abcd22222222"


@pytest.mark.parametrize("target", ["cccc3333x", "zzzzzz", "abc", "", "-x", "head+1"])
def test_unknown_targets_list_options(linear: History, target: str) -> None:
    with pytest.raises(RevisionError) as info:
        linear.resolve(target, None)
    text = str(info.value)
    assert "options: head, base" in text and "\n" not in text


def test_unknown_target_suggests_the_nearest(linear: History) -> None:
    with pytest.raises(RevisionError, match=r"options: head, base, cccc33333333 \(0002_third.py\)"):
        linear.resolve("cccc3333x", None)


def test_short_prefixes_are_refused(linear: History) -> None:
    with pytest.raises(RevisionError, match="at least 4 characters"):
        linear.resolve("ccc", None)


# -- paths ----------------------------------------------------------------


def revisions(migrations: list[Migration]) -> list[str]:
    return [m.revision for m in migrations]


def test_upgrade_paths(linear: History) -> None:
    assert revisions(linear.upgrade_path(None, D)) == [A, B, C, D]
    assert revisions(linear.upgrade_path(A, C)) == [B, C]
    assert revisions(linear.upgrade_path(C, C)) == []
    with pytest.raises(RevisionError, match="use downgrade"):
        linear.upgrade_path(C, A)


def test_downgrade_paths(linear: History) -> None:
    assert revisions(linear.downgrade_path(D, None)) == [D, C, B, A]
    assert revisions(linear.downgrade_path(D, B)) == [D, C]
    assert revisions(linear.downgrade_path(B, B)) == []
    assert revisions(linear.downgrade_path(None, None)) == []
    with pytest.raises(RevisionError, match="use upgrade"):
        linear.downgrade_path(A, C)


def test_paths_from_an_unknown_revision(linear: History) -> None:
    with pytest.raises(RevisionError, match="ffff00000000"):
        linear.upgrade_path("ffff00000000", D)


# -- writing --------------------------------------------------------------


def test_revision_ids() -> None:
    ids = {new_revision_id() for _ in range(200)}
    assert len(ids) == 200 and all(re.fullmatch(r"[0-9a-f]{12}", rid) for rid in ids)


@pytest.mark.parametrize(
    ("message", "slug"),
    [
        ("Add users table", "add_users_table"),
        ("  Add  e-mail (unique!) ", "add_e_mail_unique"),
        ("Crème brûlée: ÄÖÜ naïve", "creme_brulee_aou_naive"),
        ("", "migration"),
        ("日本語", "migration"),
        ("one two three four five six seven eight nine ten", "one_two_three_four_five_six_seven_eight"),
        ("x" * 60, "x" * 40),
    ],
)
def test_slugs(message: str, slug: str) -> None:
    assert slugify(message) == slug
    assert len(slugify(message)) <= 40


def test_next_filename_numbers(tmp_path: Path) -> None:
    assert next_filename(tmp_path / "missing", "Init") == tmp_path / "missing" / "0001_init.py"
    make_folder(tmp_path, {"0001_a.py": (A, None), "0009_b.py": (B, A)})
    (tmp_path / "0100_notes.txt").write_text("")
    assert next_filename(tmp_path, "Add email").name == "0010_add_email.py"
    (tmp_path / "00012_c.py").write_text("")
    assert next_filename(tmp_path, "x").name == "00013_x.py"


def test_write_migrations_form_a_chain(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    table = Table("users", columns=(Column("id", Type("integer"), nullable=False),), primary_key=PrimaryKey(("id",)))
    first = write_migration(folder, "Create users", [CreateTable(table)], None, created=datetime(2026, 1, 2, 3, 4))
    second = write_migration(folder, "Data fix", [], first.revision)
    assert first.path.name == "0001_create_users.py" and second.path.name == "0002_data_fix.py"
    assert first.operations == [CreateTable(table)] and second.operations == []
    assert "Created: 2026-01-02 03:04" in first.path.read_text()
    assert sorted(p.name for p in folder.iterdir()) == ["0001_create_users.py", "0002_data_fix.py"]
    history = History.load(folder)
    assert history.revisions == [first.revision, second.revision]
    assert history.get(first.revision).checksum == first.checksum


def test_rewriting_a_loaded_data_migration_keeps_its_functions(tmp_path: Path) -> None:
    source = tmp_path / "0001_sample.py"
    source.write_text(SAMPLE)
    loaded = load_migration(source)
    again = write_migration(tmp_path / "out", loaded.message, loaded.operations, loaded.parent, revision=loaded.revision)
    text = again.path.read_text()
    assert "ctx.connection.exec_driver_sql(\"UPDATE users SET name = 'x'\")" in text
    assert again.operations[0] == loaded.operations[0] and again.operations[2] == loaded.operations[2]
    assert again.operations[1].forward.__name__ == "forward"


def test_write_refuses_unrenderable_steps(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="lambda"):
        write_migration(tmp_path, "bad", [RunPython(lambda ctx: None)], None)
    assert list(tmp_path.iterdir()) == []
