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

from schemashift.dialects.objects import keyed, probe_name
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
         name: str | None = None) -> dict[str, SchemaObject]:
    """The views and triggers of `schemas` (None: the current database); only those called `name` when given."""
    current = str(connection.exec_driver_sql("SELECT DATABASE()").scalar())
    names = tuple(schema or current for schema in schemas)

    def own(schema: str) -> str | None:
        return None if schema == current else schema

    found: list[SchemaObject] = []
    params = {"schemas": names, "name": name}
    for schema, view, text in connection.execute(_query(_VIEWS, "TABLE_NAME", name), params):
        found.append(ViewDef(view, _unqualified(squeeze(text), current), schema=own(schema)))
    for schema, trigger, table, timing, event, statement in connection.execute(_query(_TRIGGERS, "TRIGGER_NAME", name),
                                                                                 params):
        body = f"{timing} {event} ON {dialect.quote(table)} FOR EACH ROW {squeeze(statement)}"
        found.append(TriggerDef(trigger, qualify(table, own(schema)), body))
    return keyed(found)


def _query(sql: str, column: str, name: str | None) -> sa.TextClause:
    """`sql` for the schemas given (expanding), narrowed to one object `name` when given."""
    text = sql + (f" AND {column} = :name" if name is not None else "")
    return sa.text(text).bindparams(sa.bindparam("schemas", expanding=True))


def _unqualified(text: str, database: str) -> str:
    """A view's text without the current database's name before its tables and columns."""
    return text.replace(f"`{database}`.", "")


def probe(dialect: ObjectDDL, connection: sa.Connection, objects: list[SchemaObject]) -> dict[str, SchemaObject]:
    """`objects` as the server writes them back: each created under a scratch name, read, dropped."""
    found: dict[str, SchemaObject] = {}
    if connection.in_transaction():
        connection.commit()
    for index, obj in enumerate(objects):
        if not isinstance(obj, (ViewDef, TriggerDef)):
            continue
        scratch = replace(obj, name=probe_name(index))
        try:
            connection.exec_driver_sql(dialect.create_object_sql(scratch, Schema())[0])
        except sa.exc.DBAPIError:
            connection.rollback()
            continue
        try:
            read_back = read(dialect, connection, [getattr(obj, "schema", None)], scratch.name)
        finally:
            connection.exec_driver_sql(dialect.drop_object_sql(scratch, Schema())[0])
            connection.commit()
        text = read_back.get(f"{obj.kind} {scratch.key}")
        if text is not None:
            found[f"{obj.kind} {obj.key}"] = replace(obj, definition=text.definition)
    return found
