"""The fast paths give the same answers as the slow ones.

Manifest and lazy loading vs a full load; cached replayed states vs a replay;
plans built from cached states vs plans from a full replay; fast `status` and
no-op `upgrade` vs the full commands on SQLite, PostgreSQL and MariaDB (clean,
drifted, pending, partial, edited file, stale manifest: the fast path answers
only when clean and otherwise leaves it to the full path); the catalog
fingerprint changes exactly when the catalog does; offline `--sql --from`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import execute, write_project

from schemashift import api, cli
from schemashift.history import cache
from schemashift.runtime import fast
from schemashift.history import manifest
from schemashift.history import loader
from schemashift.dialects import get_dialect
from schemashift.errors import MigrationError
from schemashift.runtime.fingerprint import fingerprint
from schemashift.migration import (
    AddColumn, AddConstraint, AlterColumn, Column, CreateIndex, CreateTable, DropColumn, DropIndex, DropTable,
    ForeignKey, Index, PrimaryKey, RenameColumn, RenameTable, RunPython, Table, Type, UniqueConstraint,
)
from schemashift.planning.plan import build_plan, down_step, states_along, up_step
from schemashift.history.chain import History
from schemashift.history.writer import write_migration

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- histories


def _table(name: str) -> Table:
    return Table(name, columns=(Column("id", Type("integer"), nullable=False), Column("label", Type("string", length=40))),
                 primary_key=PrimaryKey(("id",)))


def random_history(folder: Path, seed: int, length: int) -> History:
    """`length` migrations of mixed operations (seeded), written with `write_migration`."""
    rng = random.Random(seed)
    tables: dict[str, list[str]] = {}
    parent: str | None = None
    for number in range(length):
        operations: list[Any] = []
        choice = rng.random()
        if not tables or choice < 0.25:
            name = f"t{number}"
            operations.append(CreateTable(_table(name)))
            tables[name] = ["id", "label"]
        else:
            name = rng.choice(sorted(tables))
            columns = tables[name]
            if choice < 0.45:
                column = f"c{number}"
                operations.append(AddColumn(name, Column(column, Type("integer"))))
                columns.append(column)
            elif choice < 0.55 and len(columns) > 2:
                operations.append(DropColumn(name, columns.pop()))
            elif choice < 0.65 and len(columns) > 2:
                old = columns[-1]
                columns[-1] = f"r{number}"
                operations.append(RenameColumn(name, old, columns[-1]))
            elif choice < 0.75:
                operations.append(CreateIndex(name, Index(f"ix_{name}_{number}", ("label",))))
            elif choice < 0.8:
                operations.append(AlterColumn(name, "label", Column("label", Type("string", length=80 + number))))
            elif choice < 0.85 and len(tables) > 1:
                new = f"{name}_n{number}"
                operations.append(RenameTable(name, new))
                tables[new] = tables.pop(name)
            elif choice < 0.9 and len(tables) > 1:
                operations.append(DropTable(name))
                del tables[name]
            else:
                operations.append(AddConstraint(name, UniqueConstraint(("label",), f"uq_{name}_{number}")))
        parent = write_migration(folder, f"step {number}", operations, parent).revision
    return History.load(folder)


def project_history(folder: Path, root: Path) -> History:
    """The history as the CLI loads it (lazily, with the cache under `root`)."""
    return manifest.load_history(folder, root, create_manifest=True)


# --------------------------------------------------------------------------- manifest


def test_manifest_round_trip_and_damage(tmp_path: Path) -> None:
    entries = [manifest.Entry("0001_a.py", "aaaa", None, "1" * 64), manifest.Entry("0002_b c.py", "bbbb", "aaaa", "2" * 64)]
    text = manifest.render(entries)
    assert text.splitlines()[0].startswith("h1:") and manifest.parse(text) == entries
    with pytest.raises(ValueError, match="h1"):
        manifest.parse(text.replace("bbbb", "cccc"))
    broken = manifest.render([entries[1], entries[0]])
    with pytest.raises(ValueError, match="does not follow"):
        manifest.parse(broken)


def test_write_migration_keeps_an_existing_manifest_and_creates_none(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    first = write_migration(folder, "create", [CreateTable(_table("users"))], None)
    assert not (folder / manifest.MANIFEST_NAME).exists()  # low-level writes do not add files
    manifest.write(folder, manifest.entries_of(History.load(folder).chain))
    second = write_migration(folder, "add", [AddColumn("users", Column("email", Type("string", length=50)))],
                             first.revision)
    assert manifest.read(folder) == manifest.entries_of(History.load(folder).chain)
    assert manifest.read(folder)[-1].revision == second.revision
    (folder / manifest.MANIFEST_NAME).write_text("<<<<<<< HEAD\n")  # a merge conflict: rebuilt on the next write
    write_migration(folder, "more", [], second.revision)
    assert manifest.read(folder) == manifest.entries_of(History.load(folder).chain)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lazy_history_equals_full_load(tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "migrations"
    full = random_history(folder, seed, 25)
    cold = project_history(folder, tmp_path)
    assert cold.manifest_state == manifest.CREATED
    loads: list[Path] = []
    real = loader.load_migration
    monkeypatch.setattr(loader, "load_migration",
                        lambda path, code_cache=None: loads.append(Path(path)) or real(path, code_cache))
    warm = project_history(folder, tmp_path)
    assert warm.manifest_state == manifest.FRESH
    assert loads == []  # nothing imported: ids, parents, checksums and messages came from the index
    assert not any(m.loaded for m in warm.chain)
    for one, other in ((full, cold), (full, warm)):
        assert [(m.revision, m.parent, m.path, m.checksum, m.message) for m in one.chain] == \
               [(m.revision, m.parent, m.path, m.checksum, m.message) for m in other.chain]
    assert [m.operations for m in warm.chain] == [m.operations for m in full.chain]
    assert len(loads) == len(full)
    assert manifest.verified_entries(folder, tmp_path) == manifest.entries_of(full.chain)


def test_changes_to_the_folder_are_seen(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    full = random_history(folder, 7, 6)
    project_history(folder, tmp_path)
    target = full.chain[2].path
    original = target.read_bytes()
    stat = target.stat()
    # same size, same mtime, other content, right after indexing: the racy entry is re-hashed
    target.write_bytes(original.replace(b"step 2", b"step X"))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    edited = project_history(folder, tmp_path)
    assert edited.chain[2].message == "step X" and edited.chain[2].checksum != full.chain[2].checksum
    assert edited.manifest_state == manifest.STALE
    assert manifest.verified_entries(folder, tmp_path) is None
    assert any("was changed" in line for line in manifest.problems(folder, edited))
    target.write_bytes(original)  # restored (new mtime, same content): fresh again
    assert project_history(folder, tmp_path).manifest_state == manifest.FRESH
    assert manifest.verified_entries(folder, tmp_path) == manifest.entries_of(full.chain)
    extra = write_migration(folder, "extra", [], full.head)  # no manifest update without one? it exists: appended
    assert manifest.verified_entries(folder, tmp_path)[-1].revision == extra.revision
    extra.path.unlink()
    assert manifest.verified_entries(folder, tmp_path) is None
    assert any("not in the folder" in line for line in manifest.problems(folder, project_history(folder, tmp_path)))


def test_broken_new_file_fails_like_a_full_load(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    full = random_history(folder, 4, 3)
    project_history(folder, tmp_path)
    (folder / "0004_broken.py").write_text("revision = 'x'\nparent = None\noperations = [1/0]\n")
    with pytest.raises(MigrationError) as lazy:
        project_history(folder, tmp_path)
    with pytest.raises(MigrationError) as eager:
        History.load(folder)
    assert str(lazy.value) == str(eager.value)
    assert full.head


def test_lazy_migration_notices_a_file_changed_meanwhile(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    random_history(folder, 5, 3)
    project_history(folder, tmp_path)
    history = project_history(folder, tmp_path)
    path = history.chain[0].path
    path.write_text(path.read_text() + "\n# edited\n")
    with pytest.raises(MigrationError, match="changed while schemashift was running"):
        history.chain[0].operations


def test_a_stale_index_is_dropped_when_a_trusted_file_turns_out_changed(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the stat index ever trust a changed file (a clock or file system that moves neither mtime nor
    ctime), the import catches it and drops the index, so the next run hashes the files again instead of failing
    the same way."""
    monkeypatch.setattr(cache, "RACY_NS", 0)
    folder = tmp_path / "migrations"
    random_history(folder, 5, 3)
    project_history(folder, tmp_path)
    history = project_history(folder, tmp_path)  # trusted by the index now
    first = history.chain[0]
    assert not first.loaded
    path = first.path
    text = path.read_text()
    at = text.index("message = ") + len("message = ") + 1  # the first letter of the message
    path.write_text(text[:at] + ("x" if text[at] != "x" else "y") + text[at + 1:])  # same size
    index = cache.StatIndex.load(cache.folder_cache(tmp_path, folder))
    entry = index.entries[path.name]
    stat = path.stat()
    index.put(path.name, entry._replace(mtime_ns=stat.st_mtime_ns, ctime_ns=stat.st_ctime_ns))  # as if unmoved
    index.save()
    stale = project_history(folder, tmp_path)
    with pytest.raises(MigrationError, match="changed while schemashift was running"):
        stale.chain[0].operations
    again = project_history(folder, tmp_path)  # the next run reads the file anew
    assert again.chain[0].checksum != history.chain[0].checksum
    assert again.chain[0].operations == History.load(folder).chain[0].operations


