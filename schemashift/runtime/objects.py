"""After a run: remember how the database wrote the views, functions and triggers the run made.

A database rewrites a definition in its own words (PostgreSQL's ``pg_get_viewdef``,
MariaDB's ``VIEW_DEFINITION``), so comparing the models with it needs the
database's text of each declared object. Rather than probe every one on each
`diff` (create it under a scratch name and read it back), the objects a finished
plan created, replaced or changed are read back once here and their pair of hashes
kept (`schemashift.dialects.objects.remember_texts`); `diff` then probes only
objects changed outside schemashift. Best effort: a failure only leaves the probes
in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift.dialects.objects import remember_texts
from schemashift.model.objects import object_key
from schemashift.operations.objects import CreateObject, ReplaceObject

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect
    from schemashift.model.schema import Schema
    from schemashift.planning.plan import Plan


def touched_objects(plan: Plan) -> set[str]:
    """Keys of the objects `plan` creates or replaces, or whose definition it changes (a rename included)."""
    keys: set[str] = set()
    for step in plan.steps:
        for op in step.operations:
            if isinstance(op, CreateObject):
                keys.add(object_key(op.object))
            elif isinstance(op, ReplaceObject):
                keys.add(object_key(op.new))
        before = step.before.objects
        keys.update(key for key, obj in step.after.objects.items() if before.get(key) != obj)
    return keys


def remember_objects(connection: sa.Connection, plan: Plan) -> int:
    """Remember the database's text of the objects `plan` (just run in full) touched; returns how many rows."""
    if plan.empty:
        return 0
    return _remember(connection, plan.dialect, touched_objects(plan), plan.steps[-1].after)


def remember_built_objects(connection: sa.Connection, dialect: Dialect, schema: Schema) -> int:
    """Remember the database's text of every object of `schema`, just built on an empty database (a fresh build)."""
    return _remember(connection, dialect, set(schema.objects), schema)


def _remember(connection: sa.Connection, dialect: Dialect, keys: set[str], schema: Schema) -> int:
    """`remember_texts` for `keys`, best effort: a database error leaves the probes in place (0 rows)."""
    if not keys:
        return 0
    try:
        return remember_texts(dialect, connection, keys, schema)
    except sa.exc.DBAPIError:
        if connection.in_transaction():
            connection.rollback()
        return 0
