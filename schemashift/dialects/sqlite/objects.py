"""SQLite views and triggers: read from ``sqlite_master``.

SQLite keeps the text of ``CREATE VIEW`` and ``CREATE TRIGGER`` as it was given,
so a definition reads back as it was declared (white space aside) and nothing
needs probing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift.dialects.objects import keyed
from schemashift.model.objects import SchemaObject, TriggerDef, ViewDef, squeeze

if TYPE_CHECKING:
    from schemashift.dialects.objects import ObjectDDL

_NAME = r"""(?:"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|\S+)"""
_VIEW = re.compile(rf"\s*CREATE\s+(?:TEMP(?:ORARY)?\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}\s+"
                   r"(?:\([^)]*\)\s*)?AS\s+(.*)", re.IGNORECASE | re.DOTALL)
_TRIGGER = re.compile(rf"\s*CREATE\s+(?:TEMP(?:ORARY)?\s+)?TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}\s+(.*)",
                      re.IGNORECASE | re.DOTALL)


def read(dialect: ObjectDDL, connection: sa.Connection, schemas: list[str | None]) -> dict[str, SchemaObject]:
    """The views and triggers of the main database (other schemas: attached databases, not read)."""
    found: list[SchemaObject] = []
    rows = connection.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('view', 'trigger') AND sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")
    for kind, name, table, sql in rows:
        match = (_VIEW if kind == "view" else _TRIGGER).match(sql)
        if match is None:
            continue
        body = squeeze(match.group(1))
        found.append(ViewDef(name, body) if kind == "view" else TriggerDef(name, table, body))
    return keyed(found)


def probe(dialect: ObjectDDL, connection: sa.Connection, objects: list[SchemaObject]) -> dict[str, SchemaObject]:
    """Nothing: SQLite keeps definitions as given (see the module docstring)."""
    return {}
