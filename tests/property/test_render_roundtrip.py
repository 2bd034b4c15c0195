"""Rendering round trips: every op and model object renders to Python that evaluates back equal,
and every resolved operation inverts back to itself and undoes its schema change."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemashift.migration as migration_namespace
from schemashift.errors import MigrationError
from schemashift.migration import (
    AddColumn,
    AddConstraint,
    AlterColumn,
    AlterTableComment,
    Backfill,
    CheckConstraint,
    Column,
    Computed,
    CreateIndex,
    CreateObject,
    CreateTable,
    DropColumn,
    DropConstraint,
    DropIndex,
    DropObject,
    DropTable,
    ExecuteSQL,
    ForeignKey,
    Identity,
    Index,
    PrimaryKey,
    RenameColumn,
    RenameConstraint,
    RenameIndex,
    RenameObject,
    RenameTable,
    ReplaceObject,
    RunPython,
    Schema,
    Sequence,
    Table,
    TriggerDef,
    UniqueConstraint,
    ViewDef,
)
from schemashift.model import schema as model
from schemashift.model.types import KINDS, Type
from schemashift.operations import OPERATIONS, AlterSequence, CreateSequence, DropSequence, Operation, resolve_all
from schemashift.operations.render import WIDTH, render_migration, render_value

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def evaluate(source: str, **extra: Any) -> Any:
    """Evaluate rendered source in the namespace migration files get."""
    namespace: dict[str, Any] = {}
    exec("from schemashift.migration import *", namespace)
    namespace.update(extra)
    return eval(source, namespace)


def run_file(source: str, **extra: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = dict(extra)
    exec(compile(source, "<migration>", "exec"), namespace)
    return namespace


# -- strategies -----------------------------------------------------------

texts = st.text(max_size=12)
names = st.text(min_size=1, max_size=12)
sql = st.text(max_size=40) | st.lists(st.text(min_size=1, max_size=30), min_size=2, max_size=5).map("\n".join)
opt_text = st.none() | texts
opt_int = st.none() | st.integers(min_value=-(2**40), max_value=2**40)
opt_bool = st.none() | st.booleans()
name_tuples = st.lists(names, max_size=3).map(tuple)
name_tuples1 = st.lists(names, min_size=1, max_size=3).map(tuple)

simple_types = st.builds(
    Type,
    kind=st.sampled_from(sorted(KINDS)),
    length=opt_int,
    precision=opt_int,
    scale=opt_int,
    timezone=st.booleans(),
    unsigned=st.booleans(),
    collation=opt_text,
    charset=opt_text,
    values=st.lists(texts, max_size=4) | name_tuples,
    name=opt_text,
    native=st.booleans(),
    dimensions=opt_int,
    variant=opt_text,
    sql=opt_text,
)
dialect_names = st.sampled_from(["sqlite", "postgresql", "mysql"])
types = (
    simple_types
    | st.builds(Type, kind=st.just("array"), item=simple_types, dimensions=opt_int)
    | st.builds(Type, kind=st.sampled_from(sorted(KINDS)), length=opt_int,
                dialects=st.lists(st.tuples(dialect_names, simple_types), max_size=2).map(tuple))
)
computeds = st.builds(Computed, sql=sql, persisted=opt_bool)
identities = st.builds(Identity, always=st.booleans(), start=opt_int, increment=opt_int)
columns = st.builds(
    Column,
    name=names,
    type=types,
    nullable=st.booleans(),
    default=st.none() | sql,
    autoincrement=st.booleans(),
    comment=opt_text,
    computed=st.none() | computeds,
    identity=st.none() | identities,
    defaults=st.lists(st.tuples(dialect_names, sql), max_size=2).map(tuple),
)
primary_keys = st.builds(PrimaryKey, columns=name_tuples1, name=opt_text)
#: Dialect option values as `model.option_value` makes them: scalars, tuples, tuples of pairs.
option_values = st.one_of(
    texts,
    st.booleans(),
    st.integers(min_value=0, max_value=1000),
    st.lists(names, max_size=3).map(tuple),
    st.lists(st.tuples(names, texts | st.integers(min_value=0, max_value=100)), max_size=3).map(tuple),
)
indexes = st.builds(
    Index,
    name=names,
    columns=name_tuples,
    unique=st.booleans(),
    expressions=st.lists(sql, max_size=2).map(tuple),
    where=st.none() | sql,
    options=st.lists(st.tuples(names, option_values), max_size=2).map(tuple),
)
uniques = st.builds(UniqueConstraint, columns=name_tuples1, name=opt_text)
foreign_keys = st.builds(
    ForeignKey,
    columns=name_tuples1,
    ref_table=names,
    ref_columns=name_tuples1,
    name=opt_text,
    ref_schema=opt_text,
    ondelete=st.none() | st.sampled_from(["CASCADE", "SET NULL", "RESTRICT"]),
    onupdate=opt_text,
    deferrable=opt_bool,
    initially=st.none() | st.sampled_from(["DEFERRED", "IMMEDIATE"]),
)
checks = st.builds(CheckConstraint, sql=sql, name=opt_text, only_on=st.lists(names, max_size=2).map(tuple))
constraints = primary_keys | uniques | foreign_keys | checks
tables = st.builds(
    Table,
    name=names,
    columns=st.lists(columns, max_size=4).map(tuple),
    primary_key=st.none() | primary_keys,
    indexes=st.lists(indexes, max_size=2).map(tuple),
    uniques=st.lists(uniques, max_size=2).map(tuple),
    foreign_keys=st.lists(foreign_keys, max_size=2).map(tuple),
    checks=st.lists(checks, max_size=2).map(tuple),
    schema=opt_text,
    comment=opt_text,
    options=st.lists(st.tuples(names, option_values), max_size=2).map(tuple),
)
schemas = st.lists(tables, max_size=2).map(Schema.of)


def forward_step(ctx: object) -> None:
    """A data step for RunPython round trips."""


def backward_step(ctx: object) -> None:
    """The reverse data step."""


operations = st.one_of(
    st.builds(CreateTable, table=tables),
    st.builds(DropTable, table=names, schema=opt_text, definition=st.none() | tables),
    st.builds(RenameTable, table=names, new_name=names, schema=opt_text),
    st.builds(AlterTableComment, table=names, comment=opt_text, old=opt_text, schema=opt_text),
    st.builds(AddColumn, table=names, column=columns, schema=opt_text,
              fill=st.none() | st.booleans() | st.integers() | st.text(max_size=10)),
    st.builds(DropColumn, table=names, column=names, schema=opt_text, definition=st.none() | columns),
    st.builds(AlterColumn, table=names, column=names, new=columns, old=st.none() | columns, schema=opt_text),
    st.builds(RenameColumn, table=names, column=names, new_name=names, schema=opt_text),
    st.builds(CreateIndex, table=names, index=indexes, schema=opt_text),
    st.builds(DropIndex, table=names, name=names, schema=opt_text, definition=st.none() | indexes),
    st.builds(RenameIndex, table=names, name=names, new_name=names, schema=opt_text),
    st.builds(RenameConstraint, table=names, name=names, new_name=names, schema=opt_text),
    st.builds(AddConstraint, table=names, constraint=constraints, schema=opt_text),
    st.builds(DropConstraint, table=names, name=opt_text, schema=opt_text, definition=st.none() | constraints),
    st.builds(ExecuteSQL, sql=sql, reverse=st.none() | sql, dialects=st.lists(names, max_size=2).map(tuple)),
    st.builds(RunPython, forward=st.just(forward_step), reverse=st.sampled_from([None, backward_step])),
    st.builds(Backfill, table=names, values=st.dictionaries(names, st.none() | st.integers() | st.text(max_size=5),
                                                            max_size=2),
              where=st.none() | sql, batch_size=st.integers(1, 10_000),
              expressions=st.dictionaries(names, sql, max_size=1), schema=opt_text),
)
STEPS = {"forward_step": forward_step, "backward_step": backward_step}


# -- render -> evaluate -> equal -------------------------------------------


def test_namespace_exports_every_operation_and_model_class() -> None:
    exported = set(migration_namespace.__all__)
    assert set(OPERATIONS) <= exported
    model_classes = {name for name, value in vars(model).items() if isinstance(value, type) and value.__module__ == model.__name__}
    assert model_classes <= exported
    assert "Type" in exported
    assert all(hasattr(migration_namespace, name) for name in exported)


@SETTINGS
@given(value=st.one_of(types, columns, computeds, identities, primary_keys, indexes, uniques, foreign_keys, checks))
def test_model_parts_round_trip(value: object) -> None:
    assert evaluate(render_value(value)) == value


@SETTINGS
@given(table=tables, indent=st.integers(min_value=0, max_value=40))
def test_tables_round_trip(table: Table, indent: int) -> None:
    source = render_value(table, indent)
    assert evaluate(source) == table
    # continuation lines carry the requested indentation, so the text can be pasted at that level
    assert all(line.startswith(" " * indent) for line in source.splitlines()[1:])


@SETTINGS
@given(schema=schemas)
def test_schemas_round_trip(schema: Schema) -> None:
    assert evaluate(render_value(schema)) == schema


@SETTINGS
@given(operation=operations)
def test_operations_round_trip(operation: Operation) -> None:
    assert evaluate(render_value(operation), **STEPS) == operation


@SETTINGS
@given(ops=st.lists(operations, max_size=4), message=st.text(max_size=60), parent=st.none() | st.just("1a2b3c4d5e6f"))
def test_whole_files_round_trip(ops: list[Operation], message: str, parent: str | None) -> None:
    source = render_migration("3f2a9c1b7d4e", parent, message, ops, datetime(2026, 11, 25, 18, 30))
    namespace = run_file(source)
    assert namespace["operations"] == [
        replace(op, forward=namespace[op.forward.__name__],
                reverse=op.reverse and namespace[op.reverse.__name__]) if isinstance(op, RunPython) else op
        for op in ops
    ]
    assert (namespace["revision"], namespace["parent"], namespace["message"]) == ("3f2a9c1b7d4e", parent, message)


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -7, 2**70, 1.5, float("inf"), float("-inf"), "", "it's", 'say "hi"', "a\\b\n\t\x00é",
     (), ("x",), ("x", "y"), [], [1, (2,)], {"a": (1,), "b": None}, b"\x00bytes"],
)
def test_plain_values_round_trip(value: object) -> None:
    assert evaluate(render_value(value)) == value


def test_sample_migration_matches_the_documented_format() -> None:
    table = Table(
        "users",
        columns=(
            Column("id", Type("integer"), nullable=False, autoincrement=True),
            Column("name", Type("string", length=50)),
        ),
        primary_key=PrimaryKey(("id",)),
    )
    source = render_migration("3f2a9c1b7d4e", "1a2b3c4d5e6f", "Add users table", [CreateTable(table)],
                              datetime(2026, 11, 25, 18, 30))
    assert source == '''\
"""Add users table.

