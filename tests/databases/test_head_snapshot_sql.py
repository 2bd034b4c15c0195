"""A cold fresh build from a head snapshot that holds the build's compiled SQL (`Snapshot.compiled`): a clean
checkout (no ``.schemashift-cache/``) brings an empty database to head compiling nothing, and the database reflects
exactly as after a step-by-step upgrade; under another `cache.source_key` (schemashift or SQLAlchemy changed) the
statements are ignored and compiled as before, with the same result.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from databases.test_fresh_build import full_inspection, history_folder
from databases.test_head_snapshot import checkout
from features_cycle import Cycle
from schemashift import api
from schemashift.dialects import compiling, get_dialect
from schemashift.history import cache, manifest, snapshot
from schemashift.history.chain import History
from schemashift.planning import fresh

__all__ = ["history_folder"]  # the module's fixture, shared with test_fresh_build

NAMES = ("sqlite", "postgresql", "mysql", "mariadb")


@pytest.fixture(scope="module")
def committed(history_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The history, its manifest and its head snapshot with the statements on every dialect, as committed."""
    folder = tmp_path_factory.mktemp("committed") / "migrations"
    shutil.copytree(history_folder, folder)
    manifest.write_all(folder, History.load(folder), [get_dialect(name) for name in NAMES])
    found = snapshot.read(folder, (folder / manifest.MANIFEST_NAME).read_text().partition("\n")[0])
    assert found is not None and set(found.compiled) == set(NAMES)
    return folder


@pytest.fixture(scope="module")
def reference(db_url: str, committed: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The database after a step-by-step upgrade (then taken down again: empty for the cold builds)."""
    cycle = checkout(db_url, tmp_path_factory.mktemp("stepped"), committed)
    api.upgrade(cycle.project, out=cycle.output.append, step_by_step=True)
    seen = full_inspection(db_url)
    cycle.downgrade("base")
    return seen


def compiles(monkeypatch: pytest.MonkeyPatch, allowed: bool) -> list[str]:
    """The dialects a fresh build's compile ran for from now on (an AssertionError when not `allowed`)."""
    calls: list[str] = []
    real = compiling.compile_operations

    def watched(dialect: Any, *args: Any) -> Any:
        calls.append(dialect.registry_name)
        assert allowed, "a statement was compiled"
        return real(dialect, *args)
    monkeypatch.setattr(compiling, "compile_operations", watched)
    monkeypatch.setattr(fresh, "compile_in_order", lambda *args: (_ for _ in ()).throw(AssertionError("compiled"))
                        if not allowed else compiling.compile_in_order(*args))
    return calls


def cold_build(url: str, directory: Path, committed: Path) -> Cycle:
    cycle = checkout(url, directory, committed)
    cycle.upgrade()
    assert any(line.startswith("applied 5 migrations as one fresh build") for line in cycle.output), cycle.output
    return cycle


def test_a_cold_build_compiles_nothing(db_url: str, committed: Path, reference: dict[str, Any], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls = compiles(monkeypatch, allowed=False)
    cycle = cold_build(db_url, tmp_path / "cold", committed)
    try:
        assert calls == []
        assert full_inspection(db_url) == reference
        assert api.status(cycle.project).exit_code == 0
        assert cycle.diff() == []
    finally:
        monkeypatch.undo()
        cycle.downgrade("base")


def test_another_source_key_compiles_as_before(db_url: str, committed: Path, reference: dict[str, Any],
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "source_key", lambda: "0123456789ab")  # another schemashift or SQLAlchemy
    calls = compiles(monkeypatch, allowed=True)
    cycle = cold_build(db_url, tmp_path / "other", committed)
    try:
        assert calls != []
        assert full_inspection(db_url) == reference
        assert api.status(cycle.project).exit_code == 0
    finally:
        monkeypatch.undo()
        cycle.downgrade("base")
