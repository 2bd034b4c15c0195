"""The script of ``upgrade --sql`` from base, run on an empty database, gives what `upgrade` gives.

The history of `test_fresh_build` (renames, type changes, indexes, constraints,
a view; sequences and an enum on PostgreSQL) is printed with ``--sql --from base``
(no connection) and with ``--sql`` against the empty database (connected): both
are the fresh build `upgrade` runs. The script is run by the database's own
driver, statement batches as a client sends them, on one empty database;
`upgrade` runs on another. Both reflect alike, hold the same version rows, and
`status` is clean on the scripted one. ``--step-by-step`` prints every migration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from databases.test_fresh_build import _second_db, full_inspection, history_folder, project_on
from helpers import cli, fetch_rows, run_script
from schemashift import api

__all__ = ["history_folder"]  # the module's fixture, shared

ROW = "SELECT revision, parent, checksum, message, state, direction, statements_done FROM schemashift_version"


def test_sql_script_equals_upgrade(backend: str, fresh_db: str, history_folder: Path, tmp_path: Path,
                                   request: pytest.FixtureRequest) -> None:
    scripted = project_on(fresh_db, tmp_path / "scripted", history_folder)
    upgraded = project_on(_second_db(backend, request, tmp_path), tmp_path / "upgraded", history_folder)

    offline = cli(tmp_path / "scripted", "upgrade", "--sql", "--from", "base").stdout
    connected = cli(tmp_path / "scripted", "upgrade", "--sql").stdout  # against the empty database
    assert "-- fresh build: 5 migrations" in offline and "-- apply " not in offline, offline
    assert connected == offline

    run_script(fresh_db, offline)
    api.upgrade(upgraded.project, out=upgraded.output.append)
    assert any("as one fresh build" in line for line in upgraded.output), upgraded.output

    assert full_inspection(scripted.url) == full_inspection(upgraded.url)
    assert fetch_rows(scripted.url, ROW + " ORDER BY revision") == fetch_rows(upgraded.url, ROW + " ORDER BY revision")
    report = api.status(scripted.project)
    assert report.exit_code == 0, report.lines()
    assert scripted.diff() == []


def test_step_by_step_script_prints_every_migration(backend: str, history_folder: Path, tmp_path: Path) -> None:
    """``--sql --step-by-step`` prints every migration, as ``upgrade --step-by-step`` runs them."""
    if backend != "sqlite":
        pytest.skip("the flag is read alike for every database (see tests/unit/test_offline_fresh.py)")
    project_on("sqlite:///unused.db", tmp_path / "stepped", history_folder)
    script = cli(tmp_path / "stepped", "upgrade", "--sql", "--from", "base", "--step-by-step").stdout
    assert "-- fresh build" not in script and script.count("-- apply ") == 5, script
