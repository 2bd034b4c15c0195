"""Conversion between SQLAlchemy types and the neutral `Type`.

`from_sa_type` reads both model types (``sa.String(50)``) and reflected,
dialect-specific ones (``postgresql.TIMESTAMP(timezone=True)``), since the latter
subclass the former. `to_sa_type` builds the SQLAlchemy type that DDL compilers
need.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import sqlalchemy as sa
from sqlalchemy import types as sat

from .types import Type


#: `Type(...)`, one shared object per distinct type: types are immutable and schemas repeat a few.
_type = lru_cache(maxsize=1024, typed=True)(Type)


def _collation(satype: sa.types.TypeEngine) -> str | None:
    return getattr(satype, "collation", None) or None


def _enum(satype: sa.Enum) -> Type:
    native = bool(getattr(satype, "native_enum", True))
    return _type("enum", values=tuple(satype.enums), name=satype.name, native=native)


def _string(satype: sa.String) -> Type:
    return _type("string", length=satype.length, collation=_collation(satype))


def _text(satype: sa.Text) -> Type:
    return _type("text", collation=_collation(satype))


def _numeric(satype: sa.Numeric | sa.Float) -> Type:
    if isinstance(satype, sa.Float):
        precision = getattr(satype, "precision", None)
        if precision is None and isinstance(satype, (sa.Double, sa.REAL)):
            precision = 53 if isinstance(satype, sa.Double) else 24  # DOUBLE is 8 bytes, REAL 4
        return _type("float", precision=precision)
    return _type("numeric", precision=satype.precision, scale=satype.scale)


def _array(satype: sa.ARRAY) -> Type:
    return _type("array", item=from_sa_type(satype.item_type), dimensions=satype.dimensions)


def _json(satype: sa.JSON) -> Type:
    variant = "jsonb" if type(satype).__name__ == "JSONB" else None
    return _type("json", variant=variant)


def _datetime(satype: sa.DateTime) -> Type:
    return _type("datetime", timezone=bool(satype.timezone))


def _time(satype: sa.Time) -> Type:
    return _type("time", timezone=bool(satype.timezone))


def _binary(satype: sa.LargeBinary) -> Type:
    return _type("binary", length=getattr(satype, "length", None))


def _integer(satype: sa.Integer) -> Type:
    unsigned = bool(getattr(satype, "unsigned", False))
    if isinstance(satype, sa.SmallInteger):
        return _type("smallint", unsigned=unsigned)
    if isinstance(satype, sa.BigInteger):
        return _type("bigint", unsigned=unsigned)
    return _type("integer", unsigned=unsigned)


Converter = Callable[[sa.types.TypeEngine], Type]

# Order matters: subclasses before their bases (Enum and Text before String…).
_CONVERTERS: list[tuple[type, Converter]] = [
    (sa.Enum, _enum),
    (sa.Boolean, lambda t: _type("boolean")),
    (sa.Text, _text),
    (sa.String, _string),
    (sa.Integer, _integer),
    (sa.Numeric, _numeric),
    (sa.Float, _numeric),  # not a Numeric subclass since SQLAlchemy 2.1
    (sa.DateTime, _datetime),
    (sa.Date, lambda t: _type("date")),
    (sa.Time, _time),
    (sa.sql.sqltypes._AbstractInterval, lambda t: _type("interval")),  # sa.Interval, postgresql.INTERVAL
    (sa.ARRAY, _array),
    (sa.JSON, _json),
    (sa.Uuid, lambda t: _type("uuid")),
    (sa.LargeBinary, _binary),
    (sat._Binary, _binary),
]


def from_sa_type(satype: sa.types.TypeEngine) -> Type:
    """The neutral form of a SQLAlchemy type (TypeDecorators by their implementation)."""
    return _converter(type(satype))(satype)


@lru_cache(maxsize=512)
def _converter(cls: type) -> Converter:
    """How to convert instances of `cls`, looked up once per class."""
    if issubclass(cls, sat.TypeDecorator) and not issubclass(cls, sa.Interval):  # INTERVAL where native
        return _decorated
    for base, convert in _CONVERTERS:
        if issubclass(cls, base):
            return convert
    return _other


def _decorated(satype: sat.TypeDecorator) -> Type:
    return from_sa_type(satype.impl_instance)


def _other(satype: sa.types.TypeEngine) -> Type:
    name = type(satype).__name__.upper()
    if isinstance(satype, sat.NullType):
        return _type("other", sql="NULL")
    try:
        text = satype.compile()
    except Exception:  # noqa: BLE001 - a dialect-only type: keep its class name
        text = name
    return _type("other", sql=text)


def to_sa_type(typ: Type, dialect_name: str | None = None) -> sa.types.TypeEngine:
    """A SQLAlchemy type for `typ`, suitable for DDL on `dialect_name`."""
    builder = _BUILDERS.get(typ.kind)
    if builder is None:
        raise ValueError(f"no SQLAlchemy type for kind {typ.kind!r}")
    return builder(typ, dialect_name)


def _build_integer(typ: Type, dialect: str | None) -> sa.types.TypeEngine:
    base = {"smallint": sa.SmallInteger, "integer": sa.Integer, "bigint": sa.BigInteger}[typ.kind]
    if typ.unsigned and dialect == "mysql":
        from sqlalchemy.dialects import mysql

        return {"smallint": mysql.SMALLINT, "integer": mysql.INTEGER, "bigint": mysql.BIGINT}[typ.kind](unsigned=True)
    return base()


def _build_json(typ: Type, dialect: str | None) -> sa.types.TypeEngine:
    if typ.variant == "jsonb" and dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return JSONB()
    return sa.JSON()


def _build_enum(typ: Type, dialect: str | None) -> sa.types.TypeEngine:
    return sa.Enum(*typ.values, name=typ.name, native_enum=typ.native, create_constraint=False)


def _build_other(typ: Type, dialect: str | None) -> sa.types.TypeEngine:
    return _RawType(typ.sql or "NULL")


class _RawType(sat.UserDefinedType):
    """A type rendered verbatim in DDL."""

    cache_ok = True

    def __init__(self, sql: str) -> None:
        self.sql = sql

    def get_col_spec(self, **kw: object) -> str:
        return self.sql


_BUILDERS = {
    "smallint": _build_integer,
    "integer": _build_integer,
    "bigint": _build_integer,
    "boolean": lambda t, d: sa.Boolean(create_constraint=False),
    "string": lambda t, d: sa.String(t.length, collation=t.collation),
    "text": lambda t, d: sa.Text(collation=t.collation),
    "float": lambda t, d: sa.Float(precision=t.precision),
    "numeric": lambda t, d: sa.Numeric(t.precision, t.scale),
    "date": lambda t, d: sa.Date(),
    "datetime": lambda t, d: sa.DateTime(timezone=t.timezone),
    "time": lambda t, d: sa.Time(timezone=t.timezone),
    "interval": lambda t, d: sa.Interval(),
    "binary": lambda t, d: sa.LargeBinary(t.length),
    "json": _build_json,
    "uuid": lambda t, d: sa.Uuid(),
    "enum": _build_enum,
    "array": lambda t, d: sa.ARRAY(to_sa_type(t.item, d), dimensions=t.dimensions) if t.item else sa.ARRAY(sa.Text()),
    "other": _build_other,
}
