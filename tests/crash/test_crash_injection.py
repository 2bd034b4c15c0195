"""Crash injection: an upgrade SIGKILLed at a random statement, then `status`, `repair` and `upgrade`.

A table with pre-existing rows goes through four revisions (add a column and an
index, rename a column and widen its type, a data migration, a new table with a
foreign key). Each trial resets the module's database by dropping its tables,
applies the first revision, inserts the rows, then forks a child that runs
`upgrade` with ``SCHEMASHIFT_FAULT_KILL_AT`` set to a seeded random statement and
phase (before it runs, or after it ran but before the journal records it), so
the process dies by SIGKILL. Afterwards:

* `status` tells the truth: partly applied exactly when the journal says so
  (never for an atomic step: every step on SQLite, all but the one building an
  index CONCURRENTLY on PostgreSQL, none on MariaDB), the journal's count
  matches the statements that ran, and a database that is not partly applied
  matches the migrations at its revision;
* `upgrade` refuses a partly applied database with a one-line message naming
  `schemashift repair`;
* `repair continue` or `repair undo` (alternating) and then `upgrade` reach
  head, `diff` against the models is clean, and no pre-existing row is lost.

Only the killed run is a separate process; everything else runs in-process.
"""

from __future__ import annotations

import os
import random
import signal
import textwrap
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from schemashift import api, cli
from schemashift.runtime import executor
from schemashift.dialects import get_dialect
from schemashift.migration import (
    AddColumn, AlterColumn, Column, CreateIndex, CreateTable, ExecuteSQL, ForeignKey, Index, PrimaryKey, RenameColumn,
    Table, Type,
)
from schemashift.planning.plan import build_plan
from schemashift.history.chain import History
from schemashift.history.writer import write_migration
from schemashift.runtime.versions import AppliedRevision, Recorder

TRIALS = int(os.environ.get("SCHEMASHIFT_CRASH_TRIALS", "100"))
#: On PostgreSQL this makes the step journaled (CREATE INDEX CONCURRENTLY cannot run in a transaction).
CONCURRENTLY = (("postgresql_concurrently", "true"),)
ROWS = [(number, f"item {number:02d}" + "x" * (number % 7), number * 3) for number in range(1, 21)]

MODELS = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "item"
    __table_args__ = (sa.Index("ix_item_name", "title"), sa.Index("ux_item_sku", "sku", unique=True))
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None] = mapped_column(sa.String(100))
    qty: Mapped[int] = mapped_column(sa.BigInteger)
    price: Mapped[int | None] = mapped_column(sa.Integer)
    sku: Mapped[str | None] = mapped_column(sa.String(30))


