"""Tenant fleets at speed: one transaction per tenant, and the no-op check of a fleet at head.

A PostgreSQL project of three hand-written migrations (a table, a column, an SQL step
that fails only in a schema holding a ``poison`` table). From empty each tenant runs in
one transaction under a transaction-level lock: the statements and commits per tenant
are counted here so that a regression shows. A tenant failing in its last migration is
rolled back whole (nothing of it stays, its history says why) while the others commit,
and a re-run after the fix continues. A session lock held on a tenant keeps the fleet
out of it. At head the CLI answers from one libpq query without loading SQLAlchemy, with
the same summary as the full path. The tests run in order, each on the state the last left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import create_database, drop_database, require_backend
from helpers import cli, execute, scalar
from schemashift.services import fleet
from schemashift.services.project import open_project

TENANTS = ["t_one", "t_two", "t_three", "t_four"]

MIGRATIONS = {
    "00001_item.py": '''
revision = "aaaa00000001"
parent = None
message = "item"

operations = [
    CreateTable(Table("item", columns=(Column("id", Type("integer"), nullable=False),
                                       Column("name", Type("string", length=40))),
                      primary_key=PrimaryKey(("id",)))),
]
''',
    "00002_email.py": '''
revision = "aaaa00000002"
parent = "aaaa00000001"
message = "email"

operations = [AddColumn("item", Column("email", Type("string", length=80)))]
''',
    "00003_check.py": '''
revision = "aaaa00000003"
parent = "aaaa00000002"
message = "check"

operations = [ExecuteSQL(
    "SELECT 1 / (1 - (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
    "AND tablename = 'poison'))::int",
    reverse="SELECT 1")]
''',
}
#: Statements of the three migrations on PostgreSQL (CREATE TABLE, ADD COLUMN, the SELECT).
MIGRATION_STATEMENTS = 3


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away PostgreSQL database for the module, with the tenant schemas (empty)."""
    require_backend("postgresql")
    name = f"ss_test_fleetspeed_{uuid.uuid4().hex[:8]}"
    url = create_database("postgresql", name, tmp_path_factory.mktemp(name))
    execute(url, *(f"CREATE SCHEMA {tenant}" for tenant in TENANTS))
    yield url
    drop_database("postgresql", name)