Revision: 3f2a9c1b7d4e
Parent: 1a2b3c4d5e6f
Created: 2026-11-25 18:30
"""
from schemashift.migration import *  # noqa: F401,F403

revision = "3f2a9c1b7d4e"
parent = "1a2b3c4d5e6f"
message = "Add users table"

operations = [
    CreateTable(
        Table(
            "users",
            columns=(
                Column("id", Type("integer"), nullable=False, autoincrement=True),
                Column("name", Type("string", length=50)),
            ),
            primary_key=PrimaryKey(("id",)),
        ),
    ),
]
'''
    compile(source, "0001_create_users.py", "exec")


def test_defaults_are_omitted_and_short_values_stay_on_one_line() -> None:
    assert render_value(Column("a", Type("text"))) == 'Column("a", Type("text"))'
    assert render_value(DropColumn("t", "c")) == 'DropColumn("t", "c")'
    assert render_value(Index("ix", ("a",), unique=True)) == 'Index("ix", columns=("a",), unique=True)'
    assert render_value(Type("enum", values=("a", "b"), name="mood")) == 'Type("enum", values=("a", "b"), name="mood")'
    assert render_value(RunPython(forward_step, reverse=backward_step)) == (
        "RunPython(forward_step, reverse=backward_step)"
    )


def test_long_values_are_broken_within_the_width() -> None:
    table = Table(
        "orders",
        columns=tuple(Column(f"column_{i}", Type("numeric", precision=10, scale=2), comment="amount") for i in range(5)),
        foreign_keys=(ForeignKey(("customer_id",), "customers", ("id",), name="fk_orders_customer", ondelete="CASCADE"),),
    )
    source = render_value(AddColumn("orders", table.columns[0], schema="sales"), 4) + render_value(table, 8)
    assert max(len(line) for line in source.splitlines()) <= WIDTH
    assert evaluate(render_value(table, 8)) == table


def test_long_multiline_sql_is_one_literal_per_line() -> None:
    statement = "UPDATE accounts\nSET balance = balance * 1.05\nWHERE kind = 'savings' AND balance > 0 AND NOT frozen;"
    source = render_value(ExecuteSQL(statement, reverse="UPDATE accounts SET balance = balance / 1.05"))
    assert '    "UPDATE accounts\\n"\n' in source
    assert evaluate(source) == ExecuteSQL(statement, reverse="UPDATE accounts SET balance = balance / 1.05")
    top = render_value(statement * 2)
    assert top.startswith("(\n") and evaluate(top) == statement * 2


def test_lambdas_cannot_be_rendered() -> None:
    with pytest.raises(MigrationError, match="lambda"):
        render_value(RunPython(lambda ctx: None))


def test_empty_migration_has_a_commented_example() -> None:
    source = render_migration("aaaaaaaaaaaa", None, "data fix", [], datetime(2026, 1, 2, 3, 4))
    assert "# def forward(ctx):" in source and "RunPython(forward, reverse=backward)" in source
    assert "ExecuteSQL(" in source and "Parent: (none)" in source
    namespace = run_file(source)
    assert namespace["operations"] == [] and namespace["parent"] is None


def test_awkward_messages_stay_valid_python() -> None:
    message = 'Fix """quotes""" and \\backslashes\\ "here"\nsecond line'
    namespace = run_file(render_migration("aaaaaaaaaaaa", None, message, [], datetime(2026, 1, 2)))
    assert namespace["message"] == message
    assert namespace["__doc__"].startswith('Fix """quotes"""')


def test_run_python_writes_its_functions() -> None:
    source = render_migration("aaaaaaaaaaaa", None, "data", [RunPython(forward_step, reverse=backward_step)],
                              datetime(2026, 1, 2))
    assert "def forward_step(ctx: object) -> None:" in source  # the real source, found by inspect
    namespace = run_file(source)
    step = namespace["operations"][0]
    assert step.forward is namespace["forward_step"] and step.reverse is namespace["backward_step"]


# -- inverse round trips ----------------------------------------------------


def sample_schema() -> Schema:
    users = Table(
        "users",
        columns=(
            Column("id", Type("integer"), nullable=False, autoincrement=True),
            Column("email", Type("string", length=200), nullable=False),
            Column("name", Type("string", length=50)),
            Column("team_id", Type("integer")),
            Column("age", Type("smallint")),
        ),
        primary_key=PrimaryKey(("id",), name="pk_users"),
        indexes=(Index("ix_users_name", ("name",)), Index("ix_users_lower", expressions=("lower(email)",))),
        uniques=(UniqueConstraint(("email",), name="uq_users_email"),),
        foreign_keys=(ForeignKey(("team_id",), "teams", ("id",), name="fk_users_team", ondelete="SET NULL"),),
        checks=(CheckConstraint("age >= 0", name="ck_users_age"),),
    )
    teams = Table("teams", columns=(Column("id", Type("integer"), nullable=False),), primary_key=PrimaryKey(("id",)))
    audit = Table("log", columns=(Column("at", Type("datetime", timezone=True)),), schema="audit")
    view = ViewDef("user_names", "SELECT name FROM users", definitions=(("postgresql", "SELECT users.name FROM users"),))
    return Schema.of([users, teams, audit], [Sequence("order_seq", start=5)], {"view user_names": view})


def normalised(schema: Schema) -> dict[str, Table]:
    """The schema with the order of columns, indexes and constraints ignored."""

    def tidy(table: Table) -> Table:
        changes = {f.name: tuple(sorted(getattr(table, f.name), key=repr))
                   for f in fields(table) if f.name in ("columns", "indexes", "uniques", "foreign_keys", "checks")}
        return table.evolve(**changes)

    return {key: tidy(table) for key, table in schema.tables.items()}


SAMPLE_OPS: list[Operation] = [
    CreateTable(Table("tags", columns=(Column("label", Type("text")),), indexes=(Index("ix_tags", ("label",)),))),
    DropTable("teams"),
    DropTable("log", schema="audit"),
    RenameTable("users", "people"),
    RenameTable("log", "journal", schema="audit"),
    AlterTableComment("users", "people we know"),
    AlterTableComment("log", None, schema="audit"),
    AddColumn("users", Column("bio", Type("text"), comment="free text")),
    AddColumn("log", Column("who", Type("string", length=20), nullable=False, default="'system'"), schema="audit"),
    AddColumn("users", Column("score", Type("integer"), nullable=False), fill=0),
    AddColumn("users", Column("nick", Type("string", length=20), nullable=False), fill="it's \"me\""),
    AddColumn("users", Column("ok", Type("boolean"), nullable=False), fill=False),
    DropColumn("users", "age"),
    AlterColumn("users", "name", new=Column("name", Type("string", length=100), nullable=False)),
    RenameColumn("users", "email", "mail"),
    RenameColumn("users", "id", "user_id"),
    CreateIndex("users", Index("ix_users_email_name", ("email", "name"), unique=True, where="name IS NOT NULL")),
    CreateIndex("users", Index("ix_users_gin", ("name",), options=(
        ("mysql_length", (("name", 10),)), ("postgresql_include", ("email",)), ("postgresql_using", "gin"),
        ("postgresql_where", "name IS NOT NULL OR email IS NOT NULL"),
    ))),
    DropIndex("users", "ix_users_name"),
    DropIndex("users", "ix_users_lower"),
    RenameIndex("users", "ix_users_name", "ix_users_by_name"),
    RenameConstraint("users", "uq_users_email", "uq_email"),
    AddConstraint("users", CheckConstraint("length(name) > 0", name="ck_users_name")),
    AddConstraint("users", UniqueConstraint(("name", "team_id"))),
    AddConstraint("teams", ForeignKey(("id",), "users", ("id",), name="fk_teams_users", deferrable=True)),
    AddConstraint("log", PrimaryKey(("at",), name="pk_log"), schema="audit"),
    DropConstraint("users", "uq_users_email"),
    DropConstraint("users", "fk_users_team"),
    DropConstraint("users", "ck_users_age"),
    DropConstraint("users", "pk_users"),
    CreateSequence(Sequence("ticket_seq", schema="audit", start=10, increment=5)),
    DropSequence("order_seq"),
    AlterSequence("order_seq", new=Sequence("order_seq", start=5, maxvalue=100, cycle=True)),
    ExecuteSQL("UPDATE users SET name = 'x'", reverse="UPDATE users SET name = NULL"),
    Backfill("users", values={"name": "x", "age": None}, where="name IS NULL", batch_size=500, pause=0.1,
             reverse_values={"name": None}),
    RunPython(forward_step, reverse=backward_step),
    CreateObject(TriggerDef("users_touch", "users", "BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION t()",
                            only_on=("postgresql",))),
    DropObject("view", "user_names"),
    ReplaceObject(ViewDef("user_names", "SELECT name, email FROM users", materialized=True)),
    RenameObject("view", "user_names", "people_names"),
]


def test_sample_covers_every_operation_class() -> None:
    assert {type(op).__name__ for op in SAMPLE_OPS} == set(OPERATIONS)


@pytest.mark.parametrize("operation", SAMPLE_OPS, ids=lambda op: op.describe())
def test_resolved_operations_undo_themselves(operation: Operation) -> None:
    before = sample_schema()
    resolved = operation.resolve(before)
    after = resolved.apply(before)
    inverse = resolved.inverse()
    # a one-off fill for existing rows is not part of the schema: the way back and forth adds the bare column
    assert inverse.inverse() == (replace(resolved, fill=None) if isinstance(resolved, AddColumn) else resolved)
    assert normalised(inverse.apply(after)) == normalised(before)
    # the resolved operation and its inverse survive rendering
    assert evaluate(render_value(resolved), **STEPS) == resolved
    assert evaluate(render_value(inverse), **STEPS) == inverse


@SETTINGS
@given(data=st.data())
def test_generated_changes_undo_themselves(data: st.DataObject) -> None:
    before = sample_schema()
    table = data.draw(st.sampled_from(sorted(before.tables)))
    current = before.table(table)
    plain = [c.name for c in current.columns if not _constrained(current, c.name)]
    fresh = data.draw(names.filter(lambda n: not current.has_column(n)))
    candidates: list[Operation] = [
        AddColumn(current.name, data.draw(columns).evolve(name=fresh), schema=current.schema),
        RenameColumn(current.name, data.draw(st.sampled_from(current.column_names)), fresh, schema=current.schema),
        AlterColumn(current.name, current.columns[0].name, new=data.draw(columns).evolve(name=current.columns[0].name),
                    schema=current.schema),
        CreateIndex(current.name, Index(f"ix_{fresh}", (current.columns[0].name,), unique=data.draw(st.booleans())),
                    schema=current.schema),
        AddConstraint(current.name, data.draw(checks), schema=current.schema),
    ]
    if plain:
        candidates.append(DropColumn(current.name, data.draw(st.sampled_from(plain)), schema=current.schema))
    operation = data.draw(st.sampled_from(candidates))
    [resolved], after = resolve_all([operation], before)
    assert resolved.inverse().inverse() == resolved
    assert normalised(resolved.inverse().apply(after)) == normalised(before)


def _constrained(table: Table, column: str) -> bool:
    groups = [table.primary_key.columns if table.primary_key else ()]
    groups += [part.columns for part in (*table.indexes, *table.uniques, *table.foreign_keys)]
    return any(column in group for group in groups)


def test_unresolved_drops_cannot_be_inverted() -> None:
    from schemashift.errors import IrreversibleError

    with pytest.raises(IrreversibleError):
        DropColumn("users", "age").inverse()


def test_per_database_forms_render_and_load() -> None:
    """Per-database types, defaults and CHECKs render as keywords and load back equal; files without them load too."""
    column = Column(
        "body",
        Type("text", dialects=(("mysql", Type("text", variant="mediumtext")),)),
        default="gen_random_uuid()",
        defaults=(("sqlite", "(lower(hex(randomblob(16))))"), ("mysql", "(uuid())")),
    )
    check = CheckConstraint("flag IN (0, 1)", only_on=("sqlite", "mysql"))
    for value in (column, check):
        source = render_value(value)
        assert "dialects=" in source or "defaults=" in source or "only_on=" in source
        assert evaluate(source) == value
    assert evaluate('Column("a", Type("uuid"), default="x")') == Column("a", Type("uuid"), default="x")
    assert evaluate('CheckConstraint("a > 0")').only_on == ()
