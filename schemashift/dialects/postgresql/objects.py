"""PostgreSQL views, functions, triggers, extensions and policies: reading and probing.

Definitions are read as PostgreSQL prints them (`pg_get_viewdef`, the body of
`pg_get_functiondef` after its first line, `pg_get_triggerdef` after the trigger's
name, `pg_policies` put back together); `probe` creates declared objects under
scratch names inside a transaction it rolls back and reads them the same way.
Objects that belong to an extension are not reported.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift.dialects.objects import keyed, probe_name
from schemashift.model.objects import (
    ExtensionDef,
    FunctionDef,
    PolicyDef,
    SchemaObject,
    TriggerDef,
    ViewDef,
    function_name,
    squeeze,
)
from schemashift.model.schema import Schema, qualify

if TYPE_CHECKING:
    from schemashift.dialects.objects import ObjectDDL

_EMPTY = Schema()

_NOT_EXTENSION = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')"

_VIEWS = f"""
SELECT n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY(:schemas) AND {_NOT_EXTENSION.format(oid="c.oid")}
"""

_FUNCTIONS = f"""
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind = 'f' AND n.nspname = ANY(:schemas) AND {_NOT_EXTENSION.format(oid="p.oid")}
"""

_TRIGGERS = """
SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND n.nspname = ANY(:schemas)
"""

_EXTENSIONS = """
SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname <> 'plpgsql'
"""

_POLICIES = """
SELECT schemaname, tablename, policyname, permissive, roles::text[], cmd, qual, with_check
FROM pg_policies WHERE schemaname = ANY(:schemas)
"""


def read(dialect: ObjectDDL, connection: sa.Connection, schemas: list[str | None]) -> dict[str, SchemaObject]:
    """The views, functions, triggers, extensions and policies of `schemas` (None: the default one)."""
    default = str(connection.exec_driver_sql("SELECT current_schema()").scalar())
    names = [name or default for name in schemas]

    def own(schema: str) -> str | None:
        return None if schema == default else schema

    params = {"schemas": names}
    found: list[SchemaObject] = []
    for schema, name, materialized, text in connection.execute(sa.text(_VIEWS), params):
        found.append(ViewDef(name, squeeze(text), schema=own(schema), materialized=bool(materialized)))
    for schema, name, arguments, text in connection.execute(sa.text(_FUNCTIONS), params):
        found.append(FunctionDef(f"{name}({arguments})", _function_body(text), schema=own(schema)))
    for schema, table, name, text in connection.execute(sa.text(_TRIGGERS), params):
        found.append(TriggerDef(name, qualify(table, own(schema)), _after_name(text, name)))
    for name, schema in connection.execute(sa.text(_EXTENSIONS)):
        found.append(ExtensionDef(name, schema=None if schema in (default, "public") else schema))
    for schema, table, name, *rest in connection.execute(sa.text(_POLICIES), params):
        found.append(PolicyDef(name, qualify(table, own(schema)), _policy_text(*rest)))
    return keyed(found)


def _function_body(text: str) -> str:
    """`pg_get_functiondef` without its first line (``CREATE OR REPLACE FUNCTION name(args)``)."""
    return squeeze(text.split("\n", 1)[1] if "\n" in text else "")


def _after_name(text: str, name: str) -> str:
    """`pg_get_triggerdef` after ``CREATE [CONSTRAINT] TRIGGER name``."""
    rest = text.split(" TRIGGER ", 1)[-1].lstrip()
    if rest.startswith('"'):
        end = rest.index('"', 1)
        while rest[end + 1:end + 2] == '"':
            end = rest.index('"', end + 2)
        return squeeze(rest[end + 1:])
    return squeeze(rest.split(None, 1)[1] if " " in rest else "")


def _policy_text(permissive: str, roles: list[str], cmd: str, qual: str | None, check: str | None) -> str:
    """A policy as ``AS PERMISSIVE FOR SELECT TO public USING (…) WITH CHECK (…)``."""
    parts = [f"AS {permissive} FOR {cmd} TO {', '.join(roles)}"]
    if qual is not None:
        parts.append(f"USING ({qual})")
    if check is not None:
        parts.append(f"WITH CHECK ({check})")
    return squeeze(" ".join(parts))


def probe(dialect: ObjectDDL, connection: sa.Connection, objects: list[SchemaObject]) -> dict[str, SchemaObject]:
    """`objects` as PostgreSQL writes them back: each created under a scratch name in a transaction rolled back."""
    outer = connection.begin_nested() if connection.in_transaction() else connection.begin()
    found: dict[str, SchemaObject] = {}
    try:
        for index, obj in enumerate(objects):
            text = _probe_one(dialect, connection, obj, probe_name(index))
            if text is not None:
                found[f"{obj.kind} {obj.key}"] = replace(obj, definition=text)  # type: ignore[type-var]
    finally:
        outer.rollback()
    return found


def _probe_one(dialect: ObjectDDL, connection: sa.Connection, obj: SchemaObject, scratch: str) -> str | None:
    """The text PostgreSQL makes of `obj` created as `scratch` (None when it cannot be created)."""
    savepoint = connection.begin_nested()
    try:
        text = _create_and_read(dialect, connection, obj, scratch)
    except sa.exc.DBAPIError:
        text = None
    savepoint.rollback()
    return text


def _create_and_read(dialect: ObjectDDL, connection: sa.Connection, obj: SchemaObject, scratch: str) -> str | None:
    run = connection.exec_driver_sql
    if isinstance(obj, ViewDef):
        [sql] = dialect.create_object_sql(replace(obj, name=scratch), _EMPTY)
        if obj.materialized:
            sql += " WITH NO DATA"
        run(sql)
        oid = dialect.table_name(scratch, obj.schema)
        return squeeze(str(run(f"SELECT pg_get_viewdef('{oid}'::regclass)").scalar()))
    if isinstance(obj, FunctionDef):
        signature = scratch + obj.signature[len(function_name(obj.signature)):]
        [sql] = dialect.create_object_sql(replace(obj, signature=signature), _EMPTY)
        run(sql)
        oid = dialect.function_name(replace(obj, signature=signature))
        text = run(f"SELECT pg_get_functiondef('{oid}'::regprocedure)").scalar()
        return _function_body(str(text))
    if isinstance(obj, TriggerDef):
        run(dialect.create_object_sql(replace(obj, name=scratch), _EMPTY)[0])
        text = run(f"SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = '{scratch}'").scalar()
        return _after_name(str(text), scratch)
    if isinstance(obj, PolicyDef):
        run(dialect.create_object_sql(replace(obj, name=scratch), _EMPTY)[-1])
        row = connection.execute(sa.text(
            "SELECT permissive, roles::text[], cmd, qual, with_check FROM pg_policies WHERE policyname = :name"),
            {"name": scratch}).one()
        return _policy_text(*row)
    return None

