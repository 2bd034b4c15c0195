"""What the per-database ``catalog`` modules share (standard library only, like them).

A ``dialects/<name>/catalog.py`` module serves the fast path and the catalogue
fingerprint on a plain DB-API cursor, without SQLAlchemy. Each one defines:

* ``SUPPORTS_SCHEMAS``: whether an environment's ``schema`` can be read there;
* ``connect(target)``: a DB-API connection for a parsed URL (`Target`), raising on any doubt;
* ``QUOTE``: the identifier quote mark;
* ``PAIRS_SQL``: the server's digest of the version table's sorted ``revision checksum`` pairs, an
  aggregate SQL expression (None: reading the rows is cheap, the fast path digests them itself);
* ``prepare(cursor)``: session settings the aggregates need;
* ``use_schema(cursor, schema)``: make `schema` the session's current one;
* ``fingerprint_text(cursor, schemas, exclude)``: the catalogue facts of `schemas` as one text;
* ``PORTABLE_FINGERPRINT``: whether equal schemas in two databases have equal fingerprints (the facts name
  no object id or database), so that a drift check one passed holds for the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Prefix of the tables where schemashift keeps dropped data (left out of fingerprints).
BACKUP_PREFIX = "_schemashift_"
#: Seconds the fast path waits for a server.
CONNECT_TIMEOUT = 5


@dataclass
class Target:
    """A parsed database URL the fast path can use; `backend` is the registry name of its database."""

    backend: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    database: str | None = None
    query: dict[str, str] = field(default_factory=dict)


def quote(name: str, mark: str) -> str:
    """`name` quoted with `mark` (``"`` or a backtick), the mark doubled inside."""
    return mark + name.replace(mark, mark * 2) + mark


def qualified(table: str, schema: str | None, mark: str) -> str:
    """`table`, quoted, behind its quoted `schema` when there is one."""
    return quote(table, mark) if not schema else f"{quote(schema, mark)}.{quote(table, mark)}"


def server_digest(cursor: Any, sql: str, params: list[str]) -> str:
    """The one text value `sql` returns (a digest computed by the server), '' for none."""
    cursor.execute(sql, params)
    row = cursor.fetchone()
    value = row[0] if row else None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("ascii")
    return value or ""
