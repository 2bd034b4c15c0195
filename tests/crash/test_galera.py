"""Migrating a three-node MariaDB Galera cluster (issue 16, part 3).

``GET_LOCK`` holds on one node only, so on a cluster (``wsrep_on``) schemashift takes
the lease lock of `schemashift.runtime.locks`: a row claimed by a committed write, of
which certification lets exactly one node's transaction win. Shown on a real cluster:
sixteen processes spread over the three nodes apply each migration exactly once; when
the node running a migration is SIGKILLed mid-way, `status` and `repair` through
another node see the journal, wait out the dead run's lease and reach head; the
schema ends identical on all three nodes, and every table of ours has a primary key.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crash.test_concurrency import write_chain
from crash.test_pooler import WORKERS, check_reports, upgrade_at_once, write_config
from schemashift import api
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
from services.galera import GaleraCluster

#: the killed run's lease: long enough for the survivors' stall while the dead node is evicted (4-6 s)
LEASE = 8.0


@pytest.fixture
def database(galera: GaleraCluster) -> Iterator[str]:
    """A fresh database on the (healed) cluster for one test."""
    name = f"ss_galera_{uuid.uuid4().hex[:8]}"
    galera.execute(f"CREATE DATABASE {name}")
    yield name
    galera.heal()
    galera.execute(f"DROP DATABASE IF EXISTS {name}")


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    """Rows of `sql` on the node of `url`, after every write the cluster committed before it."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
            return [tuple(row) for row in connection.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def schema_of(url: str) -> dict[str, str]:
    """``SHOW CREATE TABLE`` of every table of the node's database, without the next AUTO_INCREMENT value
    (each node hands out its own, interleaved, values: ``auto_increment_offset``)."""
    tables = [str(row[0]) for row in query(url, "SHOW TABLES")]
    return {table: re.sub(r" AUTO_INCREMENT=\d+", "", str(query(url, f"SHOW CREATE TABLE `{table}`")[0][1]))
            for table in tables}


def test_sixteen_upgrades_spread_over_three_nodes(galera: GaleraCluster, database: str, tmp_path: Path) -> None:
    urls = galera.urls(database)
    revisions = write_chain(tmp_path / "migrations")
    config = write_config(tmp_path, urls[0])
    started = time.monotonic()
    check_reports(upgrade_at_once([urls[index % len(urls)] for index in range(WORKERS)], config))
    elapsed = time.monotonic() - started
    for url in urls:
        runs = query(url, "SELECT revision, direction, outcome FROM schemashift_version_history ORDER BY id")
        assert runs == [(revision, "up", "ok") for revision in revisions]
        assert query(url, "SELECT count(*) FROM item WHERE title = 'seeded'") == [(1,)]
        assert query(url, "SELECT owner FROM schemashift_version_lock") == [(None,)]
    assert schema_of(urls[1]) == schema_of(urls[0]) == schema_of(urls[2])
    keyless = query(urls[0], f"""
        SELECT t.table_name FROM information_schema.tables t WHERE t.table_schema = '{database}'
        AND NOT EXISTS (SELECT 1 FROM information_schema.table_constraints c WHERE c.table_schema = t.table_schema
                        AND c.table_name = t.table_name AND c.constraint_type = 'PRIMARY KEY')""")
    assert keyless == []  # Galera replicates tables without a primary key poorly: ours all have one
    assert elapsed < 90, f"16 upgrades over three Galera nodes took {elapsed:.1f} s"


def write_slow_chain(folder: Path, slow_port: int) -> list[str]:
    """Three revisions; the second stalls mid-way, but only on the node listening on `slow_port`."""
    key = Column("id", Type("integer"), nullable=False)
    first = write_migration(folder, "create a", [CreateTable(Table("a", columns=(key,), primary_key=PrimaryKey(("id",))))],
                            None)
    second = write_migration(folder, "create b", [
        CreateTable(Table("b", columns=(key,), primary_key=PrimaryKey(("id",)))),
        ExecuteSQL(f"SELECT SLEEP(IF(@@port = {slow_port}, 60, 0))"),
        AddColumn("b", Column("x", Type("integer"))),
        CreateIndex("b", Index("ix_b_x", ("x",))),
    ], first.revision)
    third = write_migration(folder, "create c", [CreateTable(Table("c", columns=(key,), primary_key=PrimaryKey(("id",))))],
                            second.revision)
    return [first.revision, second.revision, third.revision]


_UPGRADE = "import sys; from schemashift import cli; sys.exit(cli.main(['upgrade', '--yes']))"


def test_killed_node_then_repair_through_another(galera: GaleraCluster, database: str, tmp_path: Path) -> None:
    urls = galera.urls(database)
    revisions = write_slow_chain(tmp_path / "migrations", galera.nodes[0].port)
    (tmp_path / "first").mkdir()
    write_config(tmp_path / "first", urls[0], lock_lease=LEASE)
    (tmp_path / "first" / "migrations").symlink_to(tmp_path / "migrations")
    run = subprocess.Popen([sys.executable, "-c", _UPGRADE], cwd=tmp_path / "first", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        journal = f"SELECT state, statements_done FROM schemashift_version WHERE revision = '{revisions[1]}'"
        while query(urls[1], "SHOW TABLES LIKE 'schemashift_version'") == [] or query(urls[1], journal) != [("running", 1)]:
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.2)
        time.sleep(0.5)  # the second statement (the stall) is running on node 1
        galera.kill(0)
        killed = time.monotonic()
        code, _, err = run.wait(timeout=60), *run.communicate()
    finally:
        if run.poll() is None:
            run.kill()
    assert code != 0 and "Traceback" not in err, err
    config = write_config(tmp_path, urls[1], lock_lease=LEASE, lock_timeout=60.0)
    project = api.open_project(config)
    report = api.status(project)
    assert report.current == revisions[0] and report.problems, report.lines()
    lines: list[str] = []
    api.repair(project, action="continue", out=lines.append)
    repaired = time.monotonic() - killed
    api.upgrade(api.open_project(config), yes=True, out=lines.append)
    report = api.status(api.open_project(config))
    assert (report.current, report.pending, report.problems) == (revisions[-1], [], []), report.lines()
    assert report.schema_matches, report.differences
    galera.heal()  # the killed node rejoins and catches up
    assert schema_of(urls[0]) == schema_of(urls[1]) == schema_of(urls[2])
    assert query(urls[0], "SELECT revision, state FROM schemashift_version ORDER BY revision") == \
        sorted((revision, "applied") for revision in revisions)
    assert repaired < LEASE + 20, f"repair finished {repaired:.1f} s after the kill"