@pytest.fixture(scope="module")
def project(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project: env `test` lists the tenants; the migrations written by hand."""
    directory = tmp_path_factory.mktemp("fleetspeed")
    names = ", ".join(f'"{name}"' for name in TENANTS)
    (directory / "schemashift.toml").write_text(
        f'migrations = "migrations"\ndefault_env = "test"\n\n[env.test]\nurl = "{pg_url}"\ntenants = [{names}]\n'
        "lock_timeout = 1\n")
    (directory / "migrations").mkdir()
    for file, body in MIGRATIONS.items():
        (directory / "migrations" / file).write_text(
            f'"""{file}."""\nfrom schemashift.migration import *  # noqa: F401,F403\n{body}')
    return directory


def upgrade_counting(project: Path, tenants: list[str]) -> tuple[fleet.FleetReport, Counter[str]]:
    """`tenants` upgraded in this process, the statements and commits counted."""
    counts: Counter[str] = Counter()

    def statement(*_: Any) -> None:
        counts["statements"] += 1

    def commit(*_: Any) -> None:
        counts["commits"] += 1

    sa.event.listen(sa.Engine, "before_cursor_execute", statement)
    sa.event.listen(sa.Engine, "commit", commit)
    try:
        report = fleet.upgrade(open_project(project / "schemashift.toml", None, None), "head", yes=True,
                               tenants=tenants)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", statement)
        sa.event.remove(sa.Engine, "commit", commit)
    return report, counts


def test_from_empty_one_transaction_per_tenant(project: Path, pg_url: str) -> None:
    report, counts = upgrade_counting(project, TENANTS[:3])
    assert [result.ok for result in report.results] == [True, True, True], report.lines()
    # per tenant: search_path, lock, version + history tables, the migrations, the journal rows (one
    # executemany); before the tenants: the fleet's version-state and catalog reads (2 + 1); per shared
    # connection: commits deferred (2) and made durable at the end (2)
    assert counts["statements"] <= 3 + 4 + (5 + MIGRATION_STATEMENTS) * 3, counts
    assert counts["commits"] <= 2 * 3 + 1 + 4, counts  # search_path, the tenant's one commit; the pooler check
    for name in TENANTS[:3]:
        assert scalar(pg_url, f"SELECT count(*) FROM {name}.schemashift_version WHERE state = 'applied'") == 3
        assert scalar(pg_url, f"SELECT count(*) FROM {name}.schemashift_version_history WHERE outcome = 'ok'") == 3


def test_a_failing_migration_rolls_the_tenant_back_whole(project: Path, pg_url: str) -> None:
    execute(pg_url, "CREATE TABLE t_four.poison (id integer)")
    report, _ = upgrade_counting(project, TENANTS)
    rows = {result.tenant: result for result in report.results}
    assert [rows[name].ok for name in TENANTS] == [True, True, True, False]
    assert rows["t_one"].detail == "nothing to do"
    error = rows["t_four"].error or ""
    assert "00003_check" in error and "division by zero" in error and "still at base" in error
    # nothing of the run stays (not even migrations 1 and 2), the failure is in the tenant's history
    assert scalar(pg_url, "SELECT to_regclass('t_four.item')") is None
    assert scalar(pg_url, "SELECT count(*) FROM t_four.schemashift_version") == 0
    assert scalar(pg_url, "SELECT outcome FROM t_four.schemashift_version_history") == "failed"


def test_a_rerun_continues_and_a_held_lock_keeps_the_fleet_out(project: Path, pg_url: str) -> None:
    execute(pg_url, "DROP TABLE t_four.poison")
    key = _session_lock_key("t_four")
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as holder:  # another run's session lock on t_four
            assert holder.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            holder.commit()
            blocked = cli(project, "upgrade", "--all-tenants", "--yes", "--json", check=False)
            assert blocked.returncode != 0
            rows = {row["tenant"]: row for row in json.loads(blocked.stdout)["results"]}
            assert rows["t_one"]["ok"] and "lock" in str(rows["t_four"]["error"])
            assert scalar(pg_url, "SELECT to_regclass('t_four.item')") is None
    finally:
        engine.dispose()
    again = cli(project, "upgrade", "--all-tenants", "--yes", "--json")
    rows = {row["tenant"]: row for row in json.loads(again.stdout)["results"]}
    assert rows["t_one"]["detail"] == "nothing to do" and str(rows["t_four"]["detail"]).startswith("Database is at")
    assert scalar(pg_url, "SELECT count(*) FROM t_four.schemashift_version WHERE state = 'applied'") == 3
    assert cli(project, "status", "--all-tenants").returncode == 0


def test_noop_at_head_needs_no_sqlalchemy(project: Path) -> None:
    code = ("import sys\nfrom schemashift.cli import main\ncode = main(['upgrade', '--all-tenants', '--yes'])\n"
            "print('SQLALCHEMY' if 'sqlalchemy' in sys.modules else 'NO SQLALCHEMY')\nsys.exit(code)")
    fast = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120)
    assert fast.returncode == 0, fast.stderr
    lines = fast.stdout.splitlines()
    assert lines[-1] == "NO SQLALCHEMY"
    assert lines[0].split() == ["TENANT", "RESULT", "REVISION", "TIME", "DETAIL"]
    assert lines[1].split() == ["t_one", "ok", "aaaa00000003", "0.00s", "nothing", "to", "do"]
    assert "upgrade: 4 of 4 tenant(s) succeeded, 0 failed" in lines[-2]
    quiet = cli(project, "upgrade", "--all-tenants", "--yes", "--quiet").stdout.splitlines()
    assert len(quiet) == 1 and quiet[0].startswith("upgrade: 4 of 4 tenant(s) succeeded")
    picked = json.loads(cli(project, "upgrade", "--tenant", "t_two", "--yes", "--json").stdout)
    assert picked["tenants"] == 1 and picked["results"][0]["detail"] == "nothing to do"


def test_noop_with_one_tenant_behind_takes_the_full_path(project: Path, pg_url: str) -> None:
    cli(project, "downgrade", "-1", "--tenant", "t_three", "--yes")
    result = cli(project, "upgrade", "--all-tenants", "--yes", "--json")
    rows = {row["tenant"]: row for row in json.loads(result.stdout)["results"]}
    assert rows["t_one"]["detail"] == "nothing to do"
    assert str(rows["t_three"]["detail"]).startswith("Database is at aaaa00000003")
    assert scalar(pg_url, "SELECT count(*) FROM t_three.schemashift_version") == 3


def _session_lock_key(schema: str) -> int:
    """The advisory key of the tenant's migration lock (as the PostgreSQL dialect derives it)."""
    import hashlib

    name = f"schemashift:{schema}:schemashift_version"
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
