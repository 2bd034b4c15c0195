"""Views, materialized views, functions, triggers, extensions and policies end to end, per database.

Each scenario runs the standard round trip (`features_cycle.roundtrip`): v1 up, v2 up,
diff clean after each upgrade, downgrade, upgrade again. Objects a database lacks
(functions on SQLite and MariaDB …) are declared `only_on` the databases that have them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import schemashift
from features_cycle import Cycle, kinds, roundtrip
from schemashift.autodetect.differ import diff
from schemashift.dialects import get_dialect
from schemashift.model.objects import TriggerDef, ViewDef
from schemashift.model.schema import Schema
from schemashift.operations import invert_all, resolve_all
from schemashift.operations.objects import (
    CreateObject,
    DropObject,
    RenameObject,
    ReplaceObject,
)
from schemashift.operations.render import render_value
from schemashift.sqla.from_metadata import from_metadata


@pytest.fixture
def cycle(fresh_db: str, tmp_path: Path) -> Cycle:
    return Cycle(tmp_path / "project", fresh_db)


#: A trigger keeping users.touched up to date, per database.
TOUCH = {
    "postgresql": "BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch()",
    "mysql": "BEFORE UPDATE ON users FOR EACH ROW SET NEW.touched = NEW.touched + 1",
    "sqlite": "AFTER UPDATE OF name ON users BEGIN UPDATE users SET touched = touched + 1 WHERE id = NEW.id; END",
}


def models(dialect: str, *, name_length: int = 50, view_filter: bool = True, trigger: bool = True,
           extra_view: bool = False) -> sa.MetaData:
    metadata = sa.MetaData()
    users = sa.Table(
        "users", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(name_length)),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("touched", sa.Integer, nullable=False, server_default="0"),
    )
    query = sa.select(users.c.id, users.c.name)
    schemashift.View("active_users", query.where(users.c.active) if view_filter else query, metadata=metadata)
    if extra_view:
        schemashift.View("active_names", "SELECT name FROM active_users", metadata=metadata)
    if dialect == "postgresql":
        schemashift.Function("touch()", "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                             "NEW.touched := NEW.touched + 1; RETURN NEW; END $$", metadata=metadata)
    if trigger:
        schemashift.Trigger("users_touch", "users", TOUCH[dialect], metadata=metadata, only_on=(dialect,))
    return metadata


def test_declarations_become_records_and_render() -> None:
    metadata = models("postgresql", extra_view=True)
    schema = from_metadata(metadata)
    assert set(schema.objects) == {"view active_users", "view active_names", "function touch()",
                                   "trigger users.users_touch"}
    operations = diff(Schema(), schema)
    assert kinds(operations) == ["CreateTable", "CreateObject", "CreateObject", "CreateObject", "CreateObject"]
    created = [op.object.key for op in operations if isinstance(op, CreateObject)]
    assert created == ["touch()", "active_users", "active_names", "users.users_touch"]
    namespace: dict[str, object] = {}
    exec("from schemashift.migration import *", namespace)
    assert eval(render_value(operations), namespace) == operations
    resolved, _ = resolve_all(operations, Schema())
    assert [type(op).__name__ for op in invert_all(resolved)][:4] == ["DropObject"] * 4


def test_column_change_under_view_goes_around_it() -> None:
    old, new = from_metadata(models("sqlite")), from_metadata(models("sqlite", name_length=100))
    assert kinds(diff(old, new)) == ["DropObject", "AlterColumn", "CreateObject"]
    changed = from_metadata(models("sqlite", view_filter=False))
    assert kinds(diff(old, changed)) == ["ReplaceObject"]


def test_missing_kinds_compile_to_nothing() -> None:
    function = from_metadata(models("postgresql")).objects["function touch()"]
    for name in ("sqlite", "mysql"):
        assert get_dialect(name).compile(CreateObject(function), Schema(), Schema()) == []
    assert get_dialect("postgresql").compile(CreateObject(function), Schema(), Schema())[0].startswith(
        "CREATE OR REPLACE FUNCTION touch()")


def test_views_and_triggers_round_trip(cycle: Cycle) -> None:
    dialect = cycle.dialect
    v1 = models(dialect)
    v2 = models(dialect, name_length=100, view_filter=False, extra_view=True)

    def touches() -> None:
        cycle.run("INSERT INTO users (id, name) VALUES (1, 'a')", "UPDATE users SET name = 'b' WHERE id = 1")
        assert cycle.rows("SELECT touched FROM users") == [(1,)]
        assert cycle.rows("SELECT id, name FROM active_users") == [(1, "b")]

    operations = roundtrip(cycle, v1, v2, at_v1=touches)
    assert "AlterColumn" in kinds(operations)
    assert cycle.rows("SELECT name FROM active_names") == [("b",)]
    v3 = models(dialect, name_length=100, view_filter=False, extra_view=True, trigger=False)
    dropped = cycle.generate(v3, "drop trigger")
    assert [op.describe() for op in dropped] == ["drop trigger users.users_touch"]
    cycle.upgrade()
    assert cycle.diff(v3) == []
    touched = cycle.rows("SELECT touched FROM users")
    cycle.run("UPDATE users SET name = 'c' WHERE id = 1")
    assert cycle.rows("SELECT touched FROM users") == touched


def test_live_drift_is_reported(cycle: Cycle) -> None:
    v1 = models(cycle.dialect)
    cycle.generate(v1, "v1")
    cycle.upgrade()
    cycle.run("DROP VIEW active_users", "CREATE VIEW active_users AS SELECT id FROM users")
    assert cycle.diff(v1) == ["  - view active_users differs from the models"]
    cycle.run("CREATE VIEW by_hand AS SELECT id FROM users")
    assert "  - the database has view by_hand that the models do not" in cycle.diff(v1)  # views are managed here: an undeclared one is drift
    plain = sa.MetaData()
    for table in v1.tables.values():
        table.to_metadata(plain)
    assert not any("view" in line for line in cycle.diff(plain))  # a project declaring no views manages none


def test_postgresql_objects(cycle: Cycle) -> None:
    if cycle.dialect != "postgresql":
        pytest.skip("extensions, materialized views and policies are PostgreSQL's")

    def v(*, policy: str, matview: str) -> sa.MetaData:
        metadata = models("postgresql")
        schemashift.Extension("citext", metadata=metadata)
        schemashift.View("user_counts", matview, metadata=metadata, materialized=True)
        schemashift.Policy("own_rows", "users", policy, metadata=metadata)
        return metadata

    v1 = v(policy="FOR SELECT USING (active)", matview="SELECT count(*) AS n FROM users")
    v2 = v(policy="FOR ALL USING (id > 0)", matview="SELECT count(*) AS n, max(id) AS top FROM users")
    operations = roundtrip(cycle, v1, v2)
    assert {op.describe() for op in operations} == {"replace materialized view user_counts",
                                                    "replace policy users.own_rows"}
    assert cycle.rows("SELECT relrowsecurity FROM pg_class WHERE relname = 'users'") == [(True,)]
    assert cycle.rows("SELECT extname FROM pg_extension WHERE extname = 'citext'") == [("citext",)]
    cycle.downgrade("base")
    assert cycle.rows("SELECT count(*) FROM pg_extension WHERE extname = 'citext'") == [(0,)]


def test_baseline_keeps_objects() -> None:
    live = Schema(objects={"view v": ViewDef("v", "SELECT 1"), "trigger t.x": TriggerDef("x", "t", "AFTER INSERT")})
    operations = diff(Schema(), live)
    assert all(isinstance(op, CreateObject) for op in operations)
    assert isinstance(DropObject("view", "v").resolve(live), DropObject)
    replaced = ReplaceObject(ViewDef("v", "SELECT 2")).resolve(live)
    assert replaced.inverse() == ReplaceObject(ViewDef("v", "SELECT 1"), ViewDef("v", "SELECT 2"))


def test_baseline_reads_objects_and_adopts_the_models(cycle: Cycle) -> None:
    from schemashift import api

    dialect = cycle.dialect
    metadata = models(dialect)
    engine = sa.create_engine(cycle.url)
    models(dialect).create_all(engine)  # the tables only
    engine.dispose()
    schema = from_metadata(metadata)
    target = get_dialect(dialect)
    statements = [sql for op in diff(Schema(), schema) if isinstance(op, CreateObject)
                  for sql in target.compile(op, schema, schema)]
    cycle.run(*statements)
    cycle.use(metadata)
    api.baseline(cycle.project, "baseline", out=cycle.output.append)
    cycle.project._history = None
    assert api.pending_operations(cycle.project, no_rename=True) == []
    assert cycle.diff(metadata) == []
    written = cycle.project.history().get(cycle.project.history().head)
    assert sum(isinstance(op, CreateObject) for op in written.operations) == len(schema.objects)


def test_generate_notes_the_databases_without_an_object() -> None:
    from schemashift.autodetect.objects import object_notes

    operations = diff(Schema(), from_metadata(models("postgresql")))
    databases = [(name, get_dialect(name)) for name in ("postgresql", "sqlite", "mysql")]
    assert object_notes(operations, databases) == [
        "not created on sqlite, mysql (not available there): function touch(), trigger users.users_touch"]


def test_fingerprint_sees_objects(fresh_db: str, backend: str) -> None:
    from schemashift.runtime.fingerprint import fingerprint

    def value() -> str:
        engine = sa.create_engine(fresh_db, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    return fingerprint(cursor, conn.dialect.name, [None], ["schemashift_version"])
                finally:
                    cursor.close()
        finally:
            engine.dispose()

    seen = [value()]

    def changed(*statements: str) -> None:
        engine = sa.create_engine(fresh_db, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()
        seen.append(value())
        assert seen[-1] not in seen[:-1], statements

    changed("CREATE TABLE fp (id INTEGER PRIMARY KEY, n INTEGER)")
    changed("CREATE VIEW fp_v AS SELECT id FROM fp")
    changed("DROP VIEW fp_v", "CREATE VIEW fp_v AS SELECT id FROM fp WHERE id > 1")
    trigger = TOUCH[backend].replace("users", "fp").replace("touched", "n").replace("OF name ", "")
    if backend == "postgresql":
        changed("CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$")
        changed("CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "NEW.n := 1; RETURN NEW; END $$")
        changed("ALTER TABLE fp ENABLE ROW LEVEL SECURITY", "CREATE POLICY p ON fp FOR SELECT USING (id > 0)")
        changed("DROP POLICY p ON fp", "CREATE POLICY p ON fp FOR SELECT USING (id > 1)")
        changed("CREATE EXTENSION IF NOT EXISTS citext")
    changed(f"CREATE TRIGGER fp_t {trigger}")
    other = trigger.replace("BEFORE", "AFTER") if backend == "postgresql" else trigger.replace("+ 1", "+ 2")
    changed("DROP TRIGGER fp_t" + (" ON fp" if backend == "postgresql" else ""), f"CREATE TRIGGER fp_t {other}")


def test_exclude_patterns_and_hook_leave_objects_out() -> None:
    from schemashift.autodetect.filters import ObjectFilter

    schema = from_metadata(models("postgresql", extra_view=True))
    kept = ObjectFilter(("active_n*",)).apply(schema, reflected=False)
    assert "view active_names" not in kept.objects and "view active_users" in kept.objects
    no_functions = ObjectFilter((), lambda obj, name, kind, reflected, other: kind != "function")
    assert "function touch()" not in no_functions.apply(schema, reflected=True).objects


def test_erd_draws_views() -> None:
    from schemashift.services.erd import dot, mermaid

    schema = from_metadata(models("postgresql", extra_view=True))
    assert 'active_names }o..o{ active_users : "uses"' in mermaid(schema)
    assert '"active_users" -> "users" [style=dashed, label="uses"];' in dot(schema)


def test_postgresql_objects_in_another_schema(cycle: Cycle) -> None:
    if cycle.dialect != "postgresql":
        pytest.skip("schemas are PostgreSQL's")

    def v(where: str) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table("item", metadata, sa.Column("id", sa.Integer, primary_key=True), schema="stock")
        schemashift.View("big_items", f"SELECT id FROM stock.item WHERE {where}", metadata=metadata, schema="stock")
        schemashift.Function("double_it(integer)", "RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT $1 * 2 $$",
                             metadata=metadata, schema="stock")
        return metadata

    operations = roundtrip(cycle, v("id > 10"), v("id > 20"))
    assert [op.describe() for op in operations] == ["replace view stock.big_items"]


def test_renames(cycle: Cycle) -> None:
    dialect = cycle.dialect

    def v(renamed: bool) -> sa.MetaData:
        metadata = sa.MetaData()
        users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True),
                         sa.Column("touched", sa.Integer, nullable=False, server_default="0"))
        hint = {"renamed_from": "active_users"} if renamed else {}
        schemashift.View("live_users" if renamed else "active_users", sa.select(users.c.id), metadata=metadata, **hint)
        function = "bump" if renamed else "touch"
        if dialect == "postgresql":
            schemashift.Function(f"{function}()", "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                                 "NEW.touched := NEW.touched + 1; RETURN NEW; END $$", metadata=metadata,
                                 renamed_from="touch" if renamed else None)
        body = TOUCH[dialect].replace("touch()", f"{function}()").replace("OF name ", "")
        schemashift.Trigger("users_bump" if renamed else "users_touch", "users", body, metadata=metadata,
                            only_on=(dialect,), renamed_from="users_touch" if renamed else None)
        return metadata

    operations = roundtrip(cycle, v(False), v(True))
    renames = [op.describe() for op in operations if isinstance(op, RenameObject)]
    assert "rename view active_users to live_users" in renames
    assert "rename trigger users.users_touch to users_bump" in renames
    if dialect == "postgresql":
        assert "rename function touch() to bump" in renames
    assert cycle.rows("SELECT count(*) FROM live_users") == [(0,)]


def test_lint_concurrent_refresh_needs_a_unique_index() -> None:
    pytest.importorskip("pglast")
    from schemashift.planning.lint import sql_codes

    assert sql_codes("REFRESH MATERIALIZED VIEW CONCURRENTLY user_counts") == ["SS210"]
    assert sql_codes("CREATE UNIQUE INDEX CONCURRENTLY ux_counts ON user_counts (n); "
                     "REFRESH MATERIALIZED VIEW CONCURRENTLY user_counts") == []
    assert sql_codes("REFRESH MATERIALIZED VIEW user_counts") == []


def test_one_trigger_declared_per_database_is_one_record() -> None:
    metadata = sa.MetaData()
    sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True))
    for dialect, body in TOUCH.items():
        schemashift.Trigger("users_touch", "users", body, metadata=metadata, only_on=(dialect,))
    [trigger] = from_metadata(metadata).objects.values()
    assert set(trigger.only_on) == set(TOUCH)
    for dialect, body in TOUCH.items():
        [sql] = get_dialect(dialect).compile(CreateObject(trigger), Schema(), Schema())
        assert sql == f"CREATE TRIGGER users_touch {body}"


class ProbeCounter:
    """Counts the statements that create probe objects (`PROBE_PREFIX`), on every engine, while installed."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        from schemashift.dialects.objects import PROBE_PREFIX

        if statement.lstrip().upper().startswith("CREATE") and PROBE_PREFIX in statement:
            self.count += 1

    def __enter__(self) -> ProbeCounter:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", self)