# --------------------------------------------------------------------------- cached states


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_cached_states_equal_replay(tmp_path: Path, seed: int) -> None:
    folder = tmp_path / "migrations"
    full = random_history(folder, seed, 40)
    replayed = states_along(full)
    names: set[str | None] = set()
    for round_ in range(2):  # cold, then from the states stored on disk by a fresh process-like History
        history = project_history(folder, tmp_path)
        for revision in [None, *reversed(full.revisions)]:
            assert cache.state_at(history, revision) == replayed[revision], (round_, revision)
    history = project_history(folder, tmp_path)
    assert cache.state_at(history, full.head) == replayed[full.head]
    assert not any(m.loaded for m in history.chain)  # the head state came from the disk cache
    for revision in full.revisions:
        names |= replayed[revision].schema_names
    assert cache.schema_names_through(history, full.head) == names
    more = write_migration(folder, "more", [CreateTable(_table("late"))], full.head)
    (folder / "schemashift.head").unlink(missing_ok=True)  # the short history's head snapshot: the cache alone here
    grown = project_history(folder, tmp_path)
    assert cache.state_at(grown, more.revision) == replayed[full.head].with_table(_table("late"))
    assert [m.loaded for m in grown.chain] == [False] * len(full) + [True]  # replayed from the cached parent


