"""Operations register themselves by subclassing: the registry, the migration namespace and compilation follow."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import schemashift.migration as migration_namespace
from schemashift import operations as ops
from schemashift.dialects.base import Dialect
from schemashift.dialects.sqlite.live import KeepLiveObjects
from schemashift.errors import MigrationError
from schemashift.history.loader import load_migration
from schemashift.model.schema import Schema, Sequence
from schemashift.planning import backups
from schemashift.planning.plan import Statement

INTERNAL = [backups.KeepData("bk", "x", "y"), backups.RestoreData("bk", "x"), backups.ForgetBackups(("bk",)),
            backups.DiscardBackup("bk"), backups.CheckValuesUnused("t", "c", ("a",)), backups.CheckNoRows("t", "c"),
            backups.NotKept("x", "y"), KeepLiveObjects("t", "x")]


@pytest.fixture
def plugin() -> Iterator[types.ModuleType]:
    """A module defining one new operation at module level, as an extension would; unregistered afterwards."""
    module = types.ModuleType("registry_plugin")
    sys.modules[module.__name__] = module
    source = (
        "from dataclasses import dataclass\n"
        "from schemashift.operations import Operation\n"
        "@dataclass(frozen=True)\n"
        "class TouchTable(Operation):\n"
        "    table: str\n"
        "    def apply(self, schema):\n"
        "        return schema\n"
        "class RefreshSQLCache(Operation):\n"
        "    compiler = 'compile_refresh'\n"
    )
    exec(compile(source, "registry_plugin.py", "exec"), module.__dict__)
    yield module
    for name in ("TouchTable", "RefreshSQLCache"):
        ops.OPERATIONS.pop(name, None)
    del sys.modules[module.__name__]


def test_every_operation_class_of_the_package_is_registered() -> None:
    defined = {name for name, value in vars(ops).items()
               if isinstance(value, type) and issubclass(value, ops.Operation) and not value.internal}
    assert set(ops.OPERATIONS) == defined - {"Operation"}
    assert len(ops.OPERATIONS) == 24  # 19 on tables, columns, indexes, constraints, sequences, raw; Backfill; 4 on objects


def test_the_history_cache_hashes_every_module_that_defines_operations() -> None:
    """`history.cache.code_key` hashes every module of the package: a change to any operation's code makes new states."""
    names = {module.__name__ for module in ops.MODULES}
    assert {cls.__module__ for cls in ops.OPERATIONS.values()} | {"schemashift.operations.base"} == names


def test_defining_a_subclass_registers_it_with_its_compile_method(plugin: types.ModuleType) -> None:
    assert ops.OPERATIONS["TouchTable"] is plugin.TouchTable
    assert plugin.TouchTable.compiler == "compile_touch_table"
    assert plugin.RefreshSQLCache.compiler == "compile_refresh"  # declared by the class


def test_compile_methods_follow_the_class_names() -> None:
    names = {name: cls.compiler for name, cls in ops.OPERATIONS.items()}
    assert names["ExecuteSQL"] == "compile_execute_sql"
    assert names["AlterTableComment"] == "compile_alter_table_comment"
    assert all(callable(getattr(Dialect, method, None)) for method in names.values())


def test_a_new_operation_compiles_through_its_method(plugin: types.ModuleType) -> None:
    class Custom(Dialect):
        name = "custom"

        def compile_touch_table(self, op: ops.Operation, before: Schema, after: Schema) -> list[str]:
            return [f"TOUCH {op.table_key}"]

    assert Custom().compile(plugin.TouchTable("t"), Schema(), Schema()) == ["TOUCH t"]
    with pytest.raises(MigrationError, match="cannot compile RefreshSQLCache"):
        Custom().compile(plugin.RefreshSQLCache(), Schema(), Schema())


def test_a_name_taken_by_another_class_is_refused() -> None:
    with pytest.raises(TypeError, match="'CreateTable' is taken"):
        types.new_class("CreateTable", (ops.Operation,))
    assert ops.OPERATIONS["CreateTable"] is ops.CreateTable


