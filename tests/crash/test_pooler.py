"""Migrating through PgBouncer in transaction mode (issue 16, part 2).

A session advisory lock is meaningless through a transaction pooler, so schemashift
detects the pooler (the driver's backend pid is PgBouncer's fake one) and takes the
lease lock of `schemashift.runtime.locks` instead. Shown on a real PgBouncer: sixteen
processes upgrading at once apply each migration exactly once (one of them a CREATE
INDEX CONCURRENTLY, which must run outside any transaction), and a lock holder killed
with SIGKILL gives the lock up within its lease.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import schemashift
from crash.test_concurrency import applied_runs, write_chain
from schemashift import api
from schemashift.errors import LockTimeout
from services import pgbouncer

WORKERS = 16
RESULT_TIMEOUT = 120.0
#: a short lease keeps the killed-holder test quick (the default is 20 s)
LEASE = 3.0


def write_config(directory: Path, url: str, **settings: object) -> Path:
    """A schemashift.toml with one environment at `url` plus `settings` (TOML scalars)."""
    extra = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in settings.items())
    path = directory / "schemashift.toml"
    path.write_text(f'migrations = "migrations"\ndefault_env = "test"\n\n[env.test]\nurl = "{url}"\n{extra}')
    return path


def _worker(inbox: Connection, barrier: Any, results: Any) -> None:
    """Receive (url, config), wait for every worker at the barrier, upgrade, report (pid, error, lines)."""
    url, config = inbox.recv()
    lines: list[str] = []
    try:
        barrier.wait(timeout=RESULT_TIMEOUT)
        schemashift.upgrade(url, config=config, out=lines.append)
        results.put((os.getpid(), None, lines))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put((os.getpid(), f"{type(exc).__name__}: {exc}", lines))


def upgrade_at_once(urls: list[str], config: Path) -> list[tuple[int, str | None, list[str]]]:
    """Fork one process per URL, release them together, return their reports."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(len(urls)), context.Queue()
    processes = []
    for url in urls:
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_worker, args=(receiver, barrier, results), daemon=True)
        process.start()
        sender.send((url, str(config)))
        processes.append(process)
    try:
        return [results.get(timeout=RESULT_TIMEOUT) for _ in urls]
    finally:
        for process in processes:
            process.join(timeout=30)


def check_reports(reports: list[tuple[int, str | None, list[str]]]) -> None:
    """Every run succeeded, exactly one applied the migrations, the others found nothing to do."""
    errors = [f"pid {pid}: {error}" for pid, error, _ in reports if error]
    assert not errors, "; ".join(errors)
    migrated = [lines for _, _, lines in reports if any(line.startswith("applied ") for line in lines)]
    assert len(migrated) == 1, f"{len(migrated)} processes applied migrations"
    assert sum(1 for _, _, lines in reports if lines and lines[-1].startswith("Nothing to do")) == len(reports) - 1


@pytest.fixture
def direct_url(pgbouncer_url: str) -> str:
    """The same database, reached without the pooler."""
    from conftest import SERVER_URLS

    return sa.make_url(SERVER_URLS["postgresql"]).set(database=sa.make_url(pgbouncer_url).database) \
        .render_as_string(hide_password=False)


@pytest.fixture
def fresh(pgbouncer_url: str, direct_url: str) -> Iterator[str]:
    """`pgbouncer_url`, emptied of every table after the test."""
    yield pgbouncer_url
    engine = sa.create_engine(direct_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS tenant CASCADE")
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def test_pooler_is_detected(pgbouncer_url: str, direct_url: str) -> None:
    from schemashift.dialects.postgresql.dialect import behind_pooler

    for url, expected in ((pgbouncer_url, True), (direct_url, False)):
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=pgbouncer.CONNECT_ARGS)
        with engine.connect() as connection:
            assert behind_pooler(connection) is expected
        engine.dispose()


