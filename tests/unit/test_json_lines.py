"""JSON lines (`schemashift.operations.codec`): every value the renderer writes reads back exactly (same types, same
fields), what it cannot write exactly is refused, and the head snapshot of every scenario is written in format 2
and reads back as the snapshot written."""

from __future__ import annotations

import enum
import json
import math
import sys
import types
from collections import namedtuple
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import pytest

import schemashift.migration as namespace
from scenarios import SCENARIOS, Scenario
from schemashift.autodetect.differ import RenameDecisions, diff
from schemashift.errors import MigrationError
from schemashift.history import cache, snapshot
from schemashift.migration import (
    AddColumn,
    AddConstraint,
    AlterColumn,
    AlterSequence,
    CheckConstraint,
    Column,
    Computed,
    CreateIndex,
    CreateObject,
    CreateSequence,
    CreateTable,
    DropObject,
    DropTable,
    ExtensionDef,
    ForeignKey,
    FunctionDef,
    Identity,
    Index,
    PolicyDef,
    PrimaryKey,
    Schema,
    Sequence,
    Table,
    TriggerDef,
    Type,
    UniqueConstraint,
    ViewDef,
    from_json,
)
from schemashift.operations import OPERATIONS, invert_all, resolve_all
from schemashift.operations.codec import class_named, to_json
from schemashift.operations.render import render_value
from schemashift.sqla.from_metadata import from_metadata


def same(a: Any, b: Any) -> bool:
    """`a` and `b` equal with exactly the same types all the way down (1 is not 1.0 nor True, a tuple no list)."""
    if type(a) is not type(b):
        return False
    if is_dataclass(a) and not isinstance(a, type):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(same(k, j) and same(v, w)
                                        for (k, v), (j, w) in zip(a.items(), b.items(), strict=True))
    if isinstance(a, (set, frozenset)):
        return a == b and sorted(map(repr, a)) == sorted(map(repr, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b  # type: ignore[no-any-return]


def as_python(values: list[Any]) -> list[Any]:
    """What `values` written as Python calls (format 1, migration files) read back as: subclasses of str, int,
    tuple… become their base; the renderer cannot write sets (the codec writes them as they are)."""
    try:
        text = render_value(values)
    except MigrationError:
        return values
    return eval(text, dict(vars(namespace)))  # type: ignore[no-any-return]


def round_trip(values: list[Any]) -> list[Any]:
    """`values` written as JSON lines and read back: exactly what the renderer's calls give, and equal."""
    text = to_json(values)
    assert text.count("\n") == max(len(values) - 1, 0) and '"""' not in text
    assert all(line.isprintable() for line in text.split("\n"))
    back = from_json(text)
    assert same(back, as_python(values)) and back == values
    assert to_json(back) == text
    return back


INT = Type("integer")
TABLE = Table(
    "orders", schema="shop", comment='the "orders"\nback\\slash', options=(("mysql_engine", "InnoDB"),),
    columns=(
        Column("id", Type("bigint", unsigned=True), nullable=False, autoincrement=True, identity=Identity(True, 5, 2)),
        Column("state", Type("enum", values=("new", "done"), name="state_t", native=False), default="'new'"),
        Column("total", Type("numeric", precision=12, scale=2), computed=Computed("qty * price", persisted=True)),
        Column("tags", Type("array", item=Type("string", length=20), dimensions=1)),
        Column("doc", Type("json", variant="jsonb", dialects=(("mysql", Type("text")),)),
               defaults=(("postgresql", "'{}'::jsonb"),), comment="é ünïcödé ✓ 😀"),
        Column("seq", INT, sequence="shop.orders_seq"),
    ),
    primary_key=PrimaryKey(("id",), name="pk_orders"),
    indexes=(Index("ix_state", ("state",), unique=True, expressions=("lower(doc)",), where="state <> 'done'",
                   options=(("postgresql_using", "gin"), ("mysql_length", (("doc", 10),)), ("only_on", ("pg",)))),),
    uniques=(UniqueConstraint(("state", "total"), name="uq_x"),),
    foreign_keys=(ForeignKey(("seq",), "other", ("id",), name="fk", ref_schema="s", ondelete="CASCADE",
                             onupdate="SET NULL", deferrable=True, initially="DEFERRED"),),
    checks=(CheckConstraint("total >= 0", name="ck", only_on=("sqlite",)),),
)
OPERATIONS_BY_HAND: list[Any] = [
    CreateTable(TABLE),
    DropTable("orders", schema="shop", definition=TABLE),
    AddColumn("orders", Column("n", INT, nullable=False), schema="shop", fill=0),
    AddColumn("orders", Column("f", Type("float")), fill=1.5),
    AddColumn("orders", Column("b", Type("boolean")), fill=True),
    AlterColumn("orders", "n", new=Column("n", Type("bigint")), old=Column("n", INT)),
    CreateIndex("orders", Index("ix_n", ("n",))),
    AddConstraint("orders", CheckConstraint("n > 0", name="ck_n")),
    CreateSequence(Sequence("s", schema="x", start=1, increment=-1, minvalue=-(2**70), maxvalue=2**70, cycle=True)),
    AlterSequence("s", Sequence("s", start=2), old=Sequence("s"), schema="x"),
    CreateObject(ViewDef("v", "SELECT 1", schema="s", materialized=True, definitions=(("mysql", "SELECT 2"),),
                         only_on=("postgresql", "mysql"))),
    CreateObject(FunctionDef("touch()", "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$")),
    CreateObject(TriggerDef("tr", "orders", "BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()")),
    CreateObject(PolicyDef("p", "orders", "FOR SELECT USING (true)")),
    CreateObject(ExtensionDef("pgcrypto", schema="ext", only_on=("postgresql",))),
    DropObject("view", "s.v", definition=ViewDef("v", "SELECT 1", schema="s")),
]


def test_operations_and_model_objects_read_back_exactly() -> None:
    back = round_trip(OPERATIONS_BY_HAND)
    assert back == OPERATIONS_BY_HAND
    assert to_json([TABLE]).startswith('{"@": "Table", "name": "orders", "columns": [{"@": "Column", "name": "id", ')


def test_a_compare_false_field_is_kept() -> None:
    view = ViewDef("v", "SELECT 1", renamed_from="old_v")
    assert same(round_trip([view])[0], view) and round_trip([view])[0].renamed_from == "old_v"


@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2**100, 1.0, -0.0, 0.1, 1e300, 5e-324, math.inf, -math.inf, "", "plain",
    'quote " and \\ and """ and \'\'\'', "line\nbreak\r\n\ttab", "\x00\x1b\x7f\x85\u2028\u200b\ufeff\U000e0001",
    "\ud800 lone surrogate", "é ✓ 😀 日本", (), (1, (2, (3,))), [], [1, [2, (3, [4])]], ([],), {}, {"a": 1},
    {"@": 1}, {"@list": [1]}, {1: "int key", (1, 2): "tuple key", None: 0}, {"a": {"b": [(1,)]}}, set(), {1, 2, 3},
    frozenset({"b", "a"}), {(1, 2), (0,)}, b"", b"\x00bytes\xff", [INT, {"t": TABLE}], Schema(),
    Schema.of([TABLE], [Sequence("s")], {"view v": ViewDef("v", "SELECT 1")}),
])
def test_values_read_back_exactly(value: object) -> None:
    round_trip([value, value])


