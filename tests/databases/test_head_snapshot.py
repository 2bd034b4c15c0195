"""A cold fresh build from the committed head snapshot (`schemashift.head`): a clean checkout (no
``.schemashift-cache/``) brings an empty database to head importing no migration module, and the database
reflects exactly as after a step-by-step upgrade; a hand-edited snapshot is ignored and the build is still right.

Each migration file of the history (the five versions of `test_fresh_build`) notes its own import in a file
beside it, so the test sees any import, whatever path it takes. One database per module: the step-by-step
reference is built first and taken down again (``downgrade base``) before each cold build.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from databases.test_fresh_build import full_inspection, history_folder, project_on
from features_cycle import Cycle
from helpers import fetch_rows
from schemashift import api
from schemashift.history import manifest, snapshot
from schemashift.history.chain import History

MARK = '\nopen(__file__ + ".imported", "a").close()  # the test sees this module imported\n'


@pytest.fixture(scope="module")
def committed(history_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The history with import marks, its manifest and its head snapshot, as a commit would hold them."""
    folder = tmp_path_factory.mktemp("committed") / "migrations"
    shutil.copytree(history_folder, folder)
    for path in folder.glob("0*.py"):
        path.write_text(path.read_text() + MARK)
    manifest.write_all(folder, History.load(folder))
    for mark in folder.glob("*.imported"):
        mark.unlink()
    assert (folder / snapshot.SNAPSHOT_NAME).is_file()
    return folder


def checkout(url: str, directory: Path, committed: Path) -> Cycle:
    """A clean checkout of the project: the committed folder, no cache."""
    cycle = project_on(url, directory, committed)
    for name in (manifest.MANIFEST_NAME, snapshot.SNAPSHOT_NAME):
        shutil.copy(committed / name, directory / "migrations" / name)
    assert not (directory / ".schemashift-cache").exists()
    return cycle


def imported(cycle: Cycle) -> list[str]:
    return sorted(path.name for path in (cycle.directory / "migrations").glob("*.imported"))


@pytest.fixture(scope="module")
def reference(db_url: str, committed: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The database after a step-by-step upgrade (then taken down again: empty for the cold builds)."""
    cycle = checkout(db_url, tmp_path_factory.mktemp("stepped"), committed)
    api.upgrade(cycle.project, out=cycle.output.append, step_by_step=True)
    seen = full_inspection(db_url)
    messages = sorted(fetch_rows(db_url, "SELECT revision, message FROM schemashift_version"))
    cycle.downgrade("base")
    return {"schema": seen, "messages": messages}


def cold_build(url: str, directory: Path, committed: Path) -> Cycle:
    cycle = checkout(url, directory, committed)
    cycle.upgrade()
    assert any(line.startswith("applied 5 migrations as one fresh build") for line in cycle.output), cycle.output
    return cycle


def test_a_cold_build_imports_no_migration(db_url: str, committed: Path, reference: dict[str, Any],
                                           tmp_path: Path) -> None:
    cycle = cold_build(db_url, tmp_path / "cold", committed)
    try:
        assert imported(cycle) == []
        assert full_inspection(db_url) == reference["schema"]
        assert sorted(fetch_rows(db_url, "SELECT revision, message FROM schemashift_version")) == reference["messages"]
        assert api.status(cycle.project).exit_code == 0
        assert cycle.diff() == []
    finally:
        cycle.downgrade("base")


def test_a_hand_edited_snapshot_is_ignored(db_url: str, committed: Path, reference: dict[str, Any],
                                           tmp_path: Path) -> None:
    cycle = checkout(db_url, tmp_path / "edited", committed)
    path = cycle.directory / "migrations" / snapshot.SNAPSHOT_NAME
    path.write_text(path.read_text().replace('"users"', '"customers"'))  # a table renamed by hand
    cycle.upgrade()
    try:
        assert any(line.startswith("applied 5 migrations as one fresh build") for line in cycle.output)
        assert imported(cycle) != []  # the migrations, not the snapshot
        assert full_inspection(db_url) == reference["schema"]
        assert api.status(cycle.project).exit_code == 0
    finally:
        cycle.downgrade("base")
