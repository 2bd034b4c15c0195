"""Fast checks of the benchmark harness itself (no database): `python -m pytest bench -q`.

The timed smoke run is `python bench/run.py --quick`; nothing here asserts timings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
from measure import failed, run_process, time_process  # noqa: E402
from synth import build_metadata, chain_steps, expected_changes, history_batches, table_name  # noqa: E402
from tasks import growth  # noqa: E402


def test_synthetic_tables_have_the_promised_shape() -> None:
    metadata = build_metadata(40)
    assert len(metadata.tables) == 40
    for index, table in enumerate(metadata.sorted_tables):
        assert len(table.columns) == 12
        assert len(table.indexes) == 2
        assert sum(isinstance(c, sa.UniqueConstraint) for c in table.constraints) == 1
        (fk,) = table.foreign_key_constraints
        assert fk.referred_table.name <= table.name
    assert metadata.tables[table_name(0)].foreign_key_constraints


def test_changed_version_differs_by_the_promised_amounts() -> None:
    before, after = build_metadata(200), build_metadata(200, changed=True)
    gained = sum(len(after.tables[n].columns) - len(before.tables[n].columns) for n in before.tables)
    lost = sum(len(before.tables[n].indexes) - len(after.tables[n].indexes) for n in before.tables)
    retyped = sum(type(before.tables[n].c.qty.type) is not type(after.tables[n].c.qty.type) for n in before.tables)
    assert (gained, lost, retyped) == (20, 10, 10)
    assert expected_changes(200) == 40


def test_chain_and_history_shapes() -> None:
    steps = chain_steps(9)
    assert [s.creates_table for s in steps] == [True, False, False, False, True, False, False, False, True]
    assert steps[3].table == steps[0].table and steps[3].column
    batches = history_batches(10, 4)
    assert [len(b) for b in batches] == [3, 3, 2, 2]
    assert sum(batches, []) == list(range(10))
    assert history_batches(3, 10) == [[0], [1], [2]]


def test_run_process_reports_the_child_not_the_parent() -> None:
    ballast = b"\x01" * (200 * 1024 * 1024)  # the benchmark process is big; the child must not look big
    sample = run_process([sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"])
    del ballast
    assert (sample.returncode, sample.stdout.strip()) == (3, "hi")
    assert 0 < sample.rss_mib < 100
    assert 0 < sample.seconds < 30


def test_time_process_stops_at_a_failure() -> None:
    timing = time_process([sys.executable, "-c", "import sys; sys.exit('broken thing')"], repeat=3)
    assert not timing.ok and timing.error == "broken thing"
    assert timing.as_dict()["status"] == "failed: broken thing"


def _cell(median: float | None, status: str = "ok") -> dict[str, object]:
    return {"status": status, "median": median, "min": median, "max": median, "runs": [median] if median else [],
            "peak_rss_mib": 50.0 if median else None, "detail": ""}


@pytest.mark.parametrize("busy", [False, True])
def test_markdown_table_and_growth(busy: bool) -> None:
    rows = [
        {"task": "status at head", "backend": "sqlite", "size": f"K={k}", "k": k, "alembic": _cell(a),
         "schemashift": _cell(s), "baseline": None, "notes": "", "target": "", "met": None}
        for k, a, s in ((1000, 1.0, 0.1), (3000, 3.0, 0.2))
    ]
    rows.append({"task": "generate", "backend": "mysql", "size": "N=1", "k": None, "alembic": _cell(1.0),
                 "schemashift": failed("boom").as_dict(), "baseline": None, "notes": "", "target": "t", "met": False})
    meta = {"command": "python bench/run.py", "sizes_text": "x", "date": "d", "machine": "m", "python": "3",
            "sqlalchemy": "2", "alembic": "1", "schemashift": "0", "servers": "s", "cpus": 2,
            "load_before": 9.0 if busy else 0.1, "load_after": 0.1, "seconds": 1, "errors": []}
    found = growth(rows)
    assert found == [{"task": "status at head", "backend": "sqlite", "k_small": 1000, "k_large": 3000,
                      "alembic": 3.0, "schemashift": 2.0}]
    text = report.markdown(meta, rows, found)
    assert "| status at head | sqlite | K=3000 | 3.000 | 0.200 | 15.00× |" in text
    assert "failed [1]" in text and "1. schemashift, generate [mysql] N=1: failed: boom" in text
    assert "| status at head | sqlite | 1000 → 3000 | 3.0 | 3.00 | 2.00 |" in text
    assert ("machine was busy" in text) is busy


def test_objects_models_declare_200_objects() -> None:
    from objects import models_source

    import schemashift.sqla.objects as declared

    for backend, functions in (("postgresql", 50), ("sqlite", 0)):
        namespace: dict[str, object] = {}
        exec(models_source(backend), namespace)  # noqa: S102
        metadata = namespace["metadata"]
        made = metadata.info[declared.INFO_KEY]  # type: ignore[attr-defined]
        assert len(made) == 200
        assert sum(isinstance(item, declared.Function) for item in made) == functions

def test_fleet_projects_name_every_tenant(tmp_path: Path) -> None:
    import fleet
    from schemashift.config import load_config

    class Stub:
        work = tmp_path

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/x"
    project, ini, loop = fleet.write_projects(Stub(), url, url, 3)  # type: ignore[arg-type]
    env = load_config(project / "schemashift.toml").env("fleet")
    assert [t.name for t in env.tenants] == fleet.tenant_names(3) == ["tenant_00000", "tenant_00001", "tenant_00002"]
    assert len(list((project / "migrations").glob("*.py"))) == fleet.MIGRATIONS
    assert "schema_translate_map" in (ini.parent / "fleet_alembic" / "env.py").read_text() and loop.exists()


def test_stall_table_marks_the_target_only_on_safe_rows() -> None:
    import stall

    rows = [
        {"backend": "postgresql", "operation": "add index", "mode": "plain", "longest_ms": 4000.0, "p99_ms": 900.0,
         "writes": 10, "errors": 0, "first_error": "", "migration_ms": 3000},
        {"backend": "postgresql", "operation": "add index", "mode": "safe", "longest_ms": 120.0, "p99_ms": 20.0,
         "writes": 10, "errors": 0, "first_error": "", "migration_ms": 5000},
        {"backend": "mysql", "operation": "widen type", "mode": "safe", "longest_ms": 9000.0, "p99_ms": 20.0,
         "writes": 10, "errors": 2, "first_error": "Lock wait timeout", "migration_ms": 5000},
        {"backend": "mysql", "operation": "drop column", "mode": "safe", "rows": 1, "refused": "safe mode refuses"},
    ]
    assert [stall.meets(row) for row in rows] == [None, True, False, None]
    text = stall.markdown(rows)
    assert "| PostgreSQL | add index | safe | 120.0 | 20.0 | 10 | 0 | 5000 | yes |" in text
    assert "**no**" in text and "refused: safe mode refuses" in text and "Lock wait timeout" in text


def test_stall_upgrade_models_and_steps() -> None:
    import stall_upgrade

    namespace: dict[str, object] = {}
    exec(stall_upgrade.models_after(tuple(stall_upgrade.STEPS)), namespace)
    table = namespace["t"]
    assert isinstance(table, sa.Table) and not table.c.b.nullable
    assert {c.name for c in table.constraints} >= {"uq_t_a", "ck_t_b", "fk_t_b"} and table.indexes
    assert stall_upgrade.steps_on("postgresql") == tuple(stall_upgrade.STEPS)
    assert stall_upgrade.steps_on("mysql") == ("add unique", "set NOT NULL", "add index")


def test_stall_upgrade_projects_chain_every_step_then_the_backfill(tmp_path: Path) -> None:
    import json

    import stall
    import stall_upgrade
    from tasks import BIN

    class Stub:
        work = tmp_path

        def env(self) -> dict[str, str]:
            return {}

        def schemashift(self, *args: str) -> list[str]:
            return [str(BIN / "schemashift"), *args]

    bench = Stub()
    base = stall_upgrade.base_project(bench)  # type: ignore[arg-type]
    folders = stall_upgrade.write_projects(bench, base, ("add unique", "set NOT NULL"), "x")  # type: ignore[arg-type]
    for mode, operation in (("plain", "ExecuteSQL"), ("safe", "Backfill(")):
        history = json.loads(stall.cli(bench, folders[mode], "history", "--json").stdout)  # type: ignore[arg-type]
        assert len(history) == 4 and base[1] in {item["revision"] for item in history}
        assert operation in (folders[mode] / "migrations" / "9999_backfill.py").read_text()
    assert stall.cli(bench, folders["safe"], "check").returncode == 0  # type: ignore[arg-type]
    shorter = stall_upgrade.without_backfill(bench, folders, ("add unique", "set NOT NULL"))  # type: ignore[arg-type]
    assert len(json.loads(stall.cli(bench, shorter["plain"], "history", "--json").stdout)) == 3  # type: ignore[arg-type]
    assert stall.cli(bench, shorter["safe"], "check").returncode == 0  # type: ignore[arg-type]


def test_stall_upgrade_table_judges_safe_rows_against_one_second() -> None:
    import stall_upgrade

    rows = [{"backend": "postgresql", "operation": "all", "mode": mode, "longest_ms": ms, "p99_ms": 20.0,
             "writes": 10, "errors": 0, "first_error": "", "migration_ms": 9000} for mode, ms in
            (("plain", 4300.0), ("safe", 900.0))]
    assert "| PostgreSQL | all | safe | 900.0 | 20.0 | 10 | 0 | 9000 | yes |" in stall_upgrade.markdown(rows)