def test_damaged_state_file_is_a_miss(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    full = random_history(folder, 21, 8)
    cache.state_at(project_history(folder, tmp_path), full.head)
    states = list((cache.folder_cache(tmp_path, folder)).glob("states-*/*.pickle"))
    assert states
    for path in states:
        path.write_bytes(b"not a pickle")
    assert cache.state_at(project_history(folder, tmp_path), full.head) == states_along(full)[full.head]


def _reference_plan(history: History, dialect: Any, current: str | None, target: str | None) -> list[str]:
    states = states_along(history)
    if history.index(target) >= history.index(current):
        steps = [up_step(dialect, m, states[m.parent]) for m in history.upgrade_path(current, target)]
    else:
        steps = [down_step(dialect, m, states[m.parent]) for m in history.downgrade_path(current, target)]
    return [s.describe() for step in steps for s in step.statements]


@pytest.mark.parametrize("dialect_name", ["sqlite", "postgresql", "mysql"])
def test_plans_from_cached_states_equal_plans_from_replay(tmp_path: Path, dialect_name: str) -> None:
    folder = tmp_path / "migrations"
    full = random_history(folder, 31, 30)
    dialect = get_dialect(dialect_name)
    revisions = [None, *full.revisions]
    for current, target in [(None, full.head), (revisions[10], full.head), (full.head, revisions[5]),
                            (revisions[20], None), (full.head, full.head), (revisions[3], revisions[25])]:
        history = project_history(folder, tmp_path)
        plan = build_plan(history, dialect, current, target)
        assert [s.describe() for step in plan.steps for s in step.statements] == \
               _reference_plan(full, dialect, current, target), (current, target)
        fresh = project_history(folder, tmp_path)  # the states a plan left on disk are those of a replay
        assert cache.state_at(fresh, target) == states_along(full)[target]


# --------------------------------------------------------------------------- fingerprint


def _drop_everything(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            metadata = sa.MetaData()
            metadata.reflect(conn)
            metadata.drop_all(conn)
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("DROP TYPE IF EXISTS mood")
                conn.exec_driver_sql("DROP FUNCTION IF EXISTS fp_twice(integer)")
                conn.exec_driver_sql("DROP AGGREGATE IF EXISTS fp_sum(integer)")
    finally:
        engine.dispose()


def _fingerprint(url: str) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                return fingerprint(cursor, conn.dialect.name, [None], ["schemashift_version", "schemashift_version_history"])
            finally:
                cursor.close()
    finally:
        engine.dispose()


def test_fingerprint_follows_the_catalog_only(db_url: str, backend: str) -> None:
    _drop_everything(db_url)
    execute(db_url, "CREATE TABLE fp_parent (id INTEGER PRIMARY KEY, code VARCHAR(10))",
            "CREATE TABLE fp_child (id INTEGER PRIMARY KEY, parent_id INTEGER, note VARCHAR(20))")
    seen = [_fingerprint(db_url)]
    assert _fingerprint(db_url) == seen[0]

    def unchanged(*statements: str) -> None:
        execute(db_url, *statements)
        assert _fingerprint(db_url) == seen[-1], statements

    def changed(*statements: str) -> None:
        execute(db_url, *statements)
        seen.append(_fingerprint(db_url))
        assert seen[-1] not in seen[:-1], statements

    unchanged("INSERT INTO fp_parent (id, code) VALUES (1, 'a')", "INSERT INTO fp_child (id, parent_id) VALUES (1, 1)")
    unchanged("CREATE TABLE schemashift_version (revision VARCHAR(20))", "CREATE TABLE _schemashift_backup_1 (x INTEGER)")
    unchanged("INSERT INTO schemashift_version (revision) VALUES ('abc')")
    changed("ALTER TABLE fp_child ADD COLUMN extra INTEGER")
    changed("CREATE INDEX ix_fp_child_note ON fp_child (note)")
    changed("CREATE UNIQUE INDEX uq_fp_parent_code ON fp_parent (code)")
    if backend != "sqlite":
        changed("ALTER TABLE fp_child ADD CONSTRAINT fk_fp_child FOREIGN KEY (parent_id) REFERENCES fp_parent (id)")
        changed("ALTER TABLE fp_child ADD CONSTRAINT ck_fp_note CHECK (note <> 'x')")
        changed("ALTER TABLE fp_child ALTER COLUMN note SET DEFAULT 'n'" if backend == "postgresql"
                else "ALTER TABLE fp_child ALTER note SET DEFAULT 'n'")
        changed("ALTER TABLE fp_child MODIFY note VARCHAR(30)" if backend == "mysql"
                else "ALTER TABLE fp_child ALTER COLUMN note TYPE VARCHAR(30)")
    if backend == "postgresql":
        changed("CREATE TYPE mood AS ENUM ('sad', 'ok')")
        changed("ALTER TYPE mood ADD VALUE 'happy'")
        changed("COMMENT ON COLUMN fp_child.note IS 'a note'")
        changed("CREATE FUNCTION fp_twice(a integer) RETURNS integer LANGUAGE sql AS 'SELECT a * 2'")
        for attribute in ("SECURITY DEFINER", "STRICT", "LEAKPROOF", "COST 7", "PARALLEL SAFE", "SET work_mem = '1MB'"):
            changed(f"ALTER FUNCTION fp_twice(integer) {attribute}")  # the drift check sees them all
        changed("DROP FUNCTION fp_twice(integer)",
                "CREATE FUNCTION fp_twice(a integer) RETURNS SETOF integer LANGUAGE sql AS 'SELECT a * 2'")
        changed("CREATE AGGREGATE fp_sum(integer) (SFUNC = int4pl, STYPE = integer)")  # no pg_get_functiondef
        changed("CREATE POLICY fp_own ON fp_child TO PUBLIC USING (true)")
        changed("DROP POLICY fp_own ON fp_child", "CREATE POLICY fp_own ON fp_child TO CURRENT_USER USING (true)")
    execute(db_url, "DROP INDEX ix_fp_child_note" + (" ON fp_child" if backend == "mysql" else ""))
    assert _fingerprint(db_url) not in seen[-1:]
    _drop_everything(db_url)


# --------------------------------------------------------------------------- fast status / upgrade

MODELS = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Owner(Base):
    __tablename__ = "owner"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(80), unique=True)

class Pet(Base):
    __tablename__ = "pet"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(40), index=True)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("owner.id"))