def test_sixteen_upgrades_through_pgbouncer(fresh: str, direct_url: str, tmp_path: Path) -> None:
    revisions = write_chain(tmp_path / "migrations")  # its second migration builds an index CONCURRENTLY
    config = write_config(tmp_path, fresh)  # the pooler is detected, not declared
    started = time.monotonic()
    check_reports(upgrade_at_once([fresh] * WORKERS, config))
    elapsed = time.monotonic() - started
    assert applied_runs(direct_url) == [(revision, "up", "ok") for revision in revisions]
    engine = sa.create_engine(direct_url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM item WHERE title = 'seeded'").scalar() == 1
        valid = connection.exec_driver_sql(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_item_price'::regclass").scalar()
        assert valid is True
        lock = connection.exec_driver_sql("SELECT owner FROM schemashift_version_lock").all()
        assert lock == [(None,)]  # the lease lock was used, and released
        advisory = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").scalar()
        assert advisory == 0  # no session lock was left on a pooled server connection
    engine.dispose()
    report = api.status(api.open_project(config))
    assert (report.current, report.pending, report.problems) == (revisions[-1], [], [])
    assert elapsed < 60, f"16 upgrades through PgBouncer took {elapsed:.1f} s"


_HOLDER = """
import sys, time
from schemashift import api
from schemashift.dialects import dialect_of
from schemashift.runtime.locks import migration_lock
project = api.open_project(sys.argv[1])
with project.connect() as connection:
    with migration_lock(dialect_of(connection), connection, project.lock_name, project.env):
        print("held", flush=True)
        time.sleep(600)
"""


def test_killed_lock_holder_releases_within_the_lease(fresh: str, tmp_path: Path) -> None:
    revisions = write_chain(tmp_path / "migrations")
    config = write_config(tmp_path, fresh, lock_lease=LEASE, lock_timeout=1.0)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(config)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        time.sleep(LEASE * 1.5)  # the heartbeat keeps the lease alive past its first term
        with pytest.raises(LockTimeout, match="held by"):
            api.upgrade(api.open_project(config), yes=True, out=lambda line: None)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    killed = time.monotonic()
    waiting = write_config(tmp_path, fresh, lock_lease=LEASE, lock_timeout=LEASE * 4)
    lines: list[str] = []
    api.upgrade(api.open_project(waiting), yes=True, out=lines.append)
    waited = time.monotonic() - killed
    assert lines[-1] == f"Database is at {revisions[-1]}."
    assert waited < LEASE + 2.0, f"the lock came free {waited:.1f} s after its holder died (lease {LEASE} s)"


def test_declared_pooler_skips_session_settings(fresh: str, tmp_path: Path) -> None:
    """With ``pooler = "transaction"`` the statement timeout is set in each transaction, never on the session
    (where it would stay on the server connection for other clients)."""
    write_chain(tmp_path / "migrations")
    config = write_config(tmp_path, fresh, pooler="transaction", statement_timeout=30.0)
    project = api.open_project(config)
    with project.connect() as connection:
        assert connection.connection.dbapi_connection.prepare_threshold is None  # type: ignore[union-attr]
        with connection.begin():
            inside = connection.exec_driver_sql("SHOW statement_timeout").scalar()
    bare = sa.create_engine(fresh, poolclass=sa.pool.NullPool, connect_args=pgbouncer.CONNECT_ARGS,
                            isolation_level="AUTOCOMMIT")
    with bare.connect() as other:  # handed the server connection just used (PgBouncer reuses the last one)
        outside = other.exec_driver_sql("SHOW statement_timeout").scalar()
    bare.dispose()
    assert (inside, outside) == ("30s", "0")
    api.upgrade(project, yes=True, out=lambda line: None)


@pytest.mark.parametrize(("setting", "message"), [
    ('pooler = "statement"', "pooler must be one of transaction, session, none"),
    ("lock_lease = 0.5", "lock_lease must be at least 1 second"),
])
def test_pooler_settings_are_checked(tmp_path: Path, setting: str, message: str) -> None:
    from schemashift.config import load_config
    from schemashift.errors import ConfigError

    (tmp_path / "schemashift.toml").write_text(f'[env.prod]\nurl = "sqlite:///x.db"\n{setting}\n')
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "schemashift.toml").env("prod")


def test_a_lease_taken_over_fails_the_run(fresh: str, direct_url: str, tmp_path: Path) -> None:
    """A holder whose lease another run took over (it lapsed) finds out at its next heartbeat and fails loudly."""
    from schemashift.dialects import dialect_of
    from schemashift.runtime.locks import migration_lock

    write_chain(tmp_path / "migrations")
    project = api.open_project(write_config(tmp_path, fresh, lock_lease=1.0))
    engine = sa.create_engine(direct_url, poolclass=sa.pool.NullPool)
    with project.connect() as connection, pytest.raises(LockTimeout, match="was lost during the run"), \
            migration_lock(dialect_of(connection), connection, project.lock_name, project.env):
        with engine.begin() as other:
            other.exec_driver_sql("UPDATE schemashift_version_lock SET owner = 'someone else'")
        time.sleep(0.8)  # a heartbeat (every quarter lease) runs meanwhile
    engine.dispose()


def test_schema_through_the_pooler(fresh: str, tmp_path: Path) -> None:
    """`schema` works through the pooler (SET LOCAL search_path in each transaction), and does not leak."""
    from schemashift.history.writer import write_migration
    from schemashift.migration import Column, CreateTable, PrimaryKey, Table, Type

    key = Column("id", Type("integer"), nullable=False)
    revision = write_migration(tmp_path / "migrations", "create a",
                               [CreateTable(Table("a", columns=(key,), primary_key=PrimaryKey(("id",))))], None).revision
    config = write_config(tmp_path, fresh, schema="tenant")
    api.upgrade(api.open_project(config), yes=True, out=lambda line: None)
    report = api.status(api.open_project(config))
    assert (report.current, report.problems, report.schema_matches) == (revision, [], True)
    bare = sa.create_engine(fresh, poolclass=sa.pool.NullPool, connect_args=pgbouncer.CONNECT_ARGS)
    with bare.connect() as other:
        assert other.exec_driver_sql("SHOW search_path").scalar() == '"$user", public'
        tables = other.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'tenant' ORDER BY 1").all()
    bare.dispose()
    assert [row[0] for row in tables] == ["a", "schemashift_version", "schemashift_version_history",
                                          "schemashift_version_lock"]
