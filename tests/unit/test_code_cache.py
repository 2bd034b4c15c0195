"""Compiled migration modules kept in the project cache give exactly what compiling the files gives.

`loader.load_migration(path, code_cache)` reuses an entry of the folder's pack
(`cache.CodePack`, one file written at exit; here saved by hand) only for the
same bytes, Python and path: edited, moved and broken files are compiled again,
a damaged or unwritable cache only costs the compile.
"""

from __future__ import annotations

import marshal
import shutil
import stat
import sys
from pathlib import Path

import pytest

from schemashift.history import cache
from schemashift.history import manifest
from schemashift.history import chain, loader
from schemashift.errors import MigrationError

MIGRATION = '''from schemashift.migration import *

revision = "{revision}"
parent = {parent}
message = "{message}"
operations = [
    CreateTable(Table("{table}", columns=(Column("id", Type("integer"), nullable=False),),
                      primary_key=PrimaryKey(("id",)))),
]
'''


def _write(folder: Path, number: int, message: str = "step") -> Path:
    parent = "None" if number == 1 else f'"r{number - 1:04d}"'
    path = folder / f"{number:04d}_step.py"
    path.write_text(MIGRATION.format(revision=f"r{number:04d}", parent=parent, message=message, table=f"t{number}"))
    return path


def _project(tmp_path: Path, count: int = 3) -> tuple[Path, Path]:
    root = tmp_path / "project"
    folder = root / "migrations"
    folder.mkdir(parents=True)
    for number in range(1, count + 1):
        _write(folder, number)
    return root, folder


def _loaded(root: Path, folder: Path) -> list[tuple[str, str | None, str, str]]:
    history = manifest.load_history(folder, root)
    loaded = [(m.revision, m.parent, m.message, repr(m.operations)) for m in history.chain]
    _saved(root, folder)
    return loaded


def _saved(root: Path, folder: Path) -> dict[str, bytes]:
    """Write the pack as the process would at exit; what another process then reads from it."""
    cache.code_pack(_entries(root, folder)).save()
    return cache.CodePack(_entries(root, folder)).entries_on_disk()


def _entries(root: Path, folder: Path) -> Path:
    code = cache.code_folder(cache.folder_cache(root, folder))
    assert code is not None
    return code


def test_cached_modules_load_as_compiled_ones(tmp_path: Path) -> None:
    root, folder = _project(tmp_path)
    plain = [(m.revision, m.parent, m.message, repr(m.operations)) for m in chain.History.load(folder).chain]
    assert _loaded(root, folder) == plain
    assert sorted(_saved(root, folder)) == ["0001_step.py", "0002_step.py", "0003_step.py"]
    assert [p.name for p in _entries(root, folder).iterdir()] == ["pack"]  # one file, however many migrations
    assert (root / cache.CACHE_NAME / ".gitignore").exists()
    cache.code_pack.cache_clear()  # as another process: the entries come from the file
    for name in _saved(root, folder):  # the entry is used: a second load reads it
        path = folder / name
        assert loader.load_migration(path, _entries(root, folder)).operations == loader.load_migration(path).operations


def test_an_edited_file_is_compiled_again(tmp_path: Path) -> None:
    root, folder = _project(tmp_path)
    _loaded(root, folder)
    path = _write(folder, 2, message="edited")
    migration = loader.load_migration(path, _entries(root, folder))
    assert migration.message == "edited"
    assert loader.load_migration(path, _entries(root, folder)).message == "edited"


def test_a_moved_project_reports_its_own_paths(tmp_path: Path) -> None:
    root, folder = _project(tmp_path, 1)
    _loaded(root, folder)
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)  # the cache comes along, with the old path inside the compiled code
    broken = moved / "migrations" / "0001_step.py"
    broken.write_text(broken.read_text() + "raise ValueError('boom')\n")
    with pytest.raises(MigrationError, match=r"0001_step.py:\d+: ValueError: boom"):
        loader.load_migration(broken, _entries(root, folder))
    fine = _write(moved / "migrations", 1)
    code = loader._compiled(fine, fine.read_bytes(), _entries(root, folder))
    assert code.co_filename == str(fine)