'''


class Runner:
    """The fast and the full answers of `status` and `upgrade` for one project."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = str(root / "schemashift.toml")

    def args(self, *argv: str) -> Any:
        return cli.parse_args(["--config", self.config, *argv])

    def fast_status(self, *options: str) -> list[str] | None:
        lines: list[str] = []
        return lines if fast.fast_status(self.args("status", *options), lines.append) == 0 else None

    def fast_upgrade(self) -> list[str] | None:
        lines: list[str] = []
        return lines if fast.fast_upgrade(self.args("upgrade"), lines.append) == 0 else None

    def project(self) -> api.Project:
        return api.open_project(self.config)

    def full_status(self) -> api.StatusReport:
        return api.status(self.project())

    def full_upgrade(self) -> list[str]:
        lines: list[str] = []
        api.upgrade(self.project(), yes=True, out=lines.append)
        return lines

    def agrees(self) -> None:
        """The fast answers exist and equal the full ones."""
        report = self.full_status()
        assert self.fast_status() == report.lines()
        assert json.loads("\n".join(self.fast_status("--json"))) == json.loads(json.dumps(report.as_dict(), default=str))
        noop = self.fast_upgrade()
        assert noop is not None and noop == self.full_upgrade()


def test_fast_status_and_upgrade_agree_with_the_full_path(db_url: str, backend: str, tmp_path: Path) -> None:
    _drop_everything(db_url)
    root = write_project(tmp_path / "proj", db_url, MODELS)
    run = Runner(root)
    migrations = root / "migrations"
    api.generate(run.project(), "create owner and pet", out=lambda line: None)
    assert (migrations / manifest.MANIFEST_NAME).exists()
    assert run.fast_status() is None and run.fast_upgrade() is None  # nothing applied yet
    run.full_upgrade()
    run.agrees()
    head = run.full_status().head

    execute(db_url, "INSERT INTO owner (id, email) VALUES (1, 'a@example.com')")  # data: still clean
    run.agrees()

    execute(db_url, "CREATE INDEX ix_drift ON pet (name, id)")  # drift: only the full path answers
    assert run.fast_status() is None
    report = run.full_status()
    assert report.schema_matches is False and any("ix_drift" in d for d in report.differences)
    assert run.fast_upgrade() is not None  # a no-op upgrade does not look at drift
    execute(db_url, "DROP INDEX ix_drift" + (" ON pet" if backend == "mysql" else ""))
    run.agrees()

    version = "schemashift_version"
    execute(db_url, f"UPDATE {version} SET fingerprint = NULL")  # no stored fingerprint: the full status stores it
    assert run.fast_status() is None
    assert run.full_status().schema_matches is True
    run.agrees()

    execute(db_url, f"UPDATE {version} SET state = 'failed' WHERE revision = '{head}'")  # partial
    assert run.fast_status() is None and run.fast_upgrade() is None
    assert any("PARTLY" in p for p in run.full_status().problems)
    execute(db_url, f"UPDATE {version} SET state = 'applied' WHERE revision = '{head}'")
    run.agrees()

    path = next(migrations.glob("0001_*.py"))  # an edited applied file
    original = path.read_bytes()
    path.write_bytes(original + b"\n# edited\n")
    assert run.fast_status() is None and run.fast_upgrade() is None
    assert any("edited after it was applied" in p for p in run.full_status().problems)
    path.write_bytes(original)
    run.agrees()

    extra = write_migration(migrations, "add nickname", [AddColumn("pet", Column("nickname", Type("string", length=30)))],
                            head)  # pending
    assert run.fast_status() is None and run.fast_upgrade() is None
    assert run.full_status().pending == [extra.revision]
    run.full_upgrade()
    run.agrees()

    sum_path = migrations / manifest.MANIFEST_NAME  # a stale manifest: the full path runs and says so
    text = sum_path.read_text()
    sum_path.write_text(manifest.render(manifest.parse(text)[:-1]))
    assert run.fast_status() is None and run.fast_upgrade() is None
    result = subprocess.run([sys.executable, "-m", "schemashift", "--config", run.config, "status"], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "manifest out of date" in result.stderr and "Pending: 0" in result.stdout
    assert cli.main(["--config", run.config, "manifest", "--check"]) == 1
    assert cli.main(["--config", run.config, "manifest"]) == 0
    assert cli.main(["--config", run.config, "manifest", "--check"]) == 0 and sum_path.read_text() == text
    run.agrees()
    _drop_everything(db_url)


def test_fast_upgrade_of_an_empty_database_hashes_no_file(db_url: str, backend: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty database is the full path's (a fresh build reads the files anyway): the fast `upgrade` asks the
    database first and checks the folder against the manifest only once revisions are applied."""
    _drop_everything(db_url)
    root = write_project(tmp_path / "proj", db_url, MODELS)
    run = Runner(root)
    api.generate(run.project(), "create owner and pet", out=lambda line: None)
    real, checked = manifest.verified_summary, []

    def verified(*args: Any, **kwargs: Any) -> Any:
        checked.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(manifest, "verified_summary", verified)
    assert run.fast_upgrade() is None and checked == []
    run.full_upgrade()
    assert run.fast_upgrade() is not None and len(checked) == 1


def test_fast_status_imports_no_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    root = write_project(tmp_path / "proj", url, MODELS)
    run = Runner(root)
    api.generate(run.project(), "create", out=lambda line: None)
    run.full_upgrade()
    code = textwrap.dedent(f"""
        import sys
        from schemashift import cli
        for command in ("status", "upgrade"):
            assert cli.main(["--config", {run.config!r}, command]) == 0
        print("sqlalchemy loaded:", "sqlalchemy" in sys.modules, [m for m in sys.modules if m.startswith("_schemashift_migration")])
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Live schema matches the migrations." in result.stdout and "Nothing to do" in result.stdout
    assert "sqlalchemy loaded: False []" in result.stdout


def test_unusual_urls_take_the_full_path() -> None:
    assert fast.parse_url("postgresql://u@h/db") is None  # another driver than the full path would load
    assert fast.parse_url("oracle+cx_oracle://u:p@h/db") is None
    assert fast.parse_url("postgresql+psycopg://u@h/db?host=a&host=b") is None
    target = fast.parse_url("postgresql+psycopg://us%40r:p%40ss@[::1]:5433/my%20db?sslmode=disable")
    assert target is not None and (target.user, target.password, target.host, target.port, target.database) == \
        ("us@r", "p@ss", "::1", 5433, "my db") and target.query == {"sslmode": "disable"}
    with pytest.raises(ValueError):
        fast.connect(fast.parse_url("sqlite://"))  # in memory: nothing to read


# --------------------------------------------------------------------------- offline --sql --from


def test_offline_sql_from_needs_no_database(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", f"sqlite:///{tmp_path / 'empty.db'}", MODELS)
    run = Runner(root)
    project = run.project()
    api.generate(project, "create", out=lambda line: None)
    more = write_migration(root / "migrations", "more", [AddColumn("pet", Column("age", Type("integer")))],
                           run.project().history().head)
    online: list[str] = []
    api.upgrade(run.project(), sql=True, out=online.append)  # reads the (empty) database first
    offline: list[str] = []
    absent = tmp_path / "never.db"
    api.upgrade(api.open_project(run.config, url=f"sqlite:///{absent}"), sql=True, from_revision="base",
                out=offline.append)
    assert offline == online and not absent.exists()
    first = run.project().history().chain[0].revision
    tail: list[str] = []
    api.upgrade(api.open_project(run.config, url="postgresql+psycopg://nobody@127.0.0.1:1/none"), sql=True,
                from_revision=first, out=tail.append)
    text = "\n".join(tail)
    assert f"{first} -> {more.revision}" in text and "CREATE TABLE" not in text and "ADD COLUMN age" in text
    with pytest.raises(Exception, match="--from"):
        api.upgrade(run.project(), from_revision="base")


def test_data_migrations_survive_lazy_loading(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    source = textwrap.dedent('''
        from schemashift.migration import *

        revision = "dddd00000001"
        parent = None
        message = "data"


        def forward(ctx):
            pass


        operations = [RunPython(forward)]
    ''')
    folder.mkdir()
    (folder / "0001_data.py").write_text(source)
    project_history(folder, tmp_path)
    history = project_history(folder, tmp_path)
    step = history.chain[0].operations[0]
    assert isinstance(step, RunPython) and step.forward.__name__ == "forward"


def test_drift_after_the_full_status_checked_is_not_stored_as_clean(db_url: str, backend: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The full `status` reads the catalogue fingerprint before its drift check: a change another session makes
    after the check is not stored as clean, so the fast path does not answer and the next `status` reports it."""
    from schemashift.services import status as status_service

    _drop_everything(db_url)
    root = write_project(tmp_path / "proj", db_url, MODELS)
    run = Runner(root)
    api.generate(run.project(), "create owner and pet", out=lambda line: None)
    run.full_upgrade()
    execute(db_url, "UPDATE schemashift_version SET fingerprint = NULL")  # the full status stores it
    real = status_service.live_operations

    def checked_then_changed(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        args[1].commit()  # the check's reading ends (MariaDB would make the index wait for it)
        execute(db_url, "CREATE INDEX ix_late ON pet (name, id)")
        return found

    monkeypatch.setattr(status_service, "live_operations", checked_then_changed)
    assert run.full_status().schema_matches is True  # what it checked was clean
    monkeypatch.undo()
    assert run.fast_status() is None
    report = run.full_status()
    assert report.schema_matches is False and any("ix_late" in d for d in report.differences)
    _drop_everything(db_url)
