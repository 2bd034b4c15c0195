"""Exactly once under concurrency: 16 processes run `upgrade` at the same moment, many times per database.

Each repetition gets a fresh database. Sixteen forked workers, each reused across
repetitions (so the interpreter and imports are paid once), wait on one
multiprocessing barrier and then call `schemashift.upgrade(url, config=...)`,
the start-up entry point. Afterwards every call returned cleanly, the history
table holds exactly one 'up'/'ok' row per revision, the data migration (a
non-idempotent INSERT) ran once, and the database is at head with a live schema
matching the migrations. A last test does the same with 16 real CLI processes
released by one write to a shared pipe, checking their exit codes.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import subprocess
import sys
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Iterator

import pytest

import schemashift
from conftest import create_database, drop_database
from helpers import scalar
from schemashift import api
from schemashift.migration import (
    AddColumn, Column, CreateIndex, CreateTable, ExecuteSQL, Index, PrimaryKey, RenameColumn, Table, Type,
)
from schemashift.history.writer import write_migration

WORKERS = 16
ROUNDS = int(os.environ.get("SCHEMASHIFT_CONCURRENCY_ROUNDS", "20"))
RESULT_TIMEOUT = 120.0
#: On PostgreSQL the index is built with CREATE INDEX CONCURRENTLY, which waits for every other transaction:
#: the waiting processes must not hold one (the lock is polled, outside any transaction).
CONCURRENTLY = (("postgresql_concurrently", "true"),)


def write_chain(folder: Path) -> list[str]:
    """Four revisions: a table, a column with an index, a rename, a non-idempotent data migration."""
    key = Column("id", Type("integer"), nullable=False, autoincrement=True)
    item = Table("item", columns=(key, Column("name", Type("string", length=40))), primary_key=PrimaryKey(("id",)))
    first = write_migration(folder, "create item", [CreateTable(item)], None)
    second = write_migration(folder, "add price", [
        AddColumn("item", Column("price", Type("integer"))),
        CreateIndex("item", Index("ix_item_price", ("price",), options=CONCURRENTLY)),
    ], first.revision)
    third = write_migration(folder, "rename name", [RenameColumn("item", "name", "title")], second.revision)
    seed = ExecuteSQL("INSERT INTO item (title, price) VALUES ('seeded', 1)",
                      reverse="DELETE FROM item WHERE title = 'seeded'")
    fourth = write_migration(folder, "seed", [seed], third.revision)
    return [first.revision, second.revision, third.revision, fourth.revision]


def write_config(directory: Path, url: str) -> Path:
    """A schemashift.toml with one environment at `url` (no models: upgrade needs none)."""
    path = directory / "schemashift.toml"
    path.write_text(f'migrations = "migrations"\ndefault_env = "test"\n\n[env.test]\nurl = "{url}"\n')
    return path


# -- the reusable forked workers ---------------------------------------------------


def _worker(inbox: Connection, barrier: Any, results: Any) -> None:
    """Loop: receive (url, config), wait for all workers at the barrier, upgrade, report."""
    while True:
        task = inbox.recv()
        if task is None:
            return
        url, config = task
        lines: list[str] = []
        try:
            barrier.wait(timeout=RESULT_TIMEOUT)
            schemashift.upgrade(url, config=config, out=lines.append)
            results.put((os.getpid(), None, lines))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
            results.put((os.getpid(), f"{type(exc).__name__}: {exc}", lines))


class Workers:
    """WORKERS forked processes that each run one upgrade per round, all released together."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self.barrier = context.Barrier(WORKERS)
        self.results = context.Queue()
        self.inboxes: list[Connection] = []
        self.processes = []
        for _ in range(WORKERS):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=(receiver, self.barrier, self.results), daemon=True)
            process.start()
            self.inboxes.append(sender)
            self.processes.append(process)

    def round(self, url: str, config: Path) -> list[tuple[int, str | None, list[str]]]:
        """Every worker upgrades `url` at the same moment; their (pid, error, output) reports."""
        for inbox in self.inboxes:
            inbox.send((url, str(config)))
        return [self.results.get(timeout=RESULT_TIMEOUT) for _ in range(WORKERS)]

    def close(self) -> list[int | None]:
        """Stop the workers; their exit codes."""
        for inbox in self.inboxes:
            inbox.send(None)
        for process in self.processes:
            process.join(timeout=30)
        return [process.exitcode for process in self.processes]