@pytest.mark.parametrize("damage", [b"", b"garbage", b"\0" * 40])
def test_a_damaged_entry_is_ignored_and_replaced(tmp_path: Path, damage: bytes) -> None:
    root, folder = _project(tmp_path)
    expected = _loaded(root, folder)
    entries = _saved(root, folder)
    good = entries["0002_step.py"]
    entries["0002_step.py"] = damage if damage else good[:20]
    (_entries(root, folder) / "pack").write_bytes(marshal.dumps(entries))
    cache.code_pack.cache_clear()
    assert _loaded(root, folder) == expected
    assert loader.load_migration(folder / "0002_step.py", _entries(root, folder)).revision == "r0002"
    assert _saved(root, folder)["0002_step.py"] == good


def test_a_syntax_error_is_reported_and_not_cached(tmp_path: Path) -> None:
    root, folder = _project(tmp_path, 1)
    path = folder / "0002_bad.py"
    path.write_text('revision = "r0002"\nparent = "r0001"\noperations = [\n')
    with pytest.raises(MigrationError, match="0002_bad.py:.*syntax error"):
        loader.load_migration(path, _entries(root, folder))
    assert "0002_bad.py" not in _saved(root, folder)


def test_an_unwritable_cache_only_costs_the_compile(tmp_path: Path) -> None:
    root, folder = _project(tmp_path)
    code = _entries(root, folder)
    code.parent.mkdir(parents=True, exist_ok=True)
    code.write_text("a file where the folder would be")
    assert _loaded(root, folder) == [(m.revision, m.parent, m.message, repr(m.operations))
                                      for m in chain.History.load(folder).chain]
    code.unlink()
    code.mkdir()
    code.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert loader.load_migration(folder / "0001_step.py", code).revision == "r0001"
    finally:
        code.chmod(stat.S_IRWXU)


def test_a_migration_runs_as_a_module_of_its_own(tmp_path: Path) -> None:
    """It sees its own ``__file__`` and a unique ``__name__`` that `sys.modules` holds while it runs, not after."""
    path = tmp_path / "0001_step.py"
    path.write_text('import sys\nrevision = "r0001"\nparent = None\noperations = []\n'
                    'message = f"{__file__}|{sys.modules[__name__].__name__ == __name__}|{__name__}"\n')
    file, registered, name = loader.load_migration(path).message.split("|")
    assert (file, registered) == (str(path), "True")
    assert name.startswith("_schemashift_migration_")
    assert name not in sys.modules
    with pytest.raises(MigrationError, match="not a Python file"):
        loader.load_migration(path.rename(tmp_path / "0001_step.txt"))


def test_messages_read_once_are_kept_in_the_stat_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stat index written from the manifest knows no messages; those a run reads (importing the files) are
    noted at exit, so that the next run gets them without importing (a fresh build records every message)."""
    monkeypatch.setattr(cache, "RACY_NS", 0)  # trust entries at once
    root, folder = _project(tmp_path)
    directory = cache.folder_cache(root, folder)
    index = cache.StatIndex(directory)
    for number, path in enumerate(sorted(folder.glob("*.py")), start=1):
        parent = None if number == 1 else f"r{number - 1:04d}"
        index.put(path.name, cache.IndexEntry.of(path.stat(), loader.checksum_of(path.read_bytes()),
                                                 f"r{number:04d}", parent, None))
    index.save()
    history = manifest.load_history(folder, root)
    assert [m.known_message for m in history.chain] == [None, None, None]
    assert history.chain[0].message == "step"  # imports that one file
    manifest._save_messages(directory)  # what the exit hook does
    assert [e.message for _, e in sorted(cache.StatIndex.load(directory).entries.items())] == ["step", None, None]
    again = manifest.load_history(folder, root)
    assert again.chain[0].known_message == "step" and not again.chain[0].loaded


def test_saving_at_exit_never_recreates_a_deleted_project(tmp_path: Path) -> None:
    """An exit hook that saves the cache of a project folder deleted meanwhile (a test's temporary project) leaves
    it deleted."""
    root, folder = _project(tmp_path)
    history = manifest.load_history(folder, root)
    assert history.chain[0].operations  # compiled: the pack has something to save
    pack = cache.code_pack(_entries(root, folder))
    shutil.rmtree(root)
    pack.save()
    index = cache.StatIndex(cache.folder_cache(root, folder), {}, 0)
    index.changed = True
    index.save()
    assert not root.exists()
