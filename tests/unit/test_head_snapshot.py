"""The committed head snapshot (`schemashift.head`, `schemashift.history.snapshot`): written with the manifest, read
only when intact and for exactly this code and manifest, and used so that a clean checkout imports no migration."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from schemashift.dialects import get_dialect
from schemashift.history import cache, loader, manifest, snapshot
from schemashift.history.chain import History
from schemashift.history.files import FILE_PATTERN, checksum_of
from schemashift.history.writer import write_migration
from schemashift.migration import (
    AddColumn,
    Column,
    CreateIndex,
    CreateTable,
    ExecuteSQL,
    Index,
    PrimaryKey,
    Table,
    Type,
)
from schemashift.operations import Operation
from schemashift.planning.fresh import plan_fresh


def users(schema: str | None = None) -> CreateTable:
    return CreateTable(Table("users", schema=schema, columns=(Column("id", Type("integer"), nullable=False),),
                             primary_key=PrimaryKey(("id",))))


def add(column: str) -> AddColumn:
    return AddColumn("users", Column(column, Type("string", length=50)))


DATA = ExecuteSQL("UPDATE users SET id = id")


def chain(folder: Path, steps: list[tuple[str, list[Operation]]]) -> History:
    """`steps` written as migrations with a manifest and a head snapshot (`schemashift manifest`)."""
    parent = None
    for message, operations in steps:
        parent = write_migration(folder, message, operations, parent).revision
    history = History.load(folder)
    manifest.write_all(folder, history)
    return history


def first_line(folder: Path) -> str:
    return (folder / manifest.MANIFEST_NAME).read_text().partition("\n")[0]


def current(folder: Path) -> snapshot.Snapshot | None:
    return snapshot.read(folder, first_line(folder))


def resealed(text: str) -> str:
    """`text` with its checksum line made right again (an edit that knows the format)."""
    body = text.rstrip("\n").rpartition("\n")[0] + "\n"
    return body + f"# sha256: {checksum_of(body.encode())}\n"


@pytest.fixture
def imports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the migration files imported from now on."""
    seen: list[str] = []
    real = loader.load_migration

    def counting(path: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(Path(path).name)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(loader, "load_migration", counting)
    return seen


STEPS: list[tuple[str, list[Operation]]] = [
    ("create users", [users()]), ("add email", [add("email")]),
    ("index email", [CreateIndex("users", Index("ix_email", ("email",)))]), ("audit", [users("audit")]),
]


def test_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    history = chain(folder, STEPS)
    path = folder / snapshot.SNAPSHOT_NAME
    assert path.is_file() and not FILE_PATTERN.match(path.name) and not path.name.endswith(".py")
    text = path.read_text()
    assert "do not edit" in text and "schemashift manifest" in text and "generate" in text
    assert text.splitlines()[-1].startswith("# sha256: ")
    found = current(folder)
    assert found is not None
    assert found.revision == history.head and found.code == cache.code_key()
    assert found.manifest == first_line(folder)
    assert dict(found.messages) == {m.revision: m.message for m in history.chain}
    assert found.state.schema == cache.state_at(History.load(folder), history.head)
    assert found.schema_names == frozenset({None, "audit"})
    assert snapshot.parse(snapshot.render(found), found.manifest) == found


def written(folder: Path, file_format: int = snapshot.FORMAT) -> Path:
    """The snapshot file of `STEPS`, in `file_format` (format 1: as the previous schemashift wrote it)."""
    chain(folder, STEPS)
    path = folder / snapshot.SNAPSHOT_NAME
    if file_format != snapshot.FORMAT:
        found = current(folder)
        assert found is not None
        path.write_text(snapshot.render(found, file_format))
    return path


def test_format_1_is_still_read(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    path = written(folder, 1)
    text = path.read_text()
    assert "\nformat = 1\n" in text and "operations = [\n    CreateTable(" in text and "from_json" not in text
    found = current(folder)
    assert found is not None and found.revision == History.load(folder).head
    assert snapshot.render(found) != text and snapshot.render(found, 1) == text
    assert snapshot.parse(snapshot.render(found), found.manifest) == found


def test_format_2_is_json_lines(tmp_path: Path) -> None:
    """One JSON value per message and per operation, in raw string literals read by `from_json`."""
    folder = tmp_path / "migrations"
    text = written(folder).read_text()
    assert f"\nformat = {snapshot.FORMAT}\n" in text
    lines = text.splitlines()
    opening = lines.index('operations = from_json(r"""')
    assert lines[opening + 1].startswith('{"@": "CreateTable", "table": {"@": "Table", "name": "users", ')
    assert lines[opening + 3] == '""")'  # audit.users, then users with its email column and index
    assert lines[lines.index('messages = dict(from_json(r"""') + 1].endswith('", "create users"]')
    found = current(folder)
    assert found is not None and snapshot.render(found) == text  # the same bytes when rewritten


def inserted(marker: str, line: str) -> Any:
    """An edit adding `line` after `marker`, resealed (an edit that knows the format)."""
    return lambda text: resealed(text.replace(marker, marker + line + "\n", 1))


MESSAGES, OPERATIONS = 'messages = dict(from_json(r"""\n', 'operations = from_json(r"""\n'
COMMON = {
    "tampered": lambda text: text.replace('"add email"', '"add e-mail"'),  # the checksum no longer matches
    "code": lambda text: resealed(text.replace(f'code = "{cache.code_key()}"', 'code = "000000000000"')),  # other code
    "format": lambda text: resealed(re.sub(r"(?m)^format = \d+$", "format = 99", text)),  # another format
    "unsealed": lambda text: text.rstrip("\n").rpartition("\n")[0] + "\n",  # no checksum line
    "conflict": lambda text: "<<<<<<< HEAD\n" + text + "=======\n" + text + ">>>>>>> other\n",  # merge conflict
    "resealed-conflict": lambda text: resealed("<<<<<<< HEAD\n" + text + "=======\n>>>>>>> other\n"),
    "empty": lambda text: "",
}
EDITS = {
    1: {
        "operation": lambda text: resealed(text.replace("operations = [", "operations = [\n    1,")),  # not operations
        "syntax": lambda text: resealed(text.replace("operations = [", "operations = [[")),  # not Python
        "messages": lambda text: resealed(text.replace("messages = {", "messages = {1: 2, ")),  # malformed field
    },
    2: {
        "operation": inserted(OPERATIONS, "1"),  # not an operation
        "list": inserted(OPERATIONS, '{"@list": []}'),
        "syntax": inserted(OPERATIONS, "[["),  # not JSON
        "not-json": inserted(OPERATIONS, "CreateTable(Table('t', columns=()))"),
        "blank-line": lambda text: resealed(text.replace('}}\n{"@"', '}}\n\n{"@"', 1)),
        "unknown-class": inserted(OPERATIONS, '{"@": "Nothing"}'),
        "not-a-dataclass": inserted(OPERATIONS, '{"@": "Operation"}'),
        "builtin": inserted(OPERATIONS, '{"@": "__builtins__"}'),
        "class-key-type": inserted(OPERATIONS, '{"@": {"a": 1}}'),
        "missing-field": inserted(OPERATIONS, '{"@": "DropTable"}'),
        "unknown-field": inserted(OPERATIONS, '{"@": "DropTable", "table": "users", "cascade": true}'),
        "invalid-value": lambda text: resealed(text.replace('"kind": "integer"', '"kind": "integral"', 1)),
        "bad-tag": inserted(OPERATIONS, '{"@": "DropTable", "table": {"@set": 1}}'),
        "messages": inserted(MESSAGES, "[1, 2]"),  # not a revision and its message
        "message-triple": inserted(MESSAGES, '["a", "b", "c"]'),
        "message-object": inserted(MESSAGES, '{"a": "b"}'),
        "raw-string-closed": inserted(OPERATIONS, '"""), ('),
    },
}


@pytest.mark.parametrize(("file_format", "edit"), [(f, e) for f in EDITS for e in [*COMMON, *EDITS[f]]])
def test_ignored_when_not_intact(tmp_path: Path, file_format: int, edit: str) -> None:
    folder = tmp_path / "migrations"
    path = written(folder, file_format)
    assert current(folder) is not None
    path.write_text({**COMMON, **EDITS[file_format]}[edit](path.read_text()))
    assert current(folder) is None


def test_read_from_a_checkout_with_crlf_line_endings(tmp_path: Path) -> None:
    """git's ``core.autocrlf`` (Windows) checks text files out with CRLF: the snapshot is still the same one, as the
    manifest and the migrations' checksums are."""
    folder = tmp_path / "migrations"
    history = chain(folder, STEPS)
    path = folder / snapshot.SNAPSHOT_NAME
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    found = current(folder)
    assert found is not None and found.revision == history.head


def test_ignored_for_another_manifest_or_when_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    chain(folder, STEPS)
    assert snapshot.read(folder, "h1:" + "0" * 64) is None
    (folder / snapshot.SNAPSHOT_NAME).write_bytes(b"\xff\xfe not utf-8")
    assert current(folder) is None
    (folder / snapshot.SNAPSHOT_NAME).unlink()
    assert current(folder) is None


def clean_checkout(folder: Path, root: Path) -> History:
    """The folder loaded as a clean checkout would be: no cache folder under `root`."""
    return manifest.load_history(folder, root)


def test_clean_checkout_imports_nothing_and_the_index_learns(tmp_path: Path, imports: list[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "migrations"
    written = chain(folder, STEPS)
    monkeypatch.setattr(cache, "RACY_NS", 0)
    history = clean_checkout(folder, tmp_path)
    assert imports == [] and not any(m.loaded for m in history.chain)
    assert [m.known_message for m in history.chain] == [m.message for m in written.chain]
    assert cache.state_at(history, history.head) == cache.state_at(written, written.head)
    assert cache.schema_names_through(history, history.head) == frozenset({None, "audit"})
    build = plan_fresh(history, get_dialect("sqlite"), history.head)
    assert build is not None and [m.revision for m in build.migrations] == written.revisions
    assert imports == []
    index = cache.StatIndex.load(cache.folder_cache(tmp_path, folder))
    assert {e.revision: e.message for e in index.entries.values()} == {m.revision: m.message for m in written.chain}
    again = manifest.load_history(folder, tmp_path)  # trusted by stat now
    assert [m.known_message for m in again.chain] == [m.message for m in written.chain] and imports == []


def test_a_stale_snapshot_is_not_used(tmp_path: Path, imports: list[str]) -> None:
    folder = tmp_path / "migrations"
    written = chain(folder, STEPS)
    last = written.chain[-1].path
    last.write_text(last.read_text() + "\n# edited\n")  # the manifest (and the snapshot with it) is now stale
    history = clean_checkout(folder, tmp_path)
    assert history.manifest_state == manifest.STALE and history.snapshot is None
    assert imports == [last.name]
    cache.state_at(history, history.head)
    assert len(imports) == len(STEPS)  # replayed from base


def test_a_data_migration_in_the_middle(tmp_path: Path, imports: list[str]) -> None:
    folder = tmp_path / "migrations"
    written = chain(folder, [("create users", [users()]), ("add email", [add("email")]), ("backfill", [DATA]),
                             ("add phone", [add("phone")])])
    found = current(folder)
    assert found is not None and found.revision == written.chain[1].revision
    assert set(found.messages) == set(written.revisions[:2])
    history = clean_checkout(folder, tmp_path)
    assert [m.known_message for m in history.chain] == ["create users", "add email", None, None]
    build = plan_fresh(history, get_dialect("sqlite"), history.head)
    assert build is not None and [m.revision for m in build.migrations] == written.revisions[:2]
    assert imports == []
    before = plan_fresh(history, get_dialect("sqlite"), written.revisions[0])  # a target before the snapshot
    assert before is None  # one migration: no build
    assert cache.state_at(history, history.head) == cache.state_at(written, written.head)
    assert imports == [written.chain[2].path.name, written.chain[3].path.name]  # only after the checkpoint


def test_a_first_data_migration_leaves_no_snapshot(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    chain(folder, STEPS)
    assert (folder / snapshot.SNAPSHOT_NAME).exists()
    first = sorted(folder.glob("0*.py"))[0]
    first.write_text(first.read_text().replace("operations = [", 'operations = [\n    ExecuteSQL("SELECT 1"),', 1))
    manifest.write_all(folder, History.load(folder))
    assert not (folder / snapshot.SNAPSHOT_NAME).exists()
    assert manifest.snapshot_problem(folder, History.load(folder)) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert manifest.write_all(empty, History.load(empty))[1] is None
    assert not (empty / snapshot.SNAPSHOT_NAME).exists()


def test_a_new_migration_moves_it_on(tmp_path: Path, imports: list[str]) -> None:
    """`write_migration` (what `generate` calls) keeps it current from the old snapshot alone."""
    folder = tmp_path / "migrations"
    written = chain(folder, STEPS)
    imports.clear()
    new = write_migration(folder, "add phone", [add("phone")], written.head)
    assert [name for name in imports if name != new.path.name] == []
    found = current(folder)
    assert found is not None and found.revision == new.revision and found.messages[new.revision] == "add phone"
    assert f"\nformat = {snapshot.FORMAT}\n" in (folder / snapshot.SNAPSHOT_NAME).read_text()  # `generate` too
    assert found.state.schema == cache.state_at(History.load(folder), new.revision)

    data = write_migration(folder, "backfill", [DATA], new.revision)  # not buildable: stays, for the new manifest
    found = current(folder)
    assert found is not None and found.revision == new.revision and data.revision not in found.messages
    after = write_migration(folder, "add fax", [add("fax")], data.revision)  # still the end of the fresh prefix
    found = current(folder)
    assert found is not None and found.revision == new.revision and after.revision not in found.messages
    assert manifest.snapshot_problem(folder, History.load(folder)) is None
    assert [name for name in imports if name not in (new.path.name, data.path.name, after.path.name)] == []


def test_a_new_migration_without_a_valid_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long history's stale snapshot is left (ignored) for `schemashift manifest`; a short one is written anew."""
    from schemashift.history import writer

    folder = tmp_path / "migrations"
    written = chain(folder, STEPS)
    path = folder / snapshot.SNAPSHOT_NAME
    path.write_text(path.read_text().replace('"add email"', '"edited"'))
    text = path.read_text()
    monkeypatch.setattr(writer, "SMALL", len(STEPS))
    phone = write_migration(folder, "add phone", [add("phone")], written.head)
    assert path.read_text() == text and current(folder) is None  # ignored until `schemashift manifest`
    assert manifest.snapshot_problem(folder, History.load(folder)) == f"{snapshot.SNAPSHOT_NAME} is stale"
    manifest.write_all(folder, History.load(folder))
    assert manifest.snapshot_problem(folder, History.load(folder)) is None

    path.unlink()
    monkeypatch.undo()
    fax = write_migration(folder, "add fax", [add("fax")], phone.revision)
    found = current(folder)
    assert found is not None and found.revision == fax.revision and found.messages[phone.revision] == "add phone"


def test_a_first_migration_starts_it(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    manifest.write(folder, [])  # what any command writes for a new project
    first = write_migration(folder, "create users", [users()], None)
    found = current(folder)
    assert found is not None and found.revision == first.revision


def test_rebuild_rewrites_it(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    written = chain(folder, STEPS)
    written.chain[-1].path.unlink()
    manifest.rebuild(folder)
    found = current(folder)
    assert found is not None and found.revision == written.chain[-2].revision
    assert f"\nformat = {snapshot.FORMAT}\n" in (folder / snapshot.SNAPSHOT_NAME).read_text()


def test_a_stored_state_is_used_before_the_snapshot_is_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm cache with the state at the snapshot's revision does not run the snapshot file (only its header is
    read)."""
    folder = tmp_path / "migrations"
    written = chain(folder, STEPS)
    path = folder / snapshot.SNAPSHOT_NAME
    text = path.read_text()
    path.unlink()
    cache.state_at(manifest.load_history(folder, tmp_path), written.head)  # replayed and stored on disk
    path.write_text(text)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the snapshot was run")
    monkeypatch.setattr(snapshot, "parse", never)
    history = manifest.load_history(folder, tmp_path)
    assert history.snapshot is not None and history.snapshot.revision() == written.head
    assert cache.state_at(history, written.head) == cache.state_at(written, written.head)
