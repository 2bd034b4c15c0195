"""Fresh builds (`schemashift.planning.fresh`): an empty database brought to head in one pass.

One history, generated from five versions of the models, renames a column and a
table, changes a type, drops a column, adds and drops indexes, unique and CHECK
constraints and a foreign key, creates and alters a sequence and a native enum
(PostgreSQL) and a view. It is applied to two empty databases on the same
server: one by a fresh build, one step by step (``--step-by-step``). Both must
reflect the same (SQLAlchemy's inspector, with indexes, keys and foreign keys,
and schemashift's own comparison against the replayed head), `status` is clean,
every revision is recorded with its checksum, `downgrade -1` runs the last
migration's own down step, a second `upgrade` is a no-op. A data migration on
the way stops the build just before it; the rest runs step by step.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import schemashift
from features_cycle import Cycle
from helpers import fetch_rows, inspect_schema
from schemashift import api
from schemashift.history.cache import state_at
from schemashift.planning.fresh import fresh_prefix
from schemashift.runtime.fresh import FRESH, chunks


def versions(dialect: str) -> list[tuple[sa.MetaData, dict[str, Any]]]:
    """The five model versions, each with the generate flags that go with it."""
    pg = dialect == "postgresql"

    def build(step: int) -> sa.MetaData:
        metadata = sa.MetaData()
        name = "full_name" if step >= 2 else "name"
        sa.Table(
            "users", metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column(name, sa.String(50), nullable=False),
            sa.Column("age", sa.BigInteger if step >= 2 else sa.Integer),
            *([sa.Column("email", sa.String(100))] if step < 3 else []),
            *([sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true())] if step >= 2 else []),
            *([sa.Column("level", sa.Enum("low", "high", *(["top"] if step >= 4 else []), name="level_t"))]
              if pg else []),
            *([sa.UniqueConstraint("email", name="uq_users_email")] if step < 3 else []),
            *([sa.Index("ix_users_name", name)] if step < 2 else [sa.Index("ix_users_full_name", name, unique=True)]),
        )
        orders = "purchases" if step >= 3 else "orders"
        sa.Table(
            orders, metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", name=f"fk_{orders}_user"), nullable=False),
            sa.Column("amount", sa.Numeric(10, 2)),
            *([sa.CheckConstraint("amount >= 0", name="ck_amount_positive")] if step >= 2 else []),
            *([sa.Index("ix_orders_amount", "amount")] if step in (1, 2, 3) else []),
        )
        if step >= 3:
            sa.Table("tags", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("label", sa.String(30), nullable=False, unique=True),
                     sa.Column("purchase_id", sa.Integer, sa.ForeignKey("purchases.id", ondelete="CASCADE")),
                     *([sa.Column("color", sa.String(10))] if step >= 5 else []),
                     *([sa.Index("ix_tags_purchase", "purchase_id")] if step >= 5 else []))
        if pg:
            sa.Sequence("ticket_no", start=100, increment=10 if step < 4 else 5, metadata=metadata)
        if step >= 4:
            users_table = metadata.tables["users"]
            schemashift.View("named_users", sa.select(users_table.c.id, users_table.c[name]), metadata=metadata)
        return metadata

    flags: list[dict[str, Any]] = [
        {},
        {"rename_columns": [("users", "name", "full_name")]},
        {"rename_tables": [("orders", "purchases")]},
        {},
        {},
    ]
    return [(build(step + 1), flags[step]) for step in range(5)]


@pytest.fixture(scope="module")
def history_folder(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five migrations, generated once for the module (no database needed)."""
    folder = tmp_path_factory.mktemp("fresh-history")
    cycle = Cycle(folder / "project", "sqlite:///unused.db" if backend == "sqlite" else _placeholder(backend))
    for number, (metadata, flags) in enumerate(versions(backend), start=1):
        cycle.generate(metadata, f"v{number}", **flags)
    return folder / "project" / "migrations"


def _placeholder(backend: str) -> str:
    return {"postgresql": "postgresql+psycopg://u@127.0.0.1/x", "mysql": "mysql+pymysql://u@127.0.0.1/x"}[backend]


def project_on(url: str, folder: Path, migrations: Path) -> Cycle:
    """A project on `url` with a copy of `migrations`."""
    cycle = Cycle(folder, url)
    for path in migrations.glob("*.py"):
        shutil.copy(path, folder / "migrations" / path.name)
    cycle.use(versions(cycle.dialect)[-1][0])
    return cycle


def full_inspection(url: str) -> dict[str, Any]:
    """`helpers.inspect_schema` plus indexes, unique constraints, foreign keys and views (names the database
    makes up for unnamed items left out)."""
    tables: dict[str, Any] = inspect_schema(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            for name, table in tables.items():
                table["indexes"] = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                          for i in inspector.get_indexes(name))
                table["uniques"] = sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(name))
                table["foreign_keys"] = sorted(
                    (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]),
                     (fk.get("options") or {}).get("ondelete")) for fk in inspector.get_foreign_keys(name))
            tables["views"] = sorted(inspector.get_view_names())
    finally:
        engine.dispose()
    return tables


def _second_db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    from conftest import _db_name, create_database, drop_database

    name = _db_name(request)
    url = create_database(backend, name, tmp_path)
    request.addfinalizer(lambda: drop_database(backend, name))
    return url


