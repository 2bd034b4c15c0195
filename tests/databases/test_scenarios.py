"""The scenario corpus, end to end on SQLite, PostgreSQL and MariaDB, in-process through `schemashift.api`.

For each scenario (see `scenarios.py`) on each backend it applies to, in one
database per backend, emptied between scenarios:
v1 -> generate -> upgrade -> diff clean -> rows -> v2 -> generate -> upgrade ->
diff against the models clean (no false positives), rows survived -> downgrade -1
-> diff against v1 clean, v1 values back. Two scenarios also run through the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from conftest import BACKENDS, require_backend
from helpers import cli
from scenario_harness import (
    Log,
    assert_fast_paths_agree,
    generate_options,
    insert_rows,
    live_diff,
    models,
    open_scenario,
    quietly,
    scenario_params,
    read_column,
    reset_database,
    shared_engine,
    use_models,
    write_project,
)
from scenarios import BY_NAME, SCENARIOS, Scenario

from schemashift import api

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of this group of tests (parametrised below with only the scenarios it supports)."""
    require_backend(request.param)
    return request.param


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scenario" not in metafunc.fixturenames:
        if "backend" in metafunc.fixturenames:
            metafunc.parametrize("backend", BACKENDS, indirect=True, scope="module")
        return
    metafunc.parametrize(("backend", "scenario"), scenario_params(), indirect=["backend"], scope="module")


@pytest.fixture(scope="module")
def config(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project folder per backend with every scenario's models."""
    return write_project(tmp_path_factory.mktemp("scenarios"), db_url, SCENARIOS)


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[sa.Engine]:
    """The module database's engine, the bind every scenario's project uses."""
    engine = shared_engine(db_url)
    yield engine
    engine.dispose()


def _clean(project: api.Project, what: str, log: Log) -> None:
    differences = live_diff(project)
    assert not differences, f"{what}: diff against the models is not empty:\n" + "\n".join(
        op.describe() for op in differences
    ) + f"\n--- log ---\n{log}"


def _kept(engine: sa.Engine, project: api.Project, scenario: Scenario, side: int) -> dict[str, list[object]]:
    metadata = models(project)
    found = {}
    for pair in scenario.kept_columns():
        table, column = pair[side * 2], pair[side * 2 + 1]
        found[f"{table}.{column}"] = read_column(engine, metadata, table, column)
    return found


def test_scenario(scenario: Scenario, backend: str, engine: sa.Engine, config: Path) -> None:
    """v1 -> v2 -> back to v1, with the database matching the models at each step and the rows kept."""
    reset_database(engine)
    log = Log()
    project = open_scenario(config, scenario, "v1", bind=engine)

    assert quietly(api.generate, project, "v1", log=log) is not None, f"v1 generated nothing\n{log}"
    quietly(api.upgrade, project, log=log)
    _clean(project, "at v1", log)
    insert_rows(engine, models(project), dict(scenario.rows))
    before = _kept(engine, project, scenario, 0)

    use_models(project, scenario, "v2")
    path = quietly(api.generate, project, "v2", log=log, **generate_options(scenario.flags))
    if scenario.unchanged:
        assert path is None, f"v2 should need no migration\n{log}"
    else:
        assert path is not None, f"v2 generated nothing\n{log}"
        kinds = {type(op).__name__ for op in project.history().chain[-1].operations}
        assert set(scenario.expect) <= kinds, f"expected {scenario.expect}, got {sorted(kinds)}\n{log}"
        assert not set(scenario.absent) & kinds, f"did not expect {scenario.absent}, got {sorted(kinds)}\n{log}"
    quietly(api.upgrade, project, log=log)
    _clean(project, "at v2", log)
    assert_fast_paths_agree(project)
    after = _kept(engine, project, scenario, 1)
    assert list(after.values()) == list(before.values()), f"values changed: {before} -> {after}"
    v2_models = models(project)
    for name, expected in scenario.values.items():
        table, column = name.split(".")
        assert read_column(engine, v2_models, table, column) == list(expected), f"{name} at v2"

    if path is not None:
        quietly(api.downgrade, project, "-1", log=log, allow_data_loss=scenario.allow_data_loss)
        use_models(project, scenario, "v1")
        _clean(project, "after downgrade to v1", log)
        assert _kept(engine, project, scenario, 0) == before, "values changed by the downgrade"


# -- a couple through the real command line -------------------------------------------


@pytest.mark.parametrize("name", ["rename_column_flag", "enum_value_inserted_before"])
def test_cli_smoke(name: str, backend: str, engine: sa.Engine, config: Path) -> None:
    """The same flow through `python -m schemashift`: generate, upgrade, diff (exit 0), downgrade."""
    scenario = BY_NAME[name]
    if backend not in scenario.backends:
        pytest.skip(f"{name} does not apply to {backend}")
    reset_database(engine)
    root = config.parent
    folder = f"cli_{name}"
    config_text = config.read_text().replace('"unset:metadata"', '"{models}"').replace('"migrations"', f'"{folder}"')

    def set_version(version: str) -> None:
        (root / f"cli_{name}.toml").write_text(config_text.replace("{models}", f"sc_{name}_{version}:metadata"))

    def run(*args: str, check: bool = True) -> str:
        result = cli(root, "--config", f"cli_{name}.toml", *args, check=check)
        return result.stdout + result.stderr

    set_version("v1")
    run("generate", "-m", "v1")
    run("upgrade")
    set_version("v2")
    out = run("generate", "-m", "v2", *scenario.flags)
    assert "alter column" in out or "rename column" in out, out
    run("upgrade")
    assert "No differences" in run("diff")
    run("downgrade", "-1")
    set_version("v1")
    assert "No differences" in run("diff")
