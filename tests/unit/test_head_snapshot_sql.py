"""The head snapshot's compiled SQL (`Snapshot.compiled`, `snapshot.compiled_for`): per database, exactly what a fresh
build compiles (`compile_in_order`), stored only when every statement is plain and runs in a transaction, and used by
a clean checkout's build (nothing compiled) only when stamped by this code and SQLAlchemy (`cache.source_key`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from schemashift.config import load_config
from schemashift.dialects import compiling, get_dialect, run_time_dialects
from schemashift.history import cache, manifest, snapshot
from schemashift.history.chain import History
from schemashift.history.writer import write_migration
from schemashift.migration import AddColumn, Column, CreateIndex, CreateTable, Index, PrimaryKey, Table, Type
from schemashift.model.schema import Schema
from schemashift.operations import Operation
from schemashift.operations.statement import LockRetry
from schemashift.planning import fresh
from schemashift.planning.fresh import FreshBuild, Pending, cached_build, plan_fresh

NAMES = ("sqlite", "postgresql", "mysql", "mariadb")
DIALECTS = [get_dialect(name) for name in NAMES]


def users(name: str = "users") -> CreateTable:
    return CreateTable(Table(name, columns=(Column("id", Type("integer"), nullable=False),
                                            Column("email", Type("string", length=80))),
                             primary_key=PrimaryKey(("id",))))


STEPS: list[tuple[str, list[Operation]]] = [
    ("users", [users()]),
    ("name", [AddColumn("users", Column("name", Type("string", length=50)))]),
    ("orders", [users("orders"), CreateIndex("users", Index("ix_users_email", ("email",)))]),
]


def chain(folder: Path, dialects: list[Any] = DIALECTS) -> History:
    """`STEPS` as migrations with a manifest and a head snapshot holding the statements on `dialects`."""
    parent = None
    for message, operations in STEPS:
        parent = write_migration(folder, message, operations, parent).revision
    history = History.load(folder)
    manifest.write_all(folder, history, dialects)
    return history


def first_line(folder: Path) -> str:
    return (folder / manifest.MANIFEST_NAME).read_text().partition("\n")[0]


def current(folder: Path) -> snapshot.Snapshot | None:
    return snapshot.read(folder, first_line(folder))


def compiled_by_the_build(dialect: Any, operations: list[Operation]) -> list[list[str]] | None:
    """What a pending `FreshBuild` compiles for `operations` on `dialect`, per operation; None when it refuses or a
    statement is not plain SQL."""
    history = SimpleNamespace(cache_dir=None)  # nothing kept
    build = FreshBuild(dialect, [SimpleNamespace(revision="r")], list(operations), [], Schema(),  # type: ignore[list-item]
                       Pending(history, []))  # type: ignore[arg-type]
    groups = []
    try:
        for operation, statements in build.in_order():
            if any(one != compiling.Statement(operation, sql=one.sql) or one.sql is None for one in statements):
                return None
            groups.append([one.sql for one in statements if one.sql is not None])
    except Exception:  # noqa: BLE001 - refused, or the dialect cannot compile an operation: nothing stored
        return None
    return groups


def test_every_scenario_stores_what_the_build_compiles() -> None:
    """For each scenario head of the corpus (no database): per dialect, the statements the snapshot stores are those
    a fresh build compiles, and they are stored exactly when the build compiles them all as plain SQL."""
    from databases.test_fresh_build import _scenario_heads

    problems, stored = [], 0
    for name, _, _, _, _, head in _scenario_heads():
        found = snapshot.of_state("h1:x", "r", cache.State(head, frozenset({None})), {"r": name}, DIALECTS)
        if found is None or not found.operations:
            continue
        for dialect in DIALECTS:
            expected = compiled_by_the_build(dialect, list(found.operations))
            if found.sql_for(dialect.registry_name) != expected:
                problems.append(f"{name} on {dialect.registry_name}")
            stored += expected is not None
    assert problems == []
    assert stored > 300


def test_written_read_and_used_by_a_clean_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "migrations"
    written = chain(folder)
    found = current(folder)
    assert found is not None and set(found.compiled) == set(NAMES) and found.compiled_key == cache.source_key()
    text = (folder / snapshot.SNAPSHOT_NAME).read_text()
    assert 'compiled_key = "' in text and '"postgresql": r"""' in text

    expected = {dialect.registry_name: plan_fresh(written, dialect, written.head) for dialect in DIALECTS}

    def no_compile(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("compiled")
    monkeypatch.setattr(fresh, "compile_in_order", no_compile)
    for dialect in DIALECTS:
        (tmp_path / dialect.registry_name).mkdir()
        history = manifest.load_history(folder, tmp_path / dialect.registry_name)  # a clean checkout: no cache
        build = plan_fresh(history, dialect, history.head, pipelined=True)
        reference = expected[dialect.registry_name]
        assert build is not None and reference is not None and build.pending is None
        assert [s.sql for s in build.statements] == [s.sql for s in reference.statements]
        assert [m.revision for m in build.migrations] == written.revisions
        assert fresh.group_by_operation(build.operations, build.statements) == list(
            statements for _, statements in build.in_order())
        kept = cached_build(history, dialect, history.upgrade_path(None, history.head))
        assert kept and [s.sql for s in kept.statements] == [s.sql for s in reference.statements]


def test_another_source_key_is_compiled_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "migrations"
    written = chain(folder)
    dialect = get_dialect("sqlite")
    reference = plan_fresh(written, dialect, written.head)
    monkeypatch.setattr(cache, "source_key", lambda: "0123456789ab")
    found = current(folder)
    assert found is not None and found.compiled and found.sql_for("sqlite") is None
    history = manifest.load_history(folder, tmp_path / "checkout")
    calls: list[str] = []
    real = fresh.compile_in_order

    def counting(dialect: Any, operations: Any) -> Any:
        calls.append(dialect.name)
        return real(dialect, operations)
    monkeypatch.setattr(fresh, "compile_in_order", counting)
    build = plan_fresh(history, dialect, history.head)
    assert calls == ["sqlite"]
    assert build is not None and reference is not None
    assert [s.sql for s in build.statements] == [s.sql for s in reference.statements]


def test_a_dialect_whose_statements_cannot_run_in_a_transaction_stores_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    postgresql = get_dialect("postgresql")
    monkeypatch.setattr(postgresql, "runs_in_transaction", lambda sql: not sql.startswith("CREATE INDEX"))
    folder = tmp_path / "migrations"
    chain(folder)
    found = current(folder)
    assert found is not None and set(found.compiled) == {"sqlite", "mysql", "mariadb"}
    history = manifest.load_history(folder, tmp_path / "checkout")
    assert plan_fresh(history, postgresql, history.head) is None  # refused, as before: step by step


def test_a_dialect_whose_statements_are_not_plain_stores_none(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real = compiling.compile_operations
    lock = LockRetry("SET lock_timeout = 1", None, 1, 0.1)

    def locking(dialect: Any, operations: Any, state: Schema) -> Any:
        statements, after = real(dialect, operations, state)
        if dialect.registry_name == "mysql":
            statements = [dataclasses.replace(one, lock=lock) for one in statements]
        return statements, after
    monkeypatch.setattr(compiling, "compile_operations", locking)
    folder = tmp_path / "migrations"
    chain(folder)
    found = current(folder)
    assert found is not None and set(found.compiled) == {"sqlite", "postgresql", "mariadb"}
    history = manifest.load_history(folder, tmp_path / "checkout")
    build = plan_fresh(history, get_dialect("mysql"), history.head)
    assert build is not None and build.statements and all(one.lock == lock for one in build.statements)


def test_an_edited_statement_voids_the_snapshot(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    chain(folder)
    path = folder / snapshot.SNAPSHOT_NAME
    text = path.read_text()
    assert "CREATE TABLE orders" in text
    path.write_text(text.replace("CREATE TABLE orders", "CREATE TABLE customers"))
    assert current(folder) is None


def test_a_malformed_statement_block_is_not_used(tmp_path: Path) -> None:
    """Statements that do not line up with the operations are compiled anew (never run misaligned)."""
    folder = tmp_path / "migrations"
    chain(folder)
    found = current(folder)
    assert found is not None
    short = dataclasses.replace(found, compiled={"sqlite": found.compiled["sqlite"].strip().rpartition("\n")[0]})
    assert short.sql_for("sqlite") is None
    assert dataclasses.replace(found, compiled={"sqlite": "[1]\n[2]\n[3]\n[4]"}).sql_for("sqlite") is None


def test_every_writer_carries_them(tmp_path: Path) -> None:
    """`advance` (a new migration) and `rebuild` write the statements for the dialects they are given; without
    any, none (a snapshot never keeps statements it did not compile)."""
    folder = tmp_path / "migrations"
    history = chain(folder, [get_dialect("sqlite")])
    migration = write_migration(folder, "more", [users("more")], history.head, dialects=[get_dialect("postgresql")])
    found = current(folder)
    assert found is not None and found.revision == migration.revision and set(found.compiled) == {"postgresql"}
    groups = found.sql_for("postgresql")
    assert groups is not None and any("CREATE TABLE more" in sql for group in groups for sql in group)
    manifest.rebuild(folder, [get_dialect("mysql"), get_dialect("mariadb")])
    found = current(folder)
    assert found is not None and set(found.compiled) == {"mysql", "mariadb"}
    manifest.rebuild(folder)
    found = current(folder)
    assert found is not None and not found.compiled and found.compiled_key is None
    assert "compiled" not in (folder / snapshot.SNAPSHOT_NAME).read_text()


def test_a_migration_written_where_the_manifest_cannot_be_appended_to_carries_them(tmp_path: Path) -> None:
    """A new migration whose manifest must be rebuilt from a full load (its head is not the new parent: a merge, an
    older manifest) writes the head snapshot with the statements on the dialects it is given, as an append does."""
    folder = tmp_path / "migrations"
    history = chain(folder, [get_dialect("sqlite")])
    lines = (folder / manifest.MANIFEST_NAME).read_text().splitlines(keepends=True)
    (folder / manifest.MANIFEST_NAME).write_text("".join(lines[:-1]))  # a manifest one migration behind
    migration = write_migration(folder, "more", [users("more")], history.head, dialects=[get_dialect("postgresql")])
    found = current(folder)
    assert found is not None and found.revision == migration.revision and set(found.compiled) == {"postgresql"}


@pytest.mark.parametrize(("urls", "names"), [
    (["mysql+pymysql://u@h/db"], ["mariadb", "mysql"]),
    (["mariadb+pymysql://u@h/db", "sqlite:///x.db"], ["mariadb", "mysql", "sqlite"]),
    (["postgresql+psycopg://u@h/db"], ["postgresql"]),
    (["${UNSET_URL_FOR_THIS_TEST}"], ["mariadb", "mysql", "postgresql", "sqlite"]),
])
def test_run_time_dialects(tmp_path: Path, urls: list[str], names: list[str]) -> None:
    envs = "".join(f'[env.e{number}]\nurl = "{url}"\n' for number, url in enumerate(urls))
    (tmp_path / "schemashift.toml").write_text(f'models = "m:Base"\nmigrations = "migrations"\n{envs}')
    assert sorted(dialect.registry_name for dialect in run_time_dialects(load_config(cwd=tmp_path))) == names


def test_mysql_and_mariadb_keep_their_own_sql(tmp_path: Path) -> None:
    """MariaDB's dialect shares MySQL's `name` but not its SQL (native UUID): the snapshot and the kept plan hold
    each under its `registry_name`, so one checkout building on both servers runs each its own."""
    folder = tmp_path / "migrations"
    first = write_migration(folder, "t", [CreateTable(Table("t", columns=(Column("id", Type("uuid"), nullable=False),),
                                                            primary_key=PrimaryKey(("id",))))], None)
    write_migration(folder, "users", [users()], first.revision)
    manifest.write_all(folder, History.load(folder), DIALECTS)
    found = current(folder)
    assert found is not None and found.sql_for("mysql") != found.sql_for("mariadb")
    (tmp_path / "root").mkdir()
    for _ in range(2):  # planned (from the snapshot), then from the kept plan
        for name, uuid in (("mysql", "CHAR(32)"), ("mariadb", "UUID")):
            history = manifest.load_history(folder, tmp_path / "root")
            build = plan_fresh(history, get_dialect(name), history.head)
            assert build is not None and f"id {uuid} NOT NULL" in build.statements[0].sql  # type: ignore[operator]