def test_fresh_build_equals_step_by_step(backend: str, fresh_db: str, history_folder: Path, tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
    fresh = project_on(fresh_db, tmp_path / "fresh", history_folder)
    stepped = project_on(_second_db(backend, request, tmp_path), tmp_path / "stepped", history_folder)

    fresh.upgrade()
    api.upgrade(stepped.project, out=stepped.output.append, step_by_step=True)
    assert any(line.startswith("applied 5 migrations as one fresh build") for line in fresh.output), fresh.output
    assert not any("fresh build" in line for line in stepped.output), stepped.output

    assert full_inspection(fresh.url) == full_inspection(stepped.url)
    head = fresh.project.history().head
    with fresh.project.connect() as connection:
        assert api.compare_schemas(connection, state_at(fresh.project.history(), head),
                                   exclude=set(fresh.project.recorder(connection).own_tables)) == []
    assert fresh.diff() == [] and stepped.diff() == []

    report = api.status(fresh.project)
    assert report.exit_code == 0, report.lines()
    checksums = {m.revision: m.checksum for m in fresh.project.history().chain}
    table = "schemashift_version"
    assert dict(fetch_rows(fresh.url, f"SELECT revision, checksum FROM {table} WHERE state = 'applied'")) == checksums
    logged = fetch_rows(fresh.url, f"SELECT revision, outcome, error FROM {table}_history ORDER BY id")
    assert sorted(revision for revision, _, _ in logged) == sorted(checksums)
    assert {(outcome, note) for _, outcome, note in logged} == {("ok", f"{FRESH} from the schema at {head}")}
    assert [row["revision"] for row in api.history(fresh.project, applied=True)] == list(checksums)
    assert api.verify(fresh.project, out=lambda line: None)  # checksums verify

    lines: list[str] = []
    api.upgrade(fresh.project, out=lines.append)  # a second upgrade: nothing to do
    assert lines == [f"Nothing to do: the database is at {head}."]

    fresh.downgrade("-1")  # the last migration's own down step
    stepped.downgrade("-1")
    assert full_inspection(fresh.url) == full_inspection(stepped.url)
    fresh.upgrade()
    assert fresh.diff() == []


def _stored_fingerprint(url: str, revision: str) -> str | None:
    rows = fetch_rows(url, f"SELECT fingerprint FROM schemashift_version WHERE revision = '{revision}'")
    return rows[0][0] if rows else None


def test_a_second_build_reuses_the_plan_and_the_drift_check(backend: str, fresh_db: str, history_folder: Path,
                                                          tmp_path: Path, request: pytest.FixtureRequest,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A database built again from the same migrations: the plan comes from the project's cache (nothing is
    replayed or compiled), and where the catalogue fingerprint is portable (object ids are not part of it: not
    MariaDB, whose facts name the database) the drift check the first database passed is not run again.

    The first build itself runs no drift check and stores no fingerprint: none is known clean yet, and its
    first `status` checks (and remembers the fingerprint as clean)."""
    from schemashift.planning import fresh as planning
    from schemashift.runtime.fingerprint import portable
    from schemashift.services import compare

    first = project_on(fresh_db, tmp_path / "project", history_folder)
    checks: list[object] = []
    monkeypatch.setattr(compare, "live_differences", lambda *args: checks.append(args) or [])
    first.upgrade()
    head = first.project.history().head
    assert head is not None and _stored_fingerprint(first.url, head) is None and not checks
    monkeypatch.undo()
    assert api.status(first.project).exit_code == 0
    assert _stored_fingerprint(first.url, head)
    cold = planning.plan_fresh(first.project.history(), planning_dialect(backend), head)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("planned or checked again")
    monkeypatch.setattr(planning, "diff", never)
    if portable(sa.make_url(fresh_db).get_backend_name()):
        monkeypatch.setattr(compare, "live_differences", never)
    second = project_on(_second_db(backend, request, tmp_path), tmp_path / "project", history_folder)  # same cache
    second.upgrade()
    assert any(line.startswith("applied 5 migrations as one fresh build") for line in second.output), second.output
    assert full_inspection(second.url) == full_inspection(first.url)
    stored = _stored_fingerprint(second.url, head)  # MariaDB's facts name the database: not known clean there
    assert stored == (_stored_fingerprint(first.url, head) if portable(backend) else None)
    warm = planning.plan_fresh(second.project.history(), planning_dialect(backend), head)
    assert cold is not None and warm is not None
    assert [s.sql for s in warm.statements] == [s.sql for s in cold.statements]
    assert [m.revision for m in warm.migrations] == [m.revision for m in cold.migrations]
    assert warm.after == cold.after
    monkeypatch.undo()
    assert second.diff() == [] and api.status(second.project).exit_code == 0

    with sa.create_engine(second.url, poolclass=sa.pool.NullPool).begin() as connection:  # drift by hand
        connection.exec_driver_sql("ALTER TABLE users ADD COLUMN sneaky INTEGER")
    report = api.status(second.project)
    assert report.exit_code == 1 and any("sneaky" in change for change in report.changes), report.lines()


def test_a_changed_migration_is_planned_anew(backend: str, history_folder: Path, tmp_path: Path) -> None:
    """The kept plan belongs to exactly the migrations it was made from: an edited file gives a new plan."""
    from schemashift.planning.fresh import plan_fresh

    cycle = project_on(f"sqlite:///{tmp_path / 'unused.db'}" if backend == "sqlite" else _placeholder(backend),
                       tmp_path / "project", history_folder)
    history = cycle.project.history()
    before = plan_fresh(history, planning_dialect(backend), history.head)
    last, checksum = history.chain[-1].path, history.chain[-1].checksum
    last.write_text(last.read_text() + "\n# edited\n")
    cycle.project._history = None
    history = cycle.project.history()
    assert history.chain[-1].checksum != checksum
    from schemashift.planning import fresh as planning

    calls: list[int] = []
    real = planning.diff

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)
    planning.diff = counting  # type: ignore[assignment]
    try:
        after = plan_fresh(history, planning_dialect(backend), history.head)
    finally:
        planning.diff = real  # type: ignore[assignment]
    assert calls == [1], "the edited chain must be planned anew"
    assert before is not None and after is not None
    assert [s.sql for s in after.statements] == [s.sql for s in before.statements]  # a comment changes no SQL


def test_a_foreign_kept_plan_is_planned_anew(backend: str, history_folder: Path, tmp_path: Path) -> None:
    """A kept plan file that unpickles to something else (another shape, counts, types) is a cache miss, never a
    build of the wrong migrations or a crash."""
    import pickle

    from schemashift.planning.fresh import plan_fresh

    cycle = project_on(f"sqlite:///{tmp_path / 'unused.db'}" if backend == "sqlite" else _placeholder(backend),
                       tmp_path / "project", history_folder)
    history = cycle.project.history()
    cold = plan_fresh(history, planning_dialect(backend), history.head)
    assert cold is not None
    [kept] = (tmp_path / "project").rglob("fresh-*.pickle")
    for foreign in [(3, "x", "y", None), (-1, [], [], cold.after), (1, [], [], cold.after),
                    (len(cold.migrations), cold.operations, ["SELECT 1"], cold.after),
                    (len(cold.migrations), cold.operations, cold.statements, {}), (None, [], [], None)]:
        kept.write_bytes(pickle.dumps(foreign))
        again = plan_fresh(history, planning_dialect(backend), history.head)
        assert again is not None, foreign
        assert [s.sql for s in again.statements] == [s.sql for s in cold.statements], foreign
        assert [m.revision for m in again.migrations] == [m.revision for m in cold.migrations], foreign


def test_a_file_changed_behind_its_size_and_mtime_is_not_built_from_the_kept_plan(
        backend: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deploy may restore a file's mtime (``touch -r``, ``rsync -t``) after an edit that kept its size; the stat
    index then still sees the inode change time move, so it reads the file again, and a kept plan, which imports
    no migration, is not used for the old content."""
    import os

    from schemashift.history import cache
    from schemashift.history.files import checksum_of
    from schemashift.planning.fresh import plan_fresh

    monkeypatch.setattr(cache, "RACY_NS", 0)  # trust entries at once (no 3 s wait)
    cycle = project_on(f"sqlite:///{tmp_path / 'unused.db'}" if backend == "sqlite" else _placeholder(backend),
                       tmp_path / "project", history_folder)
    history = cycle.project.history()
    assert plan_fresh(history, planning_dialect(backend), history.head) is not None  # kept
    cycle.project._history = None
    trusted = cycle.project.history()
    last = trusted.chain[-1]
    assert not last.loaded  # the index was trusted: nothing imported
    text, stat = last.path.read_text(), last.path.stat()
    assert '"v5"' in text
    last.path.write_text(text.replace('"v5"', '"v6"'))  # same size
    os.utime(last.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
    cycle.project._history = None
    history = cycle.project.history()
    assert history.chain[-1].checksum == checksum_of(last.path.read_bytes()) != last.checksum
    build = plan_fresh(history, planning_dialect(backend), history.head)
    assert build is not None and build.migrations[-1].checksum == history.chain[-1].checksum


def planning_dialect(backend: str) -> Any:
    from schemashift.dialects import get_dialect

    return get_dialect(backend)


def test_kept_data_after_downgrade_base_is_restored_step_by_step(backend: str, fresh_db: str, history_folder: Path,
                                                                  tmp_path: Path) -> None:
    """After `downgrade base` kept rows, the next upgrade is not a fresh build: only the steps restore them."""
    cycle = project_on(fresh_db, tmp_path / "kept", history_folder)
    cycle.upgrade()
    cycle.run("INSERT INTO users (id, full_name, age, active) VALUES (1, 'kept', 7, "
              + ("true" if backend == "postgresql" else "1") + ")")
    cycle.downgrade("base")
    cycle.upgrade()
    assert not any("fresh build" in line for line in cycle.output[-3:]), cycle.output[-3:]
    assert cycle.rows("SELECT id, full_name, age FROM users") == [(1, "kept", 7)]
    assert cycle.diff() == []


def test_data_migration_stops_the_build(backend: str, fresh_db: str, history_folder: Path, tmp_path: Path) -> None:
    cycle = project_on(fresh_db, tmp_path / "data", history_folder)
    migrations = sorted((tmp_path / "data" / "migrations").glob("0*.py"))
    third = migrations[2]
    text = third.read_text()
    third.write_text(text.replace("operations = [", "operations = [\n    ExecuteSQL(\"UPDATE users SET age = 1\"),", 1))
    cycle.project._history = None
    chain = cycle.project.history().chain
    assert [m.revision for m in fresh_prefix(chain)] == [m.revision for m in chain[:2]]

    cycle.upgrade()
    assert any(line.startswith("applied 2 migrations as one fresh build") for line in cycle.output), cycle.output
    assert cycle.diff() == []
    notes = dict(fetch_rows(cycle.url, "SELECT revision, error FROM schemashift_version_history"))
    built = f"{FRESH} from the schema at {chain[1].revision}"
    assert [notes[m.revision] for m in chain] == [built, built, None, None, None]


def test_opt_outs(backend: str, fresh_db: str, history_folder: Path, tmp_path: Path) -> None:
    cycle = project_on(fresh_db, tmp_path / "optout", history_folder)
    cycle.project.env.step_by_step = True  # the environment's `step_by_step = true`
    cycle.upgrade()
    assert not any("fresh build" in line for line in cycle.output)
    assert {row[0] for row in fetch_rows(cycle.url, "SELECT error FROM schemashift_version_history")} == {None}


def test_dry_run_shows_the_build(backend: str, fresh_db: str, history_folder: Path, tmp_path: Path) -> None:
    cycle = project_on(fresh_db, tmp_path / "dry", history_folder)
    lines: list[str] = []
    api.upgrade(cycle.project, dry_run=True, out=lines.append)
    assert lines[0].startswith(f"Fresh build on {backend}: base -> ")
    assert inspect_schema(cycle.url) == {}


def test_cli_step_by_step_flag(backend: str, fresh_db: str, history_folder: Path, tmp_path: Path) -> None:
    from helpers import cli

    if backend != "sqlite":
        pytest.skip("the flag is the same on every database")
    project_on(fresh_db, tmp_path / "cli", history_folder)
    result = cli(tmp_path / "cli", "upgrade", "--step-by-step", "--yes")
    assert "fresh build" not in result.stdout + result.stderr
    assert {row[0] for row in fetch_rows(fresh_db, "SELECT error FROM schemashift_version_history")} == {None}


def test_a_failing_build_leaves_the_database_empty(backend: str, fresh_db: str, history_folder: Path,
                                                   tmp_path: Path) -> None:
    from schemashift.errors import ExecutionError

    cycle = project_on(fresh_db, tmp_path / "fail", history_folder)
    engine = sa.create_engine(fresh_db, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:  # a clash the emptiness check does not see: a view named like a table
        connection.exec_driver_sql("CREATE VIEW tags AS SELECT 1 AS x")
    engine.dispose()
    with pytest.raises(ExecutionError, match=r"fresh build .* failed.*empty again"):
        api.upgrade(cycle.project, out=cycle.output.append)
    left = set(inspect_schema(cycle.url)) - {"tags"}
    assert left == set()
    assert fetch_rows(cycle.url, "SELECT count(*) FROM schemashift_version")[0][0] == 0


def _written_to_while_failing(backend: str, cycle: Cycle, monkeypatch: pytest.MonkeyPatch) -> Cycle:
    """`cycle`, set up so that its fresh build fails at its last wave (a view named like its table `tags`) and
    another session writes a row to `users`, which the build committed, before the build is taken back; skipped
    where a failed build leaves no table (one transaction)."""
    from schemashift.dialects import get_dialect
    from schemashift.runtime import fresh

    dialect = get_dialect(backend)
    if dialect.builds_side_by_side:
        _side_by_side_only(backend, monkeypatch)
    elif dialect.transactional_ddl:
        pytest.skip("one transaction: a failed build leaves no table behind to write to")
    cycle.run("CREATE VIEW tags AS SELECT 1 AS x")  # fails the last wave: users and purchases are committed
    real_undo = fresh.undo

    def undo(connection: sa.Connection, build: Any, done: list[Any]) -> list[str]:
        cycle.run("INSERT INTO users (full_name) VALUES ('written meanwhile')")  # another session
        return real_undo(connection, build, done)

    monkeypatch.setattr(fresh, "undo", undo)
    return cycle


def test_a_failing_build_never_drops_a_table_another_session_wrote_to(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build that fails after committing some of its tables takes them back, except one another session wrote a
    row to meanwhile: that table stays with its row, and the error says tables were kept."""
    from schemashift.errors import ExecutionError

    cycle = _written_to_while_failing(backend, project_on(fresh_db, tmp_path / "written", history_folder), monkeypatch)
    with pytest.raises(ExecutionError, match=r"still there \(users\), kept where they hold rows"):
        api.upgrade(cycle.project, out=cycle.output.append)
    assert fetch_rows(cycle.url, "SELECT full_name FROM users") == [("written meanwhile",)]
    assert set(inspect_schema(cycle.url)) - {"tags"} == {"users"}


def test_a_failed_build_that_kept_a_table_points_to_repair(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The error of a build that kept a table holding rows names what deals with it (its marker row stays:
    `upgrade`, `--step-by-step` too, refuses until then), not a step-by-step upgrade; `repair continue`, once the
    cause is gone, finishes the build and keeps the row."""
    from schemashift.errors import DatabaseStateError, ExecutionError
    from schemashift.runtime import fresh

    real_undo = fresh.undo
    cycle = _written_to_while_failing(backend, project_on(fresh_db, tmp_path / "kept", history_folder), monkeypatch)
    with pytest.raises(ExecutionError) as failed:
        api.upgrade(cycle.project, out=cycle.output.append)
    monkeypatch.setattr(fresh, "undo", real_undo)
    assert "`schemashift repair continue`" in str(failed.value) and "--step-by-step" not in str(failed.value)
    problems = api.status(cycle.project).problems
    assert len(problems) == 1 and "`schemashift repair`" in problems[0], problems
    with pytest.raises(DatabaseStateError, match="schemashift repair"):
        api.upgrade(cycle.project, out=cycle.output.append, step_by_step=True)
    cycle.run("DROP VIEW tags")
    api.repair(cycle.project, action="continue", out=cycle.output.append)
    assert fetch_rows(cycle.url, "SELECT full_name FROM users") == [("written meanwhile",)]
    assert api.status(cycle.project).exit_code == 0


def test_chunks_keep_operations_whole(backend: str, history_folder: Path, tmp_path: Path) -> None:
    from schemashift.dialects import get_dialect
    from schemashift.planning.fresh import plan_fresh

    if backend != "sqlite":
        pytest.skip("planning only")
    cycle = project_on("sqlite:///unused.db", tmp_path / "chunks", history_folder)
    build = plan_fresh(cycle.project.history(), get_dialect("sqlite"), cycle.project.history().head)
    assert build is not None
    groups = chunks(build, size=1)
    assert [s for group in groups for s in group.statements] == build.statements
    assert [o for group in groups for o in group.operations] == build.operations


def test_waves_put_referenced_tables_first(backend: str, history_folder: Path, tmp_path: Path) -> None:
    from schemashift.dialects import get_dialect
    from schemashift.operations import CreateTable
    from schemashift.planning.fresh import plan_fresh
    from schemashift.runtime.fresh import waves

    if backend != "mysql":
        pytest.skip("tables side by side only where DDL commits itself")
    cycle = project_on("sqlite:///unused.db", tmp_path / "waves", history_folder)
    build = plan_fresh(cycle.project.history(), get_dialect("mysql"), cycle.project.history().head)
    assert build is not None
    order = waves(build)
    assert [o for wave in order for one in wave for o in one.operations] != []
    assert sorted(map(id, (o for wave in order for one in wave for o in one.operations))) == sorted(
        map(id, build.operations))
    wave_of = {one.operations[0].table.key: number for number, wave in enumerate(order) for one in wave
               if isinstance(one.operations[0], CreateTable)}
    for number, wave in enumerate(order):
        for one in wave:
            operation = one.operations[0]
            if isinstance(operation, CreateTable):
                assert all(wave_of[fk.ref_key] < number for fk in operation.table.foreign_keys
                           if fk.ref_key != operation.table.key)
            else:
                assert wave == [one]  # anything else runs alone
    assert wave_of["purchases"] > wave_of["users"] and wave_of["tags"] > wave_of["purchases"]


def _scenario_heads() -> list[tuple[str, frozenset[str], Any, Any, Any, Any]]:
    """(name, backends, v1, resolved v1 operations, resolved v2 operations, head) per scenario of the corpus."""
    import sys
    import textwrap
    import types

    from scenario_harness import generate_options
    from scenarios import HEADER, SCENARIOS
    from schemashift.autodetect.differ import RenameDecisions, diff
    from schemashift.model.schema import Schema
    from schemashift.operations import resolve_all
    from schemashift.sqla.from_metadata import from_metadata

    def models(source: str, name: str) -> Schema:
        module = types.ModuleType(name)
        sys.modules[name] = module  # declarative annotations are resolved through it
        try:
            exec(compile(HEADER + textwrap.dedent(source), name, "exec"), module.__dict__)  # our own corpus
            return from_metadata(module.metadata)
        finally:
            del sys.modules[name]

    heads = []
    for scenario in SCENARIOS:
        v1, v2 = models(scenario.v1, f"fresh_{scenario.name}_v1"), models(scenario.v2, f"fresh_{scenario.name}_v2")
        options = generate_options(scenario.flags)
        decisions = RenameDecisions(tables=dict(options["rename_tables"] or []),
                                    columns={(t, old): new for t, old, new in options["rename_columns"] or []},
                                    no_rename=True)
        first_ops, first = resolve_all(diff(Schema(), v1), Schema())
        second_ops, head = resolve_all(diff(first, v2, decisions), first)
        heads.append((scenario.name, scenario.backends, first, first_ops, second_ops, head))
    assert len(heads) > 100
    return heads


def test_every_scenario_head_is_built_exactly() -> None:
    """For each kind of change of the scenario corpus (v1 then v2, on each database it applies to), the operations
    a fresh build derives from the replayed head compile and replay to exactly that head (no database)."""
    from schemashift.autodetect.differ import diff
    from schemashift.dialects import get_dialect
    from schemashift.model.schema import Schema
    from schemashift.planning.plan import compile_operations

    problems = []
    for name, backends, _, _, _, head in _scenario_heads():
        for backend in sorted(backends):
            _, built = compile_operations(get_dialect(backend), diff(Schema(), head), Schema())
            if built != head:
                problems.append(f"{name} on {backend}")
    assert problems == []


def test_every_scenario_reflects_alike_on_sqlite() -> None:
    """Each scenario's two migrations run statement by statement, and its fresh build, on in-memory SQLite
    databases: SQLAlchemy's inspector sees the same tables, columns, keys, indexes, constraints and views."""
    import warnings

    from schemashift.autodetect.differ import diff
    from schemashift.dialects import get_dialect
    from schemashift.model.schema import Schema
    from schemashift.planning.plan import compile_operations

    def reflected(statements: list[Any]) -> dict[str, Any]:
        engine = sa.create_engine("sqlite://")
        with engine.connect() as connection, warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.SAWarning)  # expression indexes are not reflected
            for statement in statements:
                if statement.sql is not None:
                    connection.exec_driver_sql(statement.sql)
            inspector = sa.inspect(connection)
            tables: dict[str, Any] = {"views": sorted(inspector.get_view_names())}
            for table in inspector.get_table_names():
                tables[table] = (
                    [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                     for c in inspector.get_columns(table)],
                    inspector.get_pk_constraint(table)["constrained_columns"],
                    sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                           for i in inspector.get_indexes(table)),
                    sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                           for f in inspector.get_foreign_keys(table)),
                    sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
                    sorted(" ".join(str(c["sqltext"]).split()) for c in inspector.get_check_constraints(table)))
        engine.dispose()
        return tables

    dialect = get_dialect("sqlite")
    differing = []
    for name, backends, first, first_ops, second_ops, head in _scenario_heads():
        if "sqlite" not in backends:
            continue
        stepped = (compile_operations(dialect, first_ops, Schema())[0]
                   + compile_operations(dialect, second_ops, first)[0])
        fresh = compile_operations(dialect, diff(Schema(), head), Schema())[0]
        if reflected(stepped) != reflected(fresh):
            differing.append(name)
    assert differing == []


# -- side by side behind a marker row (PostgreSQL) ------------------------------------


def _side_by_side_only(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip where the dialect builds in one transaction; make even this short build run side by side, one
    operation per transaction."""
    from schemashift.dialects import get_dialect
    from schemashift.runtime import fresh

    if not get_dialect(backend).builds_side_by_side:
        pytest.skip("side-by-side fresh builds only where the dialect says so (PostgreSQL)")
    monkeypatch.setattr(fresh, "SIDE_BY_SIDE_FROM", 1)
    monkeypatch.setattr(fresh, "LANE_CHUNK", 1)


def _killed_upgrade(cycle: Cycle, transactions: int) -> None:
    """Fork a child that upgrades `cycle` and is SIGKILLed once `transactions` table transactions committed."""
    import os
    import signal

    from schemashift.runtime.fresh import FAULT_ENV

    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 3
        try:
            os.environ[FAULT_ENV] = str(transactions)
            api.upgrade(cycle.project, out=lambda line: None)
            code = 0
        except BaseException:  # noqa: BLE001 - any outcome but the kill fails the parent's assertion
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"not killed (exit status {status})"


def test_side_by_side_build_equals_step_by_step(backend: str, fresh_db: str, history_folder: Path, tmp_path: Path,
                                                request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    _side_by_side_only(backend, monkeypatch)
    fresh = project_on(fresh_db, tmp_path / "fresh", history_folder)
    stepped = project_on(_second_db(backend, request, tmp_path), tmp_path / "stepped", history_folder)
    fresh.upgrade()
    api.upgrade(stepped.project, out=stepped.output.append, step_by_step=True)
    assert any(line.startswith("applied 5 migrations as one fresh build") for line in fresh.output), fresh.output
    assert full_inspection(fresh.url) == full_inspection(stepped.url)
    head = fresh.project.history().head
    states = fetch_rows(fresh.url, "SELECT state, count(*) FROM schemashift_version GROUP BY state")
    assert states == [("applied", 5)]
    notes = {row[0] for row in fetch_rows(fresh.url, "SELECT error FROM schemashift_version_history")}
    assert notes == {f"{FRESH} from the schema at {head}"}
    assert api.status(fresh.project).exit_code == 0
    assert fresh.diff() == []


@pytest.mark.parametrize("allowed", [0, 1], ids=["none", "one"])
def test_a_side_by_side_build_runs_on_the_connections_the_server_allows(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        allowed: int) -> None:
    """The server refusing the build's extra connections (max_connections or a role's connection limit
    reached) leaves fewer lanes, not a failed build with its marker row left behind."""
    import threading
    from contextlib import contextmanager

    from schemashift.services.project import Project

    _side_by_side_only(backend, monkeypatch)
    real = Project.connect_beside
    opened: list[int] = []
    lock = threading.Lock()

    @contextmanager
    def limited(self: Project, connection: sa.Connection) -> Any:
        with lock:
            opened.append(1)
            refused = len(opened) > allowed
        if refused:
            raise sa.exc.OperationalError("connect", None, Exception('too many connections for role "app"'))
        with real(self, connection) as other:
            yield other

    monkeypatch.setattr(Project, "connect_beside", limited)
    cycle = project_on(fresh_db, tmp_path / "limited", history_folder)
    cycle.upgrade()
    assert len(opened) >= 1
    assert any(line.startswith("applied 5 migrations as one fresh build") for line in cycle.output), cycle.output
    states = fetch_rows(cycle.url, "SELECT state, count(*) FROM schemashift_version GROUP BY state")
    assert states == [("applied", 5)]
    assert api.status(cycle.project).exit_code == 0
    assert cycle.diff() == []


@pytest.mark.parametrize("migrations", [3, 5], ids=["no-objects", "a-view"])
def test_a_side_by_side_build_reads_its_fingerprint_beside(backend: str, fresh_db: str, history_folder: Path,
                                                           tmp_path: Path, request: pytest.FixtureRequest,
                                                           monkeypatch: pytest.MonkeyPatch, migrations: int) -> None:
    """The first build of some migrations reads no fingerprint and runs no drift check (none is known clean: its
    `status` checks, once, and remembers the fingerprint as clean); a later build of the same migrations reads its
    fingerprint on a helper connection while the rows are recorded and stores it, with no drift check, when it is
    the one known clean (the value read afterwards on a connection of its own); any other (a sequence of the
    database's own, say) is not stored."""
    import threading

    from schemashift.runtime.fingerprint import FormatCursor, fingerprint, stored_value
    from schemashift.services import compare, migrate

    _side_by_side_only(backend, monkeypatch)
    where: list[tuple[str, str]] = []
    real_take, real_check = migrate.take_fingerprint, compare.live_differences

    def take(*args: Any, **kwargs: Any) -> Any:
        where.append(("take", threading.current_thread().name))
        return real_take(*args, **kwargs)

    def check(*args: Any, **kwargs: Any) -> Any:
        where.append(("check", threading.current_thread().name))
        return real_check(*args, **kwargs)

    monkeypatch.setattr(migrate, "take_fingerprint", take)
    monkeypatch.setattr(compare, "live_differences", check)
    chosen = tmp_path / "chosen"  # the first `migrations` of the five (the view comes with the fourth)
    chosen.mkdir()
    for path in sorted(history_folder.glob("*.py"))[:migrations]:
        shutil.copy(path, chosen / path.name)
    history_folder = chosen
    first = project_on(fresh_db, tmp_path / "project", history_folder)
    first.upgrade()
    head = first.project.history().head
    assert head is not None and where == [] and _stored_fingerprint(first.url, head) is None
    assert api.status(first.project).exit_code == 0
    stored = _stored_fingerprint(first.url, head)
    with first.project.connect() as connection, connection.begin():
        cursor = FormatCursor(connection.connection.dbapi_connection.cursor(),  # type: ignore[union-attr]
                              connection.dialect.paramstyle)
        own = sorted(first.project.recorder(connection).own_tables)
        assert stored == stored_value(fingerprint(cursor, backend, [None], own), [])

    where.clear()
    second = project_on(_second_db(backend, request, tmp_path), tmp_path / "project", history_folder)  # same cache
    second.upgrade()
    assert [kind for kind, _ in where] == ["take"] and where[0][1] != threading.main_thread().name, where
    assert _stored_fingerprint(second.url, head) == stored

    where.clear()
    other = _second_db(backend, request, tmp_path)
    with sa.create_engine(other, poolclass=sa.pool.NullPool).begin() as connection:
        connection.exec_driver_sql("CREATE SEQUENCE kept_by_hand")
    third = project_on(other, tmp_path / "project", history_folder)  # same cache
    third.upgrade()
    assert [kind for kind, _ in where] == ["take"], where
    assert _stored_fingerprint(third.url, head) is None


def test_a_side_by_side_build_leaves_a_callers_pool_as_it_found_it(backend: str, fresh_db: str, history_folder: Path,
                                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given an engine with a pool, the build's extra connections come from it and go back to it: the session
    setting that makes their commits not wait for the disk is put back first, so the application's later
    transactions on those connections are durable again."""
    _side_by_side_only(backend, monkeypatch)
    engine = sa.create_engine(fresh_db, pool_size=6)
    try:
        cycle = project_on(fresh_db, tmp_path / "pooled", history_folder)
        schemashift.upgrade(engine, config=cycle.directory / "schemashift.toml", out=cycle.output.append)
        assert any(line.startswith("applied 5 migrations as one fresh build") for line in cycle.output)
        held = [engine.connect() for _ in range(6)]
        try:
            assert {c.exec_driver_sql("SELECT current_setting('synchronous_commit')").scalar() for c in held} == {"on"}
        finally:
            for connection in held:
                connection.close()
    finally:
        engine.dispose()


def test_a_killed_side_by_side_build_is_taken_back_and_built_again(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _side_by_side_only(backend, monkeypatch)
    cycle = project_on(fresh_db, tmp_path / "killed", history_folder)
    head = cycle.project.history().head
    _killed_upgrade(cycle, 2)

    assert fetch_rows(fresh_db, "SELECT revision, state FROM schemashift_version") == [(head, "building")]
    assert 0 < len(set(inspect_schema(fresh_db)) - {"schemashift_version", "schemashift_version_history"}) < 3
    report = api.status(cycle.project)
    assert report.exit_code == 2 and report.current is None
    assert any("fresh build" in problem and "`schemashift upgrade`" in problem for problem in report.problems)

    cycle.upgrade()
    assert any("did not finish: taking back" in line for line in cycle.output), cycle.output
    assert any(line.startswith("applied 5 migrations as one fresh build") for line in cycle.output), cycle.output
    assert fetch_rows(fresh_db, "SELECT state, count(*) FROM schemashift_version GROUP BY state") == [("applied", 5)]
    assert api.status(cycle.project).exit_code == 0
    assert cycle.diff() == []


def test_a_killed_build_whose_tables_got_rows_is_refused(backend: str, fresh_db: str, history_folder: Path,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from schemashift.errors import DatabaseStateError

    _side_by_side_only(backend, monkeypatch)
    cycle = project_on(fresh_db, tmp_path / "rows", history_folder)
    _killed_upgrade(cycle, 2)
    assert "users" in inspect_schema(fresh_db)
    cycle.run("INSERT INTO users (id, full_name) VALUES (1, 'early')")

    with pytest.raises(DatabaseStateError, match=r"interrupted fresh build .* users holds rows; `schemashift repair`"
                       ) as refused:
        cycle.upgrade()
    assert "\n" not in str(refused.value)
    assert cycle.rows("SELECT id, full_name FROM users") == [(1, "early")]
    assert api.status(cycle.project).exit_code == 2
    with pytest.raises(DatabaseStateError, match="holds rows"):
        api.repair(cycle.project, action="undo", out=cycle.output.append)

    api.repair(cycle.project, action="continue", out=cycle.output.append)  # finishes the build, keeps the row
    assert cycle.output[-1] == f"Repaired: the fresh build finished; the database is at {cycle.project.history().head}."
    assert cycle.rows("SELECT id, full_name FROM users") == [(1, "early")]
    assert fetch_rows(fresh_db, "SELECT state, count(*) FROM schemashift_version GROUP BY state") == [("applied", 5)]
    assert api.status(cycle.project).exit_code == 0
    assert cycle.diff() == []


def test_repair_undo_takes_an_empty_interrupted_build_back(backend: str, fresh_db: str, history_folder: Path,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _side_by_side_only(backend, monkeypatch)
    cycle = project_on(fresh_db, tmp_path / "undo", history_folder)
    _killed_upgrade(cycle, 1)
    api.repair(cycle.project, action="undo", out=cycle.output.append)
    assert inspect_schema(fresh_db) == {}  # schemashift's own tables left out
    assert fetch_rows(fresh_db, "SELECT count(*) FROM schemashift_version") == [(0,)]
    assert api.status(cycle.project).current is None


# -- a cold side-by-side build compiles while it creates tables (PostgreSQL) --------------


def _pipelined(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Note, for each fresh build run, whether it came still to compile (`FreshBuild.pending`)."""
    from schemashift.runtime import fresh

    seen: list[bool] = []
    real = fresh.run_fresh

    def spy(connection: sa.Connection, recorder: Any, build: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(build.pending is not None)
        real(connection, recorder, build, *args, **kwargs)

    monkeypatch.setattr(fresh, "run_fresh", spy)
    return seen


def _kept_plan(cycle: Cycle, backend: str) -> Any:
    """The plan for `backend` kept in `cycle`'s cache for its whole chain (`cached_build`), as data."""
    from schemashift.dialects import get_dialect
    from schemashift.planning.fresh import cached_build

    history = cycle.project.history()
    build = cached_build(history, get_dialect(backend), history.upgrade_path(None, history.head))
    if not build:
        return build
    return (build.target, build.operations, [(s.operation, s.sql, s.own_transaction) for s in build.statements],
            build.after)


def _after_first_commit(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An event set once a lane of a side-by-side build committed its first transaction."""
    import threading

    from schemashift.runtime import fresh

    committed = threading.Event()
    real = fresh._run_group

    def run_group(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        committed.set()

    monkeypatch.setattr(fresh, "_run_group", run_group)
    return committed


def test_a_pipelined_build_equals_step_by_step_and_keeps_the_plan(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold build compiled as it runs (its last table compiles only once a lane committed) gives the database
    the step-by-step run gives and keeps the plan planning gives (`plan_fresh`, not pipelined); the next build of
    the same migrations is warm."""
    from schemashift.dialects import get_dialect
    from schemashift.planning.fresh import plan_fresh

    seen = _compile_held_at_tags(backend, monkeypatch)  # compiled-first would wait there for nothing
    fresh = project_on(fresh_db, tmp_path / "fresh", history_folder)
    stepped = project_on(_second_db(backend, request, tmp_path), tmp_path / "stepped", history_folder)
    fresh.upgrade()
    api.upgrade(stepped.project, out=stepped.output.append, step_by_step=True)
    assert seen == [True]
    assert any(line.startswith("applied 5 migrations as one fresh build") for line in fresh.output), fresh.output
    assert full_inspection(fresh.url) == full_inspection(stepped.url)
    assert fetch_rows(fresh.url, "SELECT state, count(*) FROM schemashift_version GROUP BY state") == [("applied", 5)]
    assert api.status(fresh.project).exit_code == 0 and fresh.diff() == []

    planned = project_on("sqlite:///unused.db", tmp_path / "planned", history_folder)
    history = planned.project.history()
    assert plan_fresh(history, get_dialect(backend), history.head) is not None
    kept = _kept_plan(fresh, backend)
    assert kept and kept == _kept_plan(planned, backend)

    again = project_on(_second_db(backend, request, tmp_path), tmp_path / "fresh", history_folder)  # same cache
    again.upgrade()
    assert seen == [True, False]
    assert full_inspection(again.url) == full_inspection(stepped.url)


def test_a_statement_found_outside_transactions_mid_build_goes_step_by_step(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A statement that cannot run in a transaction, compiled once the build created something, stops the
    build: what it created is taken back, its marker removed, and the upgrade runs step by step as if the
    build had been refused when planned (which is what the kept plan then says)."""
    from schemashift.dialects import get_dialect
    from schemashift.runtime import fresh

    _side_by_side_only(backend, monkeypatch)
    seen = _pipelined(monkeypatch)
    committed = _after_first_commit(monkeypatch)
    dialect = type(get_dialect(backend))
    real = dialect.runs_in_transaction

    def runs_in_transaction(self: Any, sql: str) -> bool:
        if "CREATE TABLE tags" in sql:
            assert committed.wait(30)  # found mid-build: something was created before
            return False
        return real(self, sql)

    monkeypatch.setattr(dialect, "runs_in_transaction", runs_in_transaction)
    taken_back: list[int] = []
    real_undo = fresh.undo

    def undo(connection: sa.Connection, build: Any, done: list[Any]) -> list[str]:
        taken_back.append(len(done))
        left = real_undo(connection, build, done)
        assert left == []
        return left

    monkeypatch.setattr(fresh, "undo", undo)
    cycle = project_on(fresh_db, tmp_path / "refused", history_folder)
    cycle.upgrade()
    assert seen == [True] and taken_back and taken_back[0] > 0
    assert not any("fresh build" in line for line in cycle.output), cycle.output
    assert {row[0] for row in fetch_rows(fresh_db, "SELECT error FROM schemashift_version_history")} == {None}
    assert fetch_rows(fresh_db, "SELECT state, count(*) FROM schemashift_version GROUP BY state") == [("applied", 5)]
    assert api.status(cycle.project).exit_code == 0 and cycle.diff() == []
    assert _kept_plan(cycle, backend) is False  # the next upgrade goes step by step at once


def test_a_failing_statement_mid_pipelined_build_leaves_the_database_empty(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from schemashift.errors import ExecutionError

    _side_by_side_only(backend, monkeypatch)
    seen = _pipelined(monkeypatch)
    cycle = project_on(fresh_db, tmp_path / "fail", history_folder)
    cycle.run("CREATE VIEW tags AS SELECT 1 AS x")  # a clash the emptiness check does not see
    with pytest.raises(ExecutionError, match=r"fresh build .* failed at: CREATE TABLE tags.*empty again"):
        api.upgrade(cycle.project, out=cycle.output.append)
    assert seen == [True]
    assert set(inspect_schema(cycle.url)) - {"tags"} == set()
    assert fetch_rows(cycle.url, "SELECT count(*) FROM schemashift_version")[0][0] == 0


def test_a_compile_error_mid_pipelined_build_leaves_the_database_empty(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compile's own error, raised as when planning raises it, once what the build created is taken back."""
    from schemashift.errors import SchemashiftError

    seen = _compile_held_at_tags(backend, monkeypatch, SchemashiftError("cannot compile tags"))
    cycle = project_on(fresh_db, tmp_path / "broken", history_folder)
    with pytest.raises(SchemashiftError, match=r"^cannot compile tags$"):
        api.upgrade(cycle.project, out=cycle.output.append)
    assert seen == [True]
    assert inspect_schema(cycle.url) == {}  # schemashift's own tables left out
    assert fetch_rows(cycle.url, "SELECT count(*) FROM schemashift_version")[0][0] == 0
    assert _kept_plan(cycle, backend) is None  # nothing kept: planned anew next time


def test_a_build_killed_after_finding_a_statement_outside_transactions_is_taken_back(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between finding the statement (the kept plan then says "step by step") and taking back what it
    created: the next upgrade still takes the build back (planned anew) and runs step by step."""
    import os

    from schemashift.dialects import get_dialect

    _side_by_side_only(backend, monkeypatch)
    committed = _after_first_commit(monkeypatch)
    dialect = type(get_dialect(backend))
    real = dialect.runs_in_transaction
    parent = os.getpid()

    def runs_in_transaction(self: Any, sql: str) -> bool:
        if "CREATE TABLE tags" in sql:
            assert os.getpid() == parent or committed.wait(30)
            return False
        return real(self, sql)

    monkeypatch.setattr(dialect, "runs_in_transaction", runs_in_transaction)
    cycle = project_on(fresh_db, tmp_path / "killed", history_folder)
    _killed_before_taking_back(cycle, monkeypatch)
    assert _kept_plan(cycle, backend) is False

    cycle.upgrade()
    assert any("did not finish: taking back" in line for line in cycle.output), cycle.output
    assert not any("as one fresh build" in line for line in cycle.output), cycle.output
    assert fetch_rows(fresh_db, "SELECT state, count(*) FROM schemashift_version GROUP BY state") == [("applied", 5)]
    assert api.status(cycle.project).exit_code == 0 and cycle.diff() == []


def test_an_unexpected_error_in_a_lane_fails_the_pipelined_build(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error other than the database's in a lane (a thread of its own) fails the build as a failing statement
    does: taken back, never recorded as built with a table missing."""
    from schemashift.errors import ExecutionError
    from schemashift.runtime import fresh

    _side_by_side_only(backend, monkeypatch)
    seen = _pipelined(monkeypatch)
    real = fresh._run_group

    def run_group(connection: sa.Connection, build: Any, group: Any, *args: Any, **kwargs: Any) -> None:
        if any(getattr(getattr(operation, "table", None), "name", None) == "tags" for operation in group.operations):
            raise RuntimeError("lane broke")
        real(connection, build, group, *args, **kwargs)

    monkeypatch.setattr(fresh, "_run_group", run_group)
    cycle = project_on(fresh_db, tmp_path / "lane", history_folder)
    with pytest.raises(ExecutionError, match=r"fresh build .* failed: lane broke; the database is empty again"):
        api.upgrade(cycle.project, out=cycle.output.append)
    assert seen == [True]
    assert inspect_schema(cycle.url) == {}  # schemashift's own tables left out
    assert fetch_rows(cycle.url, "SELECT count(*) FROM schemashift_version")[0][0] == 0


class _Halt(BaseException):
    """Not an `Exception`: what a compile might raise all the same."""


def test_a_compile_raising_a_base_exception_mid_pipelined_build_leaves_the_database_empty(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Raised on the feed's thread, it is raised by the build once taken back: the lanes never take the end of
    the feed for the end of the build."""
    seen = _compile_held_at_tags(backend, monkeypatch, _Halt("halted"))
    cycle = project_on(fresh_db, tmp_path / "halted", history_folder)
    with pytest.raises(_Halt):
        api.upgrade(cycle.project, out=cycle.output.append)
    assert seen == [True]
    assert inspect_schema(cycle.url) == {}  # schemashift's own tables left out
    assert fetch_rows(cycle.url, "SELECT count(*) FROM schemashift_version")[0][0] == 0
    assert _kept_plan(cycle, backend) is None


def test_repair_continue_finishes_a_killed_build_with_a_statement_outside_transactions(
        backend: str, fresh_db: str, history_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed once it found a statement that cannot run in a transaction: `repair continue` runs that one
    outside the transaction (PostgreSQL refuses it inside) and finishes the build."""
    import os

    from schemashift.dialects import get_dialect

    _side_by_side_only(backend, monkeypatch)
    committed = _after_first_commit(monkeypatch)
    dialect = type(get_dialect(backend))
    real = dialect.compile
    parent = os.getpid()

    def compile_(self: Any, operation: Any, before: Any, after: Any) -> list[str]:
        sqls = real(self, operation, before, after)
        if any(sql.startswith("CREATE INDEX ix_tags_purchase") for sql in sqls):
            assert os.getpid() == parent or committed.wait(30)
        return [sql.replace("CREATE INDEX ix_tags_purchase", "CREATE INDEX CONCURRENTLY ix_tags_purchase")
                for sql in sqls]

    monkeypatch.setattr(dialect, "compile", compile_)
    cycle = project_on(fresh_db, tmp_path / "apart", history_folder)
    head = _killed_before_taking_back(cycle, monkeypatch)

    api.repair(cycle.project, action="continue", out=cycle.output.append)
    assert cycle.output[-1] == f"Repaired: the fresh build finished; the database is at {head}."
    assert fetch_rows(fresh_db, "SELECT state, count(*) FROM schemashift_version GROUP BY state") == [("applied", 5)]
    assert api.status(cycle.project).exit_code == 0 and cycle.diff() == []


@pytest.mark.parametrize("shared", ["enum", "schema"])
def test_tables_sharing_an_enum_or_schema_wait_for_the_one_that_creates_it(
        backend: str, fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: str) -> None:
    """The first table to use a native enum, or in a schema, creates that type or schema: the others that use
    it (no foreign key between them) join a later wave, never a lane of the same wave that may run before it is
    committed."""
    import time

    from schemashift.runtime import fresh

    _side_by_side_only(backend, monkeypatch)
    real = fresh._run_group
    creates = "CREATE TYPE" if shared == "enum" else "CREATE SCHEMA"

    def run_group(connection: sa.Connection, build: Any, group: Any, *args: Any, **kwargs: Any) -> None:
        if any(creates in (statement.sql or "") for statement in group.statements):
            time.sleep(0.5)  # the creating transaction commits last in its wave
        real(connection, build, group, *args, **kwargs)

    monkeypatch.setattr(fresh, "_run_group", run_group)

    def models(step: int) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table("base_one", metadata, sa.Column("id", sa.Integer, primary_key=True))
        if step >= 2:
            for name in ("pick_a", "pick_b", "pick_c"):
                if shared == "enum":
                    sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True),
                             sa.Column("kind", sa.Enum("x", "y", name="kind_t")))
                else:
                    sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True), schema="ss_lanes")
        return metadata

    cycle = Cycle(tmp_path / shared, fresh_db)
    cycle.generate(models(1), "v1")
    cycle.generate(models(2), "v2")
    cycle.use(models(2))
    cycle.upgrade()
    assert any(line.startswith("applied 2 migrations as one fresh build") for line in cycle.output), cycle.output
    assert api.status(cycle.project).exit_code == 0 and cycle.diff() == []


def test_an_unexpected_error_in_an_autocommitted_lane_fails_the_build(
        backend: str, fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where each statement commits itself (MariaDB), an error other than the database's on a lane's thread
    fails the build as a failing statement does: never recorded as built with a table missing."""
    from schemashift.dialects import get_dialect
    from schemashift.errors import ExecutionError
    from schemashift.runtime import fresh

    if get_dialect(backend).transactional_ddl:
        pytest.skip("lanes committing each statement only where DDL commits itself")
    real = fresh._execute

    def execute(connection: sa.Connection, statement: Any) -> None:
        if "pick_b" in (statement.sql or "") and "CREATE TABLE" in (statement.sql or ""):
            raise RuntimeError("lane broke")
        real(connection, statement)

    monkeypatch.setattr(fresh, "_execute", execute)

    def models(step: int) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table("base_one", metadata, sa.Column("id", sa.Integer, primary_key=True))
        if step >= 2:
            for name in ("pick_a", "pick_b", "pick_c"):
                sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True))
        return metadata

    cycle = Cycle(tmp_path / "lanes", fresh_db)
    cycle.generate(models(1), "v1")
    cycle.generate(models(2), "v2")
    cycle.use(models(2))
    with pytest.raises(ExecutionError, match=r"fresh build .* failed at: CREATE TABLE .*pick_b.*lane broke"):
        api.upgrade(cycle.project, out=cycle.output.append)
    assert inspect_schema(cycle.url) == {}  # schemashift's own tables left out
    assert fetch_rows(cycle.url, "SELECT count(*) FROM schemashift_version")[0][0] == 0


def test_lanes_creating_foreign_keys_in_crossed_orders_do_not_fail_on_a_deadlock(
        backend: str, fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating a foreign key locks the table it points at until the commit: two lanes whose chunks reach two
    such tables in crossed orders deadlock (``kid_1, kid_2`` and ``kid_3, kid_4``), and the one PostgreSQL
    stops runs its chunk again."""
    from schemashift.dialects import get_dialect
    from schemashift.runtime import fresh

    _side_by_side_only(backend, monkeypatch)
    monkeypatch.setattr(fresh, "LANE_CHUNK", 2)
    monkeypatch.setattr(fresh, "WORKERS", 2)
    dialect = type(get_dialect(backend))
    real = dialect.compile

    def compile_(self: Any, operation: Any, before: Any, after: Any) -> list[str]:
        sqls = real(self, operation, before, after)
        if getattr(getattr(operation, "table", None), "name", None) in ("kid_1", "kid_3"):
            sqls[0] += ";\nSELECT pg_sleep(0.5)"  # each lane holds its first parent's lock while the other takes its
        return sqls

    monkeypatch.setattr(dialect, "compile", compile_)

    def models(step: int) -> sa.MetaData:
        metadata = sa.MetaData()
        for name in ("parent_1", "parent_2"):
            sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True))
        if step >= 2:
            for name, parent in (("kid_1", "parent_1"), ("kid_2", "parent_2"), ("kid_3", "parent_2"),
                                 ("kid_4", "parent_1"), ("kid_5", "parent_1"), ("kid_6", "parent_2")):
                sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True),
                         sa.Column("parent_id", sa.Integer, sa.ForeignKey(f"{parent}.id")))
        return metadata

    cycle = Cycle(tmp_path / "crossed", fresh_db)
    cycle.generate(models(1), "v1")
    cycle.generate(models(2), "v2")
    cycle.use(models(2))
    cycle.upgrade()
    assert any(line.startswith("applied 2 migrations as one fresh build") for line in cycle.output), cycle.output
    assert api.status(cycle.project).exit_code == 0 and cycle.diff() == []


def _compile_held_at_tags(backend: str, monkeypatch: pytest.MonkeyPatch,
                          error: BaseException | None = None) -> list[bool]:
    """A pipelined build (`_pipelined`: what it saw) whose compile reaches table tags only once a lane committed
    its first chunk, and raises `error` there when given."""
    from schemashift.dialects import get_dialect

    _side_by_side_only(backend, monkeypatch)
    seen = _pipelined(monkeypatch)
    committed = _after_first_commit(monkeypatch)
    dialect = type(get_dialect(backend))
    real = dialect.compile

    def compile_(self: Any, operation: Any, before: Any, after: Any) -> list[str]:
        if getattr(getattr(operation, "table", None), "name", None) == "tags":
            assert committed.wait(30)
            if error is not None:
                raise error
        return real(self, operation, before, after)

    monkeypatch.setattr(dialect, "compile", compile_)
    return seen


def _killed_before_taking_back(cycle: Cycle, monkeypatch: pytest.MonkeyPatch) -> str:
    """Upgrade `cycle` in a child SIGKILLed when its build would take back what it created (`_killed_upgrade`);
    the head, whose marker row the database then holds alone."""
    import os
    import signal

    from schemashift.runtime import fresh

    def undo(*args: Any) -> list[str]:
        os.kill(os.getpid(), signal.SIGKILL)  # the child, before taking anything back
        return []

    with monkeypatch.context() as child:
        child.setattr(fresh, "undo", undo)
        _killed_upgrade(cycle, 1000)
    head = cycle.project.history().head
    assert head is not None
    assert fetch_rows(cycle.url, "SELECT revision, state FROM schemashift_version") == [(head, "building")]
    return head