@pytest.fixture(scope="module")
def workers(backend: str) -> Iterator[Workers]:
    """Forked before the test opens any database connection."""
    pool = Workers()
    yield pool
    assert pool.close() == [0] * WORKERS, "a worker process did not exit 0"


def applied_runs(url: str) -> list[tuple[str, str, str]]:
    """(revision, direction, outcome) of every history row, in order."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT revision, direction, outcome FROM schemashift_version_history ORDER BY id").all()
    finally:
        engine.dispose()
    return [tuple(row) for row in rows]


def check_exactly_once(url: str, config: Path, revisions: list[str]) -> None:
    """One 'up'/'ok' history row per revision, the seed row once, the database at head and matching."""
    assert applied_runs(url) == [(revision, "up", "ok") for revision in revisions]
    assert scalar(url, "SELECT count(*) FROM item WHERE title = 'seeded'") == 1
    report = api.status(api.open_project(config))
    assert (report.current, report.pending, report.problems) == (revisions[-1], [], [])
    assert report.schema_matches, report.differences


def test_sixteen_processes_upgrade_at_once(backend: str, workers: Workers, tmp_path: Path) -> None:
    revisions = write_chain(tmp_path / "migrations")
    for number in range(ROUNDS):
        name = f"ss_conc_{uuid.uuid4().hex[:10]}"
        url = create_database(backend, name, tmp_path)
        try:
            config = write_config(tmp_path, url)
            reports = workers.round(url, config)
            errors = [f"pid {pid}: {error}" for pid, error, _ in reports if error]
            assert not errors, f"round {number}: " + "; ".join(errors)
            migrated = [lines for _, _, lines in reports if any(line.startswith("applied ") for line in lines)]
            assert len(migrated) == 1, f"round {number}: {len(migrated)} processes applied migrations"
            waited = [lines for _, _, lines in reports if lines and lines[-1].startswith("Nothing to do")]
            assert len(waited) == WORKERS - 1
            check_exactly_once(url, config, revisions)
        finally:
            drop_database(backend, name)


_CLI_WORKER = """
import os, sys
from schemashift import api, cli  # imported before the barrier
from schemashift.runtime import executor, versions
sys.stdout.write("ready\\n"); sys.stdout.flush()
os.read(0, 1)  # the barrier: one write of WORKERS bytes from the test releases every process
sys.exit(cli.main(["upgrade", "--yes"]))
"""


def test_sixteen_cli_processes_exit_zero(backend: str, tmp_path: Path) -> None:
    revisions = write_chain(tmp_path / "migrations")
    name = f"ss_conc_cli_{uuid.uuid4().hex[:8]}"
    url = create_database(backend, name, tmp_path)
    try:
        config = write_config(tmp_path, url)
        gate_read, gate_write = os.pipe()
        environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        environ.pop("SCHEMASHIFT_ENV", None)
        processes = [
            subprocess.Popen([sys.executable, "-c", _CLI_WORKER], cwd=tmp_path, stdin=gate_read,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
            for _ in range(WORKERS)
        ]
        os.close(gate_read)
        try:
            for process in processes:
                assert process.stdout is not None and process.stdout.readline() == "ready\n"
            os.write(gate_write, b"x" * WORKERS)
            outcomes = [(process.wait(timeout=RESULT_TIMEOUT), *process.communicate()) for process in processes]
        finally:
            os.close(gate_write)
            for process in processes:
                if process.poll() is None:
                    process.kill()
        assert [code for code, _, _ in outcomes] == [0] * WORKERS, [err for code, _, err in outcomes if code]
        assert sum("applied " in out for _, out, _ in outcomes) == 1
        check_exactly_once(url, config, revisions)
    finally:
        drop_database(backend, name)


@pytest.mark.parametrize("name", ["fastapi_app.py", "flask_app.py"])
def test_startup_examples_call_upgrade(name: str) -> None:
    """The documented start-up examples compile and call `schemashift.upgrade` (without importing their frameworks)."""
    path = Path(__file__).resolve().parents[2] / "examples" / "startup" / name
    tree = ast.parse(path.read_text(), filename=str(path))
    compile(tree, str(path), "exec")
    uses = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "upgrade"
            and isinstance(node.value, ast.Name) and node.value.id == "schemashift"]
    assert uses, f"{name} does not call schemashift.upgrade"
    assert ast.get_docstring(tree), f"{name} needs a module docstring"
