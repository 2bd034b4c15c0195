"""MySQL's own SQLAlchemy types for neutral types (unsigned integers, charsets, sized texts and blobs, fsp).

`build` is found through the registry by `schemashift.sqla.types.to_sa_type`; it
answers None where the generic SQLAlchemy type serves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from schemashift.model.types import Type

_INTEGERS = {"smallint": mysql.SMALLINT, "integer": mysql.INTEGER, "bigint": mysql.BIGINT}


def build(typ: Type) -> sa.types.TypeEngine[Any] | None:
    """MySQL's SQLAlchemy type for `typ`, or None for the generic one."""
    builder = _BUILDERS.get(typ.kind)
    return builder(typ) if builder is not None else None


def _integer(typ: Type) -> sa.types.TypeEngine[Any] | None:
    return _INTEGERS[typ.kind](unsigned=True) if typ.unsigned else None


def _text(typ: Type) -> sa.types.TypeEngine[Any] | None:
    if not (typ.variant or typ.charset):
        return None
    cls = getattr(mysql, (typ.variant or "text").upper())
    return cls(collation=typ.collation, charset=typ.charset)  # type: ignore[no-any-return]


def _string(typ: Type) -> sa.types.TypeEngine[Any] | None:
    return mysql.VARCHAR(typ.length, collation=typ.collation, charset=typ.charset) if typ.charset else None


def _binary(typ: Type) -> sa.types.TypeEngine[Any] | None:
    return getattr(mysql, typ.variant.upper())() if typ.variant else None


def _temporal(typ: Type) -> sa.types.TypeEngine[Any] | None:
    """TIMESTAMP/DATETIME/TIME with fractional-second digits (``fsp``)."""
    if typ.precision is None:
        return None
    if typ.kind == "datetime":
        cls = mysql.TIMESTAMP if typ.variant == "timestamp" else mysql.DATETIME
        return cls(timezone=typ.timezone, fsp=typ.precision)
    return mysql.TIME(timezone=typ.timezone, fsp=typ.precision)


_BUILDERS: dict[str, Callable[[Type], sa.types.TypeEngine[Any] | None]] = {
    "smallint": _integer,
    "integer": _integer,
    "bigint": _integer,
    "text": _text,
    "string": _string,
    "binary": _binary,
    "datetime": _temporal,
    "time": _temporal,
}