def remembered_rows(cycle: Cycle) -> dict[str, tuple[str, str]]:
    from schemashift.dialects.objects import TEXTS_TABLE

    engine = sa.create_engine(cycle.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(TEXTS_TABLE):
                return {}
            return {key: (a, b) for key, a, b in connection.exec_driver_sql(
                f"SELECT object, declared, live FROM {TEXTS_TABLE}")}
    finally:
        engine.dispose()


def test_upgrade_remembers_texts_so_diff_probes_nothing(cycle: Cycle) -> None:
    v1 = models(cycle.dialect, extra_view=True)
    cycle.generate(v1, "v1")
    with ProbeCounter() as upgrade_probes:
        cycle.upgrade()
    rows = remembered_rows(cycle)
    if cycle.dialect != "sqlite":  # SQLite keeps the text as given: nothing to remember
        assert "view active_names" in rows  # written back in the database's own words
    with ProbeCounter() as probes:
        assert cycle.diff(v1) == []
    assert probes.count == 0
    assert upgrade_probes.count == 0  # the drift check after the upgrade used the remembered texts too
    v2 = models(cycle.dialect, extra_view=True, view_filter=False)
    cycle.generate(v2, "v2")
    cycle.upgrade()
    with ProbeCounter() as probes:
        assert cycle.diff(v2) == []
        cycle.downgrade("-1")
        assert cycle.diff(v1) == []
    assert probes.count == 0
    assert remembered_rows(cycle) == rows
    cycle.downgrade("base")  # the remembering table stays: not a table the next upgrade from base refuses
    cycle.upgrade()
    assert cycle.diff(v2) == []


def test_object_changed_by_hand_is_probed_and_reported(cycle: Cycle) -> None:
    v1 = models(cycle.dialect)
    cycle.generate(v1, "v1")
    cycle.upgrade()
    assert cycle.diff(v1) == []
    view = from_metadata(v1).objects["view active_users"].on(cycle.dialect)
    cycle.run("DROP VIEW active_users", "CREATE VIEW active_users AS SELECT id, name FROM users")
    assert cycle.diff(v1) == ["  - view active_users differs from the models"]
    cycle.run("DROP VIEW active_users", f"CREATE VIEW active_users AS {view.definition}")  # by hand, as declared
    with ProbeCounter() as probes:
        assert cycle.diff(v1) == []
    if cycle.dialect != "sqlite":
        assert probes.count == 0  # written back as remembered: the pair of hashes still holds


class YesPrompter:
    """A prompter whose questioner says yes to every rename and records the questions."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str]] = []

    def can_ask(self) -> bool:
        return True

    def ask(self, question: str) -> str:
        return "y"

    def questioner(self) -> YesPrompter:
        return self

    def ask_rename(self, kind: str, old: str, new: str) -> bool | None:
        self.asked.append((kind, old, new))
        return True

    def ask_fill(self, column: str, type_text: str, convert: object) -> None:
        return None


def test_renames_are_guessed_from_equal_definitions(cycle: Cycle) -> None:
    from schemashift import api
    from schemashift.autodetect.differ import RenameUndecided

    dialect = cycle.dialect

    def v(renamed: bool) -> sa.MetaData:
        metadata = sa.MetaData()
        users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True),
                         sa.Column("name", sa.String(40)),
                         sa.Column("touched", sa.Integer, nullable=False, server_default="0"))
        schemashift.View("live_users" if renamed else "active_users", sa.select(users.c.id), metadata=metadata)
        schemashift.View("names", "SELECT name FROM users", metadata=metadata)  # unchanged: never asked about
        function = "bump" if renamed else "touch"
        if dialect == "postgresql":
            schemashift.Function(f"{function}()", "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                                 "NEW.touched := NEW.touched + 1; RETURN NEW; END $$", metadata=metadata)
        body = TOUCH[dialect].replace("touch()", f"{function}()")
        schemashift.Trigger("users_bump" if renamed else "users_touch", "users", body, metadata=metadata,
                            only_on=(dialect,))
        return metadata

    v1, v2 = v(False), v(True)
    cycle.generate(v1, "v1")
    cycle.upgrade()
    cycle.use(v2)
    with pytest.raises(RenameUndecided, match="renamed_from="):
        api.generate(cycle.project, "v2", out=cycle.output.append)
    prompter = YesPrompter()
    operations = cycle.generate(v2, "v2", interactive=True, prompter=prompter)
    renames = [op.describe() for op in operations if isinstance(op, RenameObject)]
    expected = ["rename view active_users to live_users", "rename trigger users.users_touch to users_bump"]
    if dialect == "postgresql":
        expected.insert(0, "rename function touch() to bump")
    assert renames == expected
    assert kinds(operations) == ["RenameObject"] * len(expected)
    assert ("view", "view active_users", "live_users") in prompter.asked
    cycle.upgrade()
    assert cycle.diff(v2) == []
    cycle.run("INSERT INTO users (id, name) VALUES (1, 'a')", "UPDATE users SET name = 'b' WHERE id = 1")
    assert cycle.rows("SELECT touched FROM users") == [(1,)]
    assert cycle.rows("SELECT id FROM live_users") == [(1,)]
    cycle.downgrade("-1")
    assert cycle.diff(v1) == []
    cycle.upgrade()
    assert cycle.diff(v2) == []
    dropped = cycle.generate(v(False), "back", no_rename=True)
    assert sorted(kinds(dropped)) == sorted(["DropObject", "CreateObject"] * len(expected))
