"""MySQL and MariaDB views and triggers: read from ``information_schema``, probed with scratch objects.

A view reads back as the server rewrites it (``VIEWS.VIEW_DEFINITION``); a trigger
as ``<timing> <event> ON <table> FOR EACH ROW <statement>`` from ``TRIGGERS``.
DDL commits at once here, so `probe` creates each declared object under a scratch
name, reads it and drops it again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift.dialects.objects import PROBE_PREFIX, keyed, probe_name
from schemashift.model.objects import SchemaObject, TriggerDef, ViewDef, squeeze
from schemashift.model.schema import Schema, qualify

if TYPE_CHECKING:
    from schemashift.dialects.objects import ObjectDDL

_VIEWS = "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN :schemas"
_TRIGGERS = (
    "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT "
    "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN :schemas"
)


def read(dialect: ObjectDDL, connection: sa.Connection, schemas: list[str | None],
         prefix: str | None = None) -> dict[str, SchemaObject]:
    """The views and triggers of `schemas` (None: the current database); only those named `prefix…` when given."""
    current = str(connection.exec_driver_sql("SELECT DATABASE()").scalar())
    names = tuple(schema or current for schema in schemas)

    def own(schema: str) -> str | None:
        return None if schema == current else schema

    found: list[SchemaObject] = []
    pattern = None if prefix is None else prefix.replace("_", "\\_") + "%"
    params = {"schemas": names, "pattern": pattern}
    for schema, view, text in connection.execute(_query(_VIEWS, "TABLE_NAME", pattern), params):
        found.append(ViewDef(view, _unqualified(squeeze(text), current), schema=own(schema)))
    triggers = connection.execute(_query(_TRIGGERS, "TRIGGER_NAME", pattern), params)
    for schema, trigger, table, timing, event, statement in triggers:
        body = f"{timing} {event} ON {dialect.quote(table)} FOR EACH ROW {squeeze(statement)}"
        found.append(TriggerDef(trigger, qualify(table, own(schema)), body))
    return keyed(found)


def _query(sql: str, column: str, pattern: str | None) -> sa.TextClause:
    """`sql` for the schemas given (expanding), narrowed to the names `LIKE` `pattern` when given."""
    text = sql + (f" AND {column} LIKE :pattern" if pattern is not None else "")
    return sa.text(text).bindparams(sa.bindparam("schemas", expanding=True))


def _unqualified(text: str, database: str) -> str:
    """A view's text without the current database's name before its tables and columns."""
    return text.replace(f"`{database}`.", "")


def probe(dialect: ObjectDDL, connection: sa.Connection, objects: list[SchemaObject]) -> dict[str, SchemaObject]:
    """`objects` as the server writes them back: all created under scratch names, read at once, dropped."""
    if connection.in_transaction():
        connection.commit()
    created: list[tuple[SchemaObject, SchemaObject]] = []
    try:
        for index, obj in enumerate(objects):
            scratch = _created(dialect, connection, obj, probe_name(index))
            if scratch is not None:
                created.append((obj, scratch))
        schemas = sorted({getattr(obj, "schema", None) for obj, _ in created}, key=lambda name: name or "")
        read_back = read(dialect, connection, list(schemas), PROBE_PREFIX) if created else {}
    finally:
        _drop_all(dialect, connection, [scratch for _, scratch in created])
        connection.commit()
    found: dict[str, SchemaObject] = {}
    for obj, scratch in created:
        text = read_back.get(f"{obj.kind} {scratch.key}")
        if text is not None:
            found[f"{obj.kind} {obj.key}"] = replace(obj, definition=text.definition)  # type: ignore[type-var]
    return found


def _drop_all(dialect: ObjectDDL, connection: sa.Connection, scratches: list[SchemaObject]) -> None:
    """Drop the scratch objects: the views in one ``DROP VIEW``, the triggers one by one."""
    views = [dialect.table_name(obj.name, getattr(obj, "schema", None)) for obj in scratches if obj.kind == "view"]
    if views:
        connection.exec_driver_sql(f"DROP VIEW {', '.join(views)}")
    for obj in scratches:
        if obj.kind != "view":
            connection.exec_driver_sql(dialect.drop_object_sql(obj, Schema())[0])


def _created(dialect: ObjectDDL, connection: sa.Connection, obj: SchemaObject, name: str) -> SchemaObject | None:
    """`obj` created as `name` (None when it is not a view or trigger, or cannot be created)."""
    if not isinstance(obj, (ViewDef, TriggerDef)):
        return None
    scratch = replace(obj, name=name)
    try:
        connection.exec_driver_sql(dialect.create_object_sql(scratch, Schema())[0])
    except sa.exc.DBAPIError:
        connection.rollback()
        return None
    return scratch