def test_classes_defined_in_functions_are_not_registered() -> None:
    class Local(ops.Operation):
        pass

    assert "Local" not in ops.OPERATIONS


@pytest.mark.parametrize("step", INTERNAL, ids=lambda step: type(step).__name__)
def test_steps_a_plan_adds_are_internal(step: ops.Operation) -> None:
    """Backups, restores, guards and notes: not registered, not exported, not compiled, no inverse."""
    name = type(step).__name__
    assert step.internal and step.data_only
    assert name not in ops.OPERATIONS and name not in migration_namespace.__all__
    assert step.apply(Schema()) == Schema()
    assert step.describe()
    with pytest.raises(TypeError, match="has no inverse"):
        step.inverse()
    with pytest.raises(MigrationError, match="cannot compile"):
        Dialect().compile(step, Schema(), Schema())
    assert backups.is_data_step(step) != isinstance(step, KeepLiveObjects)
    assert Statement(step, sql="SELECT 1").describe() == "SELECT 1"


def test_migration_namespace_exports_every_registered_operation(plugin: types.ModuleType) -> None:
    assert set(ops.OPERATIONS) - {"TouchTable", "RefreshSQLCache"} <= set(migration_namespace.__all__)
    for name in ("CreateSequence", "DropSequence", "AlterSequence"):
        assert getattr(migration_namespace, name) is ops.OPERATIONS[name]


def test_a_migration_file_using_sequences_loads_with_the_star_import_only(tmp_path: Path) -> None:
    path = tmp_path / "0001_sequences.py"
    path.write_text(
        '"""Sequences."""\nfrom schemashift.migration import *  # noqa: F401,F403\n\n'
        'revision = "aaaa11111111"\nparent = None\n'
        'operations = [\n    CreateSequence(Sequence("ticket_seq", start=10)),\n'
        '    AlterSequence("ticket_seq", new=Sequence("ticket_seq", start=20)),\n'
        '    DropSequence("ticket_seq"),\n]\n'
    )
    migration = load_migration(path)
    assert migration.operations == [
        ops.CreateSequence(Sequence("ticket_seq", start=10)),
        ops.AlterSequence("ticket_seq", new=Sequence("ticket_seq", start=20)),
        ops.DropSequence("ticket_seq"),
    ]


def test_an_unknown_destructive_operation_is_refused_not_run_blind(plugin: types.ModuleType) -> None:
    """An extension's operation declared `destructive` gets no backup schemashift cannot make: it is refused
    (DataLossRefused, exit 2) unless data loss is allowed, and `--dry-run` marks it."""
    from dataclasses import dataclass
    from pathlib import Path as _Path

    from schemashift.dialects import get_dialect
    from schemashift.history.loader import Migration
    from schemashift.planning.plan import Step

    @dataclass(frozen=True)
    class PurgeTable(ops.Operation):
        table: str
        destructive = True

        @property
        def table_key(self) -> str:
            return self.table

        def apply(self, schema: Schema) -> Schema:
            return schema

        def describe(self) -> str:
            return f"purge {self.table}"

    operation = PurgeTable("t")
    assert backups.data_loss(operation) == "what PurgeTable removes from t"
    migration = Migration("abc", None, "purge", [operation], _Path("0001_purge.py"), "0" * 64)
    step = Step(migration, "up", [operation], [Statement(operation, sql="DELETE FROM t")], Schema(), Schema(),
                get_dialect("sqlite"))
    with pytest.raises(backups.DataLossRefused, match="PurgeTable"):
        backups.protect_step(step, keep=True, allow_data_loss=False, refuse=True)
    allowed = backups.protect_step(step, keep=True, allow_data_loss=True, refuse=True)
    assert [s.sql for s in allowed.statements if s.operation is operation] == ["DELETE FROM t"]
