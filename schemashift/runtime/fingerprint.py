"""Catalog fingerprints: one hash of every catalog fact of the user's tables, in one query per backend.

The fast `status` compares the live fingerprint with the one stored (in the
version table) when the full drift check last found the live schema matching
the migrations; equal fingerprints mean nothing in the catalog changed since.
The queries read what the differ can see and more (columns with their types,
nullability, defaults, identity and generated expressions, collations and
comments; constraints; indexes; sequences; enum labels; views, functions, triggers, row-level-security
policies and extensions), never data or
statistics, and skip schemashift's own tables (the version and history tables
and ``_schemashift_*`` backups). Any extra fact only makes the fast path fall
back to the full check more often, never report a false match. Which facts each
database gives is told in its catalog module.

Each database's query lives in its light ``dialects/<name>/catalog.py``, found
through the registry (`schemashift.dialects.registry`). The code runs on a plain
DB-API cursor (sqlite3, psycopg, pymysql, or the tiny libpq cursor of
`schemashift.support.libpq`) so both paths compute the same value; it imports only
the standard library.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from schemashift.dialects.registry import database

#: Version of the fingerprint recipe: a stored value of another version never matches.
VERSION = "4"


def fingerprint(cursor: Any, backend: str, schemas: Sequence[str | None], exclude: Sequence[str]) -> str:
    """sha256 hex of the catalog facts of `schemas` (None: the session's current schema) on `backend`.

    `backend` is a database's name in the registry (``sqlite``, ``postgresql``,
    ``mysql``, ``mariadb``); `exclude` names tables to leave out besides
    ``_schemashift_*``. ValueError for a database without a catalog module.
    """
    entry = database(backend)
    if entry is None:
        raise ValueError(f"no catalog fingerprint for {backend!r}")
    text = entry.catalog().fingerprint_text(cursor, schemas, exclude)
    scope = json.dumps([backend, VERSION, list(schemas), sorted(exclude)])
    return hashlib.sha256(f"{scope}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()


#: A DB-API paramstyle's placeholder for parameter `n` (1-based).
_MARKS = {"qmark": "?", "numeric": ":{n}", "numeric_dollar": "${n}", "named": ":p{n}"}


class FormatCursor:
    """A DB-API cursor that takes the catalog modules' ``%s`` placeholders whatever the driver's `paramstyle`
    (asyncpg through SQLAlchemy: ``$1``; sqlite3: ``?``); `fetchone` and `close` pass through."""

    def __init__(self, cursor: Any, paramstyle: str) -> None:
        self.cursor = cursor
        self.paramstyle = paramstyle

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if not params or self.paramstyle in ("format", "pyformat"):
            return self.cursor.execute(sql, params)
        parts = sql.split("%s")
        marks = [_MARKS[self.paramstyle].format(n=number) for number in range(1, len(parts))]
        sql = parts[0] + "".join(mark + part for mark, part in zip(marks, parts[1:], strict=True))
        if self.paramstyle == "named":
            return self.cursor.execute(sql, {f"p{number}": value for number, value in enumerate(params, start=1)})
        return self.cursor.execute(sql, params)

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchall(self) -> Any:
        return self.cursor.fetchall()

    def close(self) -> None:
        self.cursor.close()


def portable(backend: str) -> bool:
    """True when equal schemas in two databases of `backend` have equal fingerprints (its catalog module says)."""
    entry = database(backend)
    return entry is not None and bool(getattr(entry.catalog(), "PORTABLE_FINGERPRINT", False))


def stored_value(digest: str, extra_schemas: Sequence[str]) -> str:
    """What the version table keeps: the digest, then the other schemas it covers (JSON) when there are any."""
    if not extra_schemas:
        return digest
    return f"{digest} {json.dumps(list(extra_schemas), separators=(',', ':'))}"


def parse_stored(value: str | None) -> tuple[str, list[str]] | None:
    """(digest, extra schemas) of a stored value; None when there is none or it is not readable."""
    if not value:
        return None
    digest, _, rest = value.partition(" ")
    try:
        extra = json.loads(rest) if rest else []
    except ValueError:
        return None
    if len(digest) != 64 or not isinstance(extra, list) or not all(isinstance(name, str) for name in extra):
        return None
    return digest, extra