def test_nan_reads_back_as_nan() -> None:
    back = from_json(to_json([math.nan]))
    assert len(back) == 1 and isinstance(back[0], float) and math.isnan(back[0])


class Color(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 2


Pair = namedtuple("Pair", "a b")


@dataclass(frozen=True)
class Local:
    """A dataclass migration files cannot name."""

    value: int


class Text(str):
    """A str subclass."""


def step(ctx: object) -> None:
    """A data step."""


@pytest.mark.parametrize("value", [Color.RED, Local(1), step, object(), 1j, bytearray(b"x"), [step]],
                         ids=["enum", "local-class", "function", "object", "complex", "bytearray", "list-of-function"])
def test_what_cannot_be_written_is_refused(value: object) -> None:
    with pytest.raises(MigrationError):
        to_json([value])


@pytest.mark.parametrize(("value", "plain"), [
    (Size.BIG, 2), (Pair(1, "a"), (1, "a")), (Text("x"), "x"), ({Text("k"): Text("v")}, {"k": "v"}),
    (CreateTable(Table(Text("t"), columns=(Column("c", Type("integer"), default=Text("1")),))),
     CreateTable(Table("t", columns=(Column("c", Type("integer"), default="1"),)))),
])
def test_subclasses_are_written_as_the_renderer_writes_them(value: object, plain: object) -> None:
    """As their base type, which is what the same value written as Python calls reads back as."""
    back = round_trip([value])
    assert same(back, [plain])


@pytest.mark.parametrize("text", [
    '{"@": "Nothing"}', '{"@": "Operation"}', '{"@": "Scenario"}', '{"@": "__builtins__"}', '{"@": ["Table"]}',
    '{"@": "DropTable"}', '{"@": "DropTable", "table": "t", "cascade": true}', '{"@": "Type", "kind": "integral"}',
    '{"@": "DropObject", "kind": "table", "key": "t"}', '{"@set": [{"a": 1}]}', '{"@dict": [[1, 2, 3]]}',
    '{"@bytes": "zz"}', '{"@bytes": 1}', '{"@list": 1}', "[", "1\n\n2", "CreateTable()", "1 2",
])
def test_malformed_lines_are_errors(text: str) -> None:
    with pytest.raises((ValueError, TypeError, KeyError, MigrationError)):
        from_json(text)


def test_blank_lines_around_and_no_lines() -> None:
    assert from_json("") == [] and from_json("\n\n") == [] and from_json('\n[1, "a"]\n{"a": [2]}\n') == [
        (1, "a"), {"a": (2,)}]


def test_every_dataclass_migration_files_see_is_written_and_read_by_name() -> None:
    exported = {name: value for name, value in vars(namespace).items()
                if name in namespace.__all__ and isinstance(value, type) and is_dataclass(value)}
    assert {"Table", "Column", "Type", "ViewDef", "CreateTable", "AlterColumn"} <= set(exported)
    assert all(class_named(name) is cls for name, cls in exported.items())
    assert all(class_named(name) is cls for name, cls in OPERATIONS.items() if is_dataclass(cls))
    assert class_named("Operation") is None and class_named("Scenario") is None


# -- every scenario ------------------------------------------------------------------


def models(scenario: Scenario, version: str) -> Schema:
    """The schema of a scenario's models module (SQLAlchemy names are ``quoted_name``s, a str subclass)."""
    name = f"_models_{scenario.name}_{version}"
    module = types.ModuleType(name)
    sys.modules[name] = module  # declarative classes resolve their annotations through it
    try:
        exec(compile(scenario.source(version), f"<{scenario.name} {version}>", "exec"), vars(module))
        return from_metadata(module.metadata)
    finally:
        del sys.modules[name]


def scenario_operations(scenario: Scenario) -> list[list[Any]]:
    """The operations of a scenario: each version built from nothing, the change between them (when the differ
    needs no answer), resolved and inverted (every *from* side filled)."""
    v1, v2 = models(scenario, "v1"), models(scenario, "v2")
    found = [diff(Schema(), v1), diff(Schema(), v2)]
    try:
        change = diff(v1, v2, RenameDecisions())
    except Exception:  # noqa: BLE001 - a rename the differ asks about
        change = diff(v1, v2, RenameDecisions(no_rename=True))
    resolved = resolve_all(change, v1)[0]
    return [*found, change, resolved, invert_all(resolved)]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_operations_read_back_exactly(scenario: Scenario) -> None:
    for operations in scenario_operations(scenario):
        round_trip(operations)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_snapshot_round_trip(scenario: Scenario, tmp_path: Path) -> None:
    """The head snapshot of each version: format 2, read back equal, the same bytes when written again; format 1
    of it reads back equal too."""
    for version in ("v1", "v2"):
        schema = models(scenario, version)
        state = cache.State(schema, frozenset(schema.schema_names))
        made = snapshot.of_state("h1:" + "0" * 64, "abc", state, {"abc": f"{scenario.name}\n{version} ✓"})
        if made is None:  # the differ's operations do not replay to the state: no snapshot (not this test's)
            continue
        text = snapshot.render(made)
        assert f"\nformat = {snapshot.FORMAT}\n" in text
        path = snapshot.write(tmp_path, made)
        assert path is not None and path.read_text() == text
        back = snapshot.read(tmp_path, made.manifest)
        assert back is not None and same(list(back.operations), as_python(list(made.operations)))
        assert back == made and dict(back.messages) == dict(made.messages)
        assert back.state.schema == schema and snapshot.render(back) == text
        old = snapshot.parse(snapshot.render(made, 1), made.manifest)
        assert old == made and same(list(old.operations), list(back.operations))


def test_what_does_not_read_back_is_written_as_format_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer reads its JSON lines back before it trusts them: a difference means format 1 (Python calls)."""
    from schemashift.operations import codec

    made = snapshot.Snapshot(cache.code_key(), "h1:" + "0" * 64, "abc", frozenset({None, "shop"}), {"abc": "m"},
                             [CreateTable(TABLE)])
    assert f"\nformat = {snapshot.FORMAT}\n" in snapshot.render(made)
    monkeypatch.setattr(codec, "from_json", lambda text: [])
    text = snapshot.render(made)
    assert "\nformat = 1\n" in text and "operations = [\n    CreateTable(" in text
    monkeypatch.undo()
    assert snapshot.parse(text, made.manifest) == made
    local = replace(made, operations=[CreateTable(replace(TABLE, comment=Local(1)))])  # type: ignore[arg-type]
    assert "\nformat = 1\n" in snapshot.render(local)  # no JSON for a class migration files cannot name


def test_the_renderer_and_the_codec_agree_on_arguments() -> None:
    """Both write the fields `render.arguments` gives: the same objects come back from either form."""
    from_python = eval(render_value(OPERATIONS_BY_HAND), dict(vars(namespace)))
    assert same(from_python, from_json(to_json(OPERATIONS_BY_HAND)))
    assert json.loads(to_json([INT])) == {"@": "Type", "kind": "integer"}
