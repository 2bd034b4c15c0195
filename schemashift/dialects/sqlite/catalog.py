"""SQLite's catalogue on a plain sqlite3 cursor: fingerprint and fast-path facts.

The fingerprint's facts are the ``sqlite_master`` rows (the stored SQL of every
table, index, view and trigger). The fast path opens the file read-only; reading
the version table's rows is cheap here, so it digests them itself. Standard library only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from schemashift.dialects.catalog import BACKUP_PREFIX, CONNECT_TIMEOUT, Target, quote

SUPPORTS_SCHEMAS = False
#: The fingerprint of a schema is the same in every database holding it (the stored SQL names no file).
PORTABLE_FINGERPRINT = True
QUOTE = '"'
PAIRS_SQL = None
_PLAIN = re.compile(r"[A-Za-z0-9_./~-]*")


def connect(target: Target) -> Any:
    """A read-only sqlite3 connection to the file `target` names; ValueError for anything but a plain file."""
    import sqlite3

    database = target.database
    if target.query or not database or database == ":memory:" or database.startswith("file:"):
        raise ValueError("not a plain SQLite file")
    if not _PLAIN.fullmatch(database):
        from urllib.parse import quote as url_quote

        database = url_quote(database)
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=CONNECT_TIMEOUT)


def prepare(cursor: Any) -> None:
    """Nothing: the rows are read, not aggregated."""


def use_schema(cursor: Any, schema: str) -> None:
    """Not supported: an environment's schema is PostgreSQL's."""
    raise ValueError("schemas are not read on this database")


def fingerprint_text(cursor: Any, schemas: Sequence[str | None], exclude: Sequence[str]) -> str:
    """The sorted ``sqlite_master`` rows of `schemas` (None: ``main``), one JSON line each."""
    skipped = set(exclude)
    lines: list[str] = []
    for schema in schemas:
        prefix = "main" if schema is None else quote(schema, QUOTE)
        cursor.execute(f"SELECT type, name, tbl_name, sql FROM {prefix}.sqlite_master")
        for kind, name, table, sql in cursor.fetchall():
            if name.startswith("sqlite_") or table in skipped or table.startswith(BACKUP_PREFIX):
                continue
            lines.append(json.dumps([schema, kind, name, table, sql]))
    lines.sort()
    return "\n".join(lines)
