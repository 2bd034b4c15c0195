"""Alembic as a test-only oracle: whatever its ``compare_metadata`` finds, schemashift finds too.

For every scenario on every backend it applies to: upgrade an emptied database to
the scenario's v1 models with schemashift, then compare the database with the v2
models twice, with Alembic (``compare_type`` and ``compare_server_default`` on)
and with `schemashift.api.diff`. Each Alembic difference must map, by kind and
object, to a schemashift operation (see `scenario_harness.covers`); Alembic's own
false alarms (what it reports against the v1 models the database matches) are
left out. What schemashift finds and Alembic does not is printed by
`tests/alembic_gap_report.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from conftest import require_backend
from scenario_harness import compare_with_alembic, scenario_params, shared_engine, write_project
from scenarios import SCENARIOS, Scenario

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of this group of tests (parametrised below with only the scenarios it supports)."""
    require_backend(request.param)
    return request.param


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    metafunc.parametrize(("backend", "scenario"), scenario_params(), indirect=["backend"], scope="module")


@pytest.fixture(scope="module")
def config(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project folder per backend with every scenario's models."""
    return write_project(tmp_path_factory.mktemp("oracle"), db_url, SCENARIOS)


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[sa.Engine]:
    """The module database's engine, the bind every scenario's project uses."""
    engine = shared_engine(db_url)
    yield engine
    engine.dispose()


def test_schemashift_reports_what_alembic_reports(scenario: Scenario, backend: str, engine: sa.Engine, config: Path) -> None:
    comparison = compare_with_alembic(config, engine, scenario)
    missed = comparison.missed_by_schemashift
    assert not missed, (
        "Alembic reports differences schemashift does not: "
        + "; ".join(d.label() for d in missed)
        + "\nschemashift: " + "; ".join(op.describe() for op in comparison.schemashift)
    )
