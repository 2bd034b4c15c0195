"""A minimal PostgreSQL client over libpq through ctypes, for the fast paths only.

Importing psycopg costs more than the whole budget of a fast `status`, so the
fast path talks to libpq itself: the very library psycopg uses (the copy bundled
with psycopg[binary] first, else the system's), hence the same connection
options, ``.pgpass``, ``PG*`` variables, SSL and authentication. It offers just
a DB-API-like cursor (`execute` with ``%s`` parameters sent as text, `fetchone`,
`fetchall`; every value a `str` or None). Any failure raises `PQError`, which
the fast path takes as "use the full path".
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_CONNECTION_OK = 0
_COMMAND_OK, _TUPLES_OK = 1, 2


class PQError(Exception):
    """libpq is missing, or it reported an error."""


_library: ctypes.CDLL | None = None


def _candidates() -> list[str]:
    """libpq files to try: psycopg[binary]'s bundled copy, then the system's."""
    found: list[str] = []
    for entry in sys.path:
        base = Path(entry or ".")
        for folder in (base / "psycopg_binary.libs", base / "psycopg_binary" / ".dylibs"):
            if folder.is_dir():
                found.extend(str(path) for path in sorted(folder.glob("libpq*")))
    found.extend(["libpq.so.5", "libpq.5.dylib", "libpq.dylib", "libpq.dll", "libpq.so"])
    return found


def _load() -> ctypes.CDLL:
    global _library  # noqa: PLW0603 - the library is loaded once per process
    if _library is not None:
        return _library
    for name in _candidates():
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        _declare(library)
        _library = library
        return library
    raise PQError("libpq not found")


def _declare(lib: ctypes.CDLL) -> None:
    p, s, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "PQconnectdbParams": (p, [ctypes.POINTER(s), ctypes.POINTER(s), i]),
        "PQstatus": (i, [p]),
        "PQerrorMessage": (s, [p]),
        "PQfinish": (None, [p]),
        "PQexecParams": (p, [p, s, i, p, ctypes.POINTER(s), p, p, i]),
        "PQresultStatus": (i, [p]),
        "PQresultErrorMessage": (s, [p]),
        "PQntuples": (i, [p]),
        "PQnfields": (i, [p]),
        "PQgetvalue": (ctypes.POINTER(ctypes.c_char), [p, i, i]),
        "PQgetlength": (i, [p, i, i]),
        "PQgetisnull": (i, [p, i, i]),
        "PQclear": (None, [p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes


def _strings(values: Sequence[str]) -> Any:
    array = (ctypes.c_char_p * (len(values) + 1))()
    for position, value in enumerate(values):
        array[position] = value.encode("utf-8")
    array[len(values)] = None
    return array


class Connection:
    """One libpq connection; `params` are libpq keywords (host, port, user, password, dbname, …)."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self._lib = _load()
        keywords = {**params, "client_encoding": "UTF8"}
        self._conn = self._lib.PQconnectdbParams(_strings(list(keywords)), _strings(list(keywords.values())), 0)
        if not self._conn:
            raise PQError("out of memory")
        if self._lib.PQstatus(self._conn) != _CONNECTION_OK:
            message = (self._lib.PQerrorMessage(self._conn) or b"").decode("utf-8", "replace").strip()
            self.close()
            raise PQError(message or "cannot connect")

    def cursor(self) -> Cursor:
        """A cursor on this connection."""
        return Cursor(self)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn:
            self._lib.PQfinish(self._conn)
            self._conn = None

    def run(self, sql: str, params: Sequence[str]) -> list[tuple[str | None, ...]]:
        """Execute `sql` (``%s`` placeholders, text parameters) and return every row."""
        parts = sql.split("%s")
        if len(parts) - 1 != len(params):
            raise PQError("parameter count mismatch")
        command = parts[0] + "".join(f"${number}{part}" for number, part in enumerate(parts[1:], start=1))
        values = _strings([str(value) for value in params]) if params else None
        lib = self._lib
        result = lib.PQexecParams(self._conn, command.encode("utf-8"), len(params), None, values, None, None, 0)
        if not result:
            raise PQError((lib.PQerrorMessage(self._conn) or b"").decode("utf-8", "replace").strip())
        try:
            status = lib.PQresultStatus(result)
            if status == _COMMAND_OK:
                return []
            if status != _TUPLES_OK:
                raise PQError((lib.PQresultErrorMessage(result) or b"").decode("utf-8", "replace").strip())
            rows, fields = lib.PQntuples(result), lib.PQnfields(result)
            return [tuple(self._value(result, row, field) for field in range(fields)) for row in range(rows)]
        finally:
            lib.PQclear(result)

    def _value(self, result: Any, row: int, field: int) -> str | None:
        lib = self._lib
        if lib.PQgetisnull(result, row, field):
            return None
        return ctypes.string_at(lib.PQgetvalue(result, row, field), lib.PQgetlength(result, row, field)).decode("utf-8")


class Cursor:
    """The DB-API subset the fast paths use."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._rows: list[tuple[str | None, ...]] = []

    def execute(self, sql: str, params: Sequence[str] = ()) -> Cursor:
        """Run `sql`; its rows are then fetched with `fetchone` / `fetchall`."""
        self._rows = self.connection.run(sql, params)
        return self

    def fetchone(self) -> tuple[str | None, ...] | None:
        """The next row, or None."""
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[str | None, ...]]:
        """Every remaining row."""
        rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        """Nothing to release."""