class Note(Base):
    __tablename__ = "note"
    __table_args__ = (sa.Index("ix_note_item", "item_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("item.id"))
    body: Mapped[str | None] = mapped_column(sa.Text)
'''


def write_chain(folder: Path) -> list[str]:
    """The revisions, base to head; the first creates the table the others alter."""
    key = Column("id", Type("integer"), nullable=False, autoincrement=True)
    columns = (key, Column("name", Type("string", length=20)), Column("qty", Type("integer"), nullable=False))
    create = write_migration(folder, "create item", [
        CreateTable(Table("item", columns=columns, primary_key=PrimaryKey(("id",)))),
    ], None)
    price = write_migration(folder, "add price and sku", [
        AddColumn("item", Column("price", Type("integer"))),
        AddColumn("item", Column("sku", Type("string", length=30))),
        CreateIndex("item", Index("ix_item_name", ("name",), options=CONCURRENTLY)),
        CreateIndex("item", Index("ux_item_sku", ("sku",), unique=True)),
    ], create.revision)
    rename = write_migration(folder, "rename and widen", [
        RenameColumn("item", "name", "title"),
        AlterColumn("item", "title", Column("title", Type("string", length=100)),
                    old=Column("title", Type("string", length=20))),
        AlterColumn("item", "qty", Column("qty", Type("bigint"), nullable=False),
                    old=Column("qty", Type("integer"), nullable=False)),
    ], price.revision)
    fill = write_migration(folder, "fill prices", [
        ExecuteSQL("UPDATE item SET price = qty * 10", reverse="UPDATE item SET price = NULL"),
    ], rename.revision)
    notes = write_migration(folder, "create note", [CreateTable(Table(
        "note", columns=(key, Column("item_id", Type("integer"), nullable=False), Column("body", Type("text"))),
        primary_key=PrimaryKey(("id",)), foreign_keys=(ForeignKey(("item_id",), "item", ("id",)),),
        indexes=(Index("ix_note_item", ("item_id",)),),
    ))], fill.revision)
    return [create.revision, price.revision, rename.revision, fill.revision, notes.revision]


@dataclass
class Setup:
    """The module's project: its config, revisions, and the statements of the upgrade under test."""

    backend: str
    url: str
    config: Path
    revisions: list[str]
    step_sizes: list[int]
    atomic: list[bool]
    #: per step, per statement: the text the journal records before running it (None: a data statement,
    #: run and journaled in one transaction)
    journaled_as: list[list[str | None]]

    @property
    def total(self) -> int:
        """Statements the killed run would execute (from the first revision to head)."""
        return sum(self.step_sizes)

    def project(self) -> api.Project:
        """A fresh project (nothing cached between runs)."""
        return api.open_project(self.config)


@pytest.fixture(scope="module")
def setup(backend: str, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """The project on the module's database (one per backend)."""
    return make_setup(backend, db_url, tmp_path_factory.mktemp("crash"))


def make_setup(backend: str, db_url: str, directory: Path) -> Setup:
    """Write the project into `directory` and measure the upgrade under test."""
    module = f"crash_models_{uuid.uuid4().hex[:8]}"  # unique: models are imported in this process
    (directory / f"{module}.py").write_text(textwrap.dedent(MODELS))
    config = directory / "schemashift.toml"
    config.write_text(f'models = "{module}:Base"\nmigrations = "migrations"\ndefault_env = "test"\n\n'
                      f'[env.test]\nurl = "{db_url}"\nlock_timeout = 15\n'  # a lock a killed run left fails fast
                      'safe = false\n')  # the plain plan's statements are compared (safe mode: test_safe_mode.py)
    revisions = write_chain(directory / "migrations")
    history = History.load(directory / "migrations")
    dialect = get_dialect(sa.make_url(db_url).get_backend_name())
    plan = build_plan(history, dialect, revisions[0], revisions[-1])
    engine = _engine(db_url)
    try:
        with engine.connect() as conn:
            plan = dialect.adapt_to_live(conn, plan)  # as `upgrade` runs it (SQLite adds foreign-key checks)
    finally:
        engine.dispose()
    setup = Setup(backend, db_url, config, revisions, [len(step.statements) for step in plan.steps],
                  [step.atomic for step in plan.steps],
                  [[None if s.operation.data_only else s.describe() for s in step.statements] for step in plan.steps])
    assert api.check(setup.project(), out=lambda line: None), "the models must match the migrations"
    return setup


@lru_cache(maxsize=None)
def schedule(backend: str, total: int) -> list[tuple[int, bool]]:
    """(statement, after?) per trial: every combination in a seeded random order, then again reshuffled."""
    combinations = [(number, after) for number in range(total) for after in (False, True)]
    order: list[tuple[int, bool]] = []
    cycle = 0
    while len(order) < TRIALS:
        shuffled = combinations[:]
        random.Random(f"{backend}:{cycle}").shuffle(shuffled)
        order.extend(shuffled)
        cycle += 1
    return order[:TRIALS]


# -- one trial -----------------------------------------------------------------


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def reset(setup: Setup) -> None:
    """Drop every table, apply the first revision, insert the pre-existing rows."""
    engine = _engine(setup.url)
    try:
        with engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote
            for name in sorted(sa.inspect(conn).get_table_names(), key=lambda name: name != "note"):  # children first
                conn.exec_driver_sql(f"DROP TABLE {quote(name)}")
    finally:
        engine.dispose()
    api.upgrade(setup.project(), setup.revisions[0], out=lambda line: None)
    engine = _engine(setup.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO item (id, name, qty) VALUES (:id, :name, :qty)"),
                         [{"id": i, "name": name, "qty": qty} for i, name, qty in ROWS])
    finally:
        engine.dispose()


def killed_upgrade(setup: Setup, statement: int, after: bool) -> None:
    """Fork a child that upgrades to head and is SIGKILLed at `statement`; wait for it to die."""
    spec = f"{statement}{'+' if after else ''}"
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 3
        try:
            os.environ["SCHEMASHIFT_FAULT_KILL_AT"] = spec
            executor._statements_run = 0
            api.upgrade(setup.project(), "head", out=lambda line: None)
            code = 0
        except BaseException:  # noqa: BLE001 - any outcome but the kill fails the parent's assertion
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"the upgrade was not killed at statement {spec} (exit status {status})"
    )


def journal(setup: Setup) -> dict[str, AppliedRevision]:
    """The version table's rows by revision."""
    engine = _engine(setup.url)
    try:
        with engine.connect() as conn:
            return Recorder(conn).applied()
    finally:
        engine.dispose()


def rows(setup: Setup) -> list[tuple[object, ...]]:
    """The pre-existing table's rows, by id."""
    engine = _engine(setup.url)
    try:
        with engine.connect() as conn:
            query = "SELECT id, title, qty, price, sku FROM item ORDER BY id"
            return [tuple(row) for row in conn.exec_driver_sql(query)]
    finally:
        engine.dispose()


def where_killed(setup: Setup, statement: int) -> tuple[int, int]:
    """(index of the step, index of the statement within it) of run-wide statement `statement`."""
    for step, size in enumerate(setup.step_sizes):
        if statement < size:
            return step, statement
        statement -= size
    raise AssertionError("statement out of range")


def check_status_after_crash(setup: Setup, statement: int) -> bool:
    """`status` agrees with the journal and with what ran; returns whether the database is partly applied."""
    step, within = where_killed(setup, statement)
    before_step = setup.revisions[step]  # revisions[0] is applied before the run; step k applies revisions[k + 1]
    entries = journal(setup)
    unfinished = [row for row in entries.values() if not row.complete]
    report = api.status(setup.project())
    partial = any("PARTLY" in problem for problem in report.problems)
    assert partial == bool(unfinished), report.problems
    assert report.current == before_step
    # an atomic step is never left partly applied; a journaled one is, from its first journal write
    assert bool(unfinished) == (not setup.atomic[step]), (setup.atomic, step, unfinished)
    if unfinished:
        (row,) = unfinished
        assert row.revision == setup.revisions[step + 1] and row.state == "running"
        assert row.statements_done == within, (row.statements_done, within)
        assert row.running_statement == setup.journaled_as[step][within]
        assert "crashed" in report.problems[0] and "schemashift repair" in report.problems[0]
    else:
        assert report.problems == [] and report.schema_matches, report.differences
        assert set(entries) == set(setup.revisions[: step + 1])
    return partial


def check_upgrade_refuses(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's `upgrade` exits 2 with one line naming `schemashift repair`, changing nothing."""
    before = journal(setup)
    capsys.readouterr()
    assert cli.main(["--config", str(setup.config), "upgrade"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "PARTLY applied" in err and "schemashift repair" in err, err
    assert journal(setup) == before


def check_at_head(setup: Setup) -> None:
    """Every revision applied, no drift from the models, every pre-existing row kept and migrated."""
    entries = journal(setup)
    assert sorted(entries) == sorted(setup.revisions) and all(row.complete for row in entries.values())
    diff = api.diff(setup.project())
    assert diff.empty, diff.lines()
    assert rows(setup) == [(i, name, qty, qty * 10, None) for i, name, qty in ROWS]


@pytest.fixture
def quiet_fault_env() -> Iterator[None]:
    """No fault injection in this process (only the forked child sets it)."""
    os.environ.pop("SCHEMASHIFT_FAULT_KILL_AT", None)
    yield
    os.environ.pop("SCHEMASHIFT_FAULT_KILL_AT", None)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_killed_upgrade_recovers(setup: Setup, trial: int, capsys: pytest.CaptureFixture[str],
                                 quiet_fault_env: None) -> None:
    statement, after = schedule(setup.backend, setup.total)[trial]
    action = ("continue", "undo")[trial % 2]
    reset(setup)
    killed_upgrade(setup, statement, after)
    partial = check_status_after_crash(setup, statement)
    if partial:
        check_upgrade_refuses(setup, capsys)
        assert cli.main(["--config", str(setup.config), "repair", action]) == 0, capsys.readouterr().err
        report = api.status(setup.project())
        assert report.problems == [] and report.schema_matches, (action, report.problems, report.differences)
    api.upgrade(setup.project(), out=lambda line: None)
    check_at_head(setup)


def test_every_statement_is_a_kill_point(setup: Setup) -> None:
    """The schedule covers every statement in both phases (so 100 trials test every crash point)."""
    assert setup.total >= 6
    if TRIALS >= 2 * setup.total:
        assert set(schedule(setup.backend, setup.total)) == {(n, a) for n in range(setup.total) for a in (False, True)}


def test_concurrent_index_step_is_journaled_and_unwrapped(setup: Setup) -> None:
    """On PostgreSQL the CREATE INDEX CONCURRENTLY step runs journaled, and `--sql` puts no BEGIN around it."""
    from schemashift.planning.offline import offline_script

    if setup.backend != "postgresql":
        assert all(setup.atomic) == (setup.backend == "sqlite")
        return
    assert setup.atomic == [False, True, True, True]
    assert any(text and "CREATE INDEX CONCURRENTLY" in text for text in setup.journaled_as[0])
    history = History.load(setup.config.parent / "migrations")
    plan = build_plan(history, get_dialect("postgresql"), setup.revisions[0], setup.revisions[-1])
    engine = _engine(setup.url)
    try:
        with engine.connect() as conn:
            script = offline_script(plan, Recorder(conn), create_version_table=False)
    finally:
        engine.dispose()
    blocks = script.split("\n\n")[1:]
    assert "CONCURRENTLY" in blocks[0] and "BEGIN;" not in blocks[0]
    assert all(block.splitlines()[1] == "BEGIN;" and block.endswith("COMMIT;") for block in blocks[1:])
