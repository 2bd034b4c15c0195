"""Conversion between SQLAlchemy types and the neutral `Type`.

`from_sa_type` reads both model types (``sa.String(50)``) and reflected,
dialect-specific ones (``postgresql.TIMESTAMP(timezone=True)``), since the latter
subclass the former. `to_sa_type` builds the SQLAlchemy type that DDL compilers
need.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from functools import cache, lru_cache
from importlib import import_module
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types as sat

from schemashift.dialects.registry import database
from schemashift.model.types import Type
from schemashift.sacompat import AbstractBinary, AbstractInterval, binds_to_table, has_variants

#: `Type(...)`, one shared object per distinct type: types are immutable and schemas repeat a few.
_type = lru_cache(maxsize=1024, typed=True)(Type)


def _collation(satype: sa.types.TypeEngine[Any]) -> str | None:
    return getattr(satype, "collation", None) or None


def _charset(satype: sa.types.TypeEngine[Any]) -> str | None:
    """MySQL's ``CHARACTER SET`` of a string type (``mysql.VARCHAR(charset=...)``)."""
    return getattr(satype, "charset", None) or None


def _enum(satype: sa.Enum) -> Type:
    native = bool(getattr(satype, "native_enum", True))
    return _type("enum", values=tuple(satype.enums), name=satype.name, native=native)


def _string(satype: sa.String) -> Type:
    if type(satype).__name__ in _SIZED:  # MySQL's TINYTEXT… are Strings, not Texts, in SQLAlchemy
        return _text(satype)  # type: ignore[arg-type]
    return _type("string", length=satype.length, collation=_collation(satype), charset=_charset(satype))


#: MySQL's sized TEXT and BLOB types: class name -> `Type.variant`.
_SIZED = {name: name.lower() for name in ("TINYTEXT", "MEDIUMTEXT", "LONGTEXT", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB")}


def _text(satype: sa.Text) -> Type:
    variant = _SIZED.get(type(satype).__name__)
    return _type("text", collation=_collation(satype), charset=_charset(satype), variant=variant)


def _numeric(satype: sa.Numeric[Any] | sa.Float[Any]) -> Type:
    if isinstance(satype, sa.Float):
        precision = getattr(satype, "precision", None)
        if precision is None and isinstance(satype, (sa.Double, sa.REAL)):
            precision = 53 if isinstance(satype, sa.Double) else 24  # DOUBLE is 8 bytes, REAL 4
        return _type("float", precision=precision)
    return _type("numeric", precision=satype.precision, scale=satype.scale)


def _array(satype: sa.ARRAY[Any]) -> Type:
    return _type("array", item=from_sa_type(satype.item_type), dimensions=satype.dimensions)


def _json(satype: sa.JSON) -> Type:
    variant = "jsonb" if type(satype).__name__ == "JSONB" else None
    return _type("json", variant=variant)


def _fraction(satype: sa.types.TypeEngine[Any]) -> int | None:
    """Fractional-second digits of a dialect's date/time type (MySQL ``fsp``, PostgreSQL ``precision``)."""
    return getattr(satype, "fsp", None) or getattr(satype, "precision", None)


def _datetime(satype: sa.DateTime) -> Type:
    variant = "timestamp" if isinstance(satype, sa.TIMESTAMP) else None  # DATETIME and TIMESTAMP differ on MySQL
    return _type("datetime", timezone=bool(satype.timezone), precision=_fraction(satype), variant=variant)


def _time(satype: sa.Time) -> Type:
    return _type("time", timezone=bool(satype.timezone), precision=_fraction(satype))


def _binary(satype: sa.LargeBinary) -> Type:
    return _type("binary", length=getattr(satype, "length", None), variant=_SIZED.get(type(satype).__name__))


def _integer(satype: sa.Integer) -> Type:
    unsigned = bool(getattr(satype, "unsigned", False))
    if isinstance(satype, sa.SmallInteger):
        return _type("smallint", unsigned=unsigned)
    if isinstance(satype, sa.BigInteger):
        return _type("bigint", unsigned=unsigned)
    return _type("integer", unsigned=unsigned)


#: Converts instances of one SQLAlchemy type class (its parameter is that class).
Converter = Callable[[Any], Type]

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
    (AbstractInterval, lambda t: _type("interval")),  # sa.Interval, postgresql.INTERVAL
    (sa.ARRAY, _array),
    (sa.JSON, _json),
    (sa.Uuid, lambda t: _type("uuid", native=bool(getattr(t, "native_uuid", True)))),
    (sa.LargeBinary, _binary),
    (AbstractBinary, _binary),
]


def from_sa_type(satype: sa.types.TypeEngine[Any]) -> Type:
    """The neutral form of a SQLAlchemy type (TypeDecorators by their implementation)."""
    cls: Any = type(satype)
    return _converter(cls)(satype)


@lru_cache(maxsize=512)
def _converter(cls: type) -> Converter:
    """How to convert instances of `cls`, looked up once per class."""
    if issubclass(cls, sat.TypeDecorator) and not issubclass(cls, sa.Interval):  # INTERVAL where native
        return _decorated
    for base, convert in _CONVERTERS:
        if issubclass(cls, base):
            return convert
    return _other


def _decorated(satype: sat.TypeDecorator[Any]) -> Type:
    return from_sa_type(satype.impl_instance)


def _other(satype: sa.types.TypeEngine[Any]) -> Type:
    name = type(satype).__name__.upper()
    if isinstance(satype, sat.NullType):
        return _type("other", sql="NULL")
    try:
        text = satype.compile()
    except Exception:  # noqa: BLE001 - deliberately broad: a dialect-only type: keep its class name
        text = name
    return _type("other", sql=text)


# -- per-database forms of model types ------------------------------------------


def model_type(satype: sa.types.TypeEngine[Any]) -> Type:
    """The neutral form of a model's type, with what it is on each database where that differs.

    A type that may compile differently per database (``with_variant``, an
    ``@compiles`` override, a dialect's or the application's own type, a
    TypeDecorator loading a per-dialect implementation; see `_checked_on`) is compiled by each
    database's SQLAlchemy type compiler, as `create_all` does; where the neutral
    type would compile to something else there, the database's form is kept in
    `Type.dialects`: its neutral form when that compiles alike, else the DDL text.
    """
    base = from_sa_type(satype)
    checked = _checked_on(satype)
    if checked == ():
        return base
    if checked is None and has_variants(satype):
        return _per_database(satype, base, checked)
    key = (type(satype), _plain_state(satype), base)  # models repeat a few such types in many columns
    found = _MODEL_TYPES.get(key)
    if found is None:
        found = _per_database(satype, base, checked)
        if len(_MODEL_TYPES) < 4096:
            _MODEL_TYPES[key] = found
    return found


_MODEL_TYPES: dict[tuple[type, tuple[tuple[str, object], ...], Type], Type] = {}
_PLAIN = (str, int, float, bool, type(None))


def _plain_state(satype: sa.types.TypeEngine[Any]) -> tuple[tuple[str, object], ...]:
    """The instance's scalar settings (with its class and neutral form, what its DDL can depend on)."""
    return tuple((k, v) for k, v in vars(satype).items() if isinstance(v, _PLAIN))


def _per_database(satype: sa.types.TypeEngine[Any], base: Type, checked: tuple[str, ...] | None) -> Type:
    """`base` with the forms `satype` takes on the databases in `checked` (None: all)."""
    from schemashift.dialects import get_dialect, targets

    overrides: list[tuple[str, Type]] = []
    for name, dialect in targets():
        if checked is not None and name not in checked:
            continue
        try:
            actual = dialect.type_compiler_instance.process(satype)
        except Exception:  # noqa: BLE001 - deliberately broad: no such type on that database (create_all fails there too)
            continue
        chosen = _matching(actual, base, satype, name, dialect)
        if chosen != base and not get_dialect(name).stores_alike(chosen, base):
            overrides.append((name, chosen))  # (DOUBLE PRECISION for FLOAT(53) on PostgreSQL is no difference)
    return base.evolve(dialects=tuple(overrides)) if overrides else base


def _matching(actual: str, base: Type, satype: sa.types.TypeEngine[Any], name: str, dialect: sa.engine.Dialect) -> Type:
    """`base`, else the neutral form of `satype` on `dialect`, whichever compiles to `actual` there; else raw DDL."""
    from schemashift.dialects import get_dialect

    candidates = [base]
    with suppress(Exception):  # deliberately broad: no adapted form
        candidates.append(from_sa_type(satype.dialect_impl(dialect)))
    parsed = get_dialect(name).parse_type(actual)
    if parsed is not None:
        candidates.append(parsed)
    for candidate in candidates:
        try:
            built = to_sa_type(candidate, name)
            if not _hooked(type(built), name) and dialect.type_compiler_instance.process(built) == actual:
                return candidate
        except Exception:  # noqa: BLE001 - deliberately broad: the neutral form does not compile there
            continue
    return _type("other", sql=actual)


def _hooked(cls: type, dialect: str | None = None) -> bool:
    """True when instances of `cls` compile through an ``@compiles`` handler of the application
    (for database `dialect`; for any when None).

    Migrations run without the models imported, so a form only such a handler
    renders must be kept as DDL text.
    """
    for base in cls.__mro__:
        if "_compiler_dispatch" in vars(base):
            dispatcher = vars(base).get("_compiler_dispatcher")
            if dispatcher is None:
                return False
            specs = getattr(dispatcher, "specs", None) or {}
            default = specs.get("default")
            own_default = default is not None and getattr(default, "__name__", "") != "_wrap_existing_dispatch"
            return dialect is None or dialect in specs or own_default  # not SQLAlchemy's kept original
    return False


def _checked_on(satype: sa.types.TypeEngine[Any]) -> tuple[str, ...] | None:
    """The databases where `satype` may compile otherwise than its neutral form says (None: all, (): none).

    All for ``with_variant``, ``@compiles`` overrides, applications' own types and
    TypeDecorators choosing an implementation per dialect; a dialect's own type
    (``mysql.MEDIUMTEXT``) only on its database (elsewhere `create_all` would not build it as such).
    """
    if has_variants(satype):  # with_variant()
        return None
    cls: Any = type(satype)
    if _hooked(cls):  # @compiles
        return None
    if isinstance(satype, sat.TypeDecorator):
        if cls.load_dialect_impl is not sat.TypeDecorator.load_dialect_impl:
            return None
        return _checked_on(satype.impl_instance)
    return _class_checked_on(cls)


@lru_cache(maxsize=256)
def _class_checked_on(cls: type) -> tuple[str, ...] | None:
    """`_checked_on` for plain instances of `cls`."""
    module = cls.__module__
    if issubclass(cls, sat.UserDefinedType) or not module.startswith("sqlalchemy."):
        return None
    if module.startswith("sqlalchemy.dialects."):
        return (module.split(".")[2],)
    return ()


@cache
def _own_types(dialect_name: str) -> Callable[[Type], sa.types.TypeEngine[Any] | None] | None:
    """``build`` of the database's ``types`` module (its own SQLAlchemy types), when the registry declares one."""
    entry = database(dialect_name)
    if entry is None or not entry.own_types:
        return None
    return import_module(f"{entry.module}.types").build  # type: ignore[no-any-return]


def to_sa_type(typ: Type, dialect_name: str | None = None) -> sa.types.TypeEngine[Any]:
    """A SQLAlchemy type for `typ`, suitable for DDL on `dialect_name` (its override there, if any).

    The database's own types (``dialects/<name>/types.py``, e.g. MySQL's unsigned
    integers) come first; the generic SQLAlchemy types serve everywhere else.
    """
    if typ.dialects and dialect_name is not None:
        typ = typ.on(dialect_name)
    own = _own_types(dialect_name) if dialect_name is not None else None
    built = own(typ) if own is not None else None
    if built is not None:
        return built
    builder = _BUILDERS.get(typ.kind)
    if builder is None:
        raise ValueError(f"no SQLAlchemy type for kind {typ.kind!r}")
    return builder(typ, dialect_name)


#: SQLAlchemy types already built for DDL, by neutral type and database (see `shared_sa_type`).
TypeMemo = dict[tuple[Type, str | None], sa.types.TypeEngine[Any]]


def shared_sa_type(typ: Type, dialect_name: str | None, memo: TypeMemo) -> sa.types.TypeEngine[Any]:
    """`to_sa_type`, one instance per distinct type in `memo`, so that SQLAlchemy works out each type's DDL form
    once (per type instance) rather than once per column. Types that attach themselves to a table
    (`binds_to_table`: enums, booleans, arrays) and unhashable ones are built anew every time."""
    try:
        found = memo.get((typ, dialect_name))
    except TypeError:
        return to_sa_type(typ, dialect_name)
    if found is None:
        found = to_sa_type(typ, dialect_name)
        if binds_to_table(found):
            return found
        memo[(typ, dialect_name)] = found
    return found


def _build_integer(typ: Type, dialect: str | None) -> sa.types.TypeEngine[Any]:
    return {"smallint": sa.SmallInteger, "integer": sa.Integer, "bigint": sa.BigInteger}[typ.kind]()


def _build_text(typ: Type, dialect: str | None) -> sa.types.TypeEngine[Any]:
    return sa.Text(collation=typ.collation)


def _build_string(typ: Type, dialect: str | None) -> sa.types.TypeEngine[Any]:
    return sa.String(typ.length, collation=typ.collation)


def _build_temporal(typ: Type, dialect: str | None) -> sa.types.TypeEngine[Any]:
    """TIMESTAMP/DATETIME/TIME (fractional-second digits are the databases' own types)."""
    if typ.kind == "datetime":
        return sa.TIMESTAMP(timezone=typ.timezone) if typ.variant == "timestamp" else sa.DateTime(timezone=typ.timezone)
    return sa.Time(timezone=typ.timezone)


def _build_enum(typ: Type, dialect: str | None) -> sa.types.TypeEngine[Any]:
    return sa.Enum(*typ.values, name=typ.name, native_enum=typ.native, create_constraint=False)


def _build_other(typ: Type, dialect: str | None) -> sa.types.TypeEngine[Any]:
    return _RawType(typ.sql or "NULL")


class _RawType(sat.UserDefinedType[Any]):
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
    "string": _build_string,
    "text": _build_text,
    "float": lambda t, d: sa.Float(precision=t.precision),
    "numeric": lambda t, d: sa.Numeric(t.precision, t.scale),
    "date": lambda t, d: sa.Date(),
    "datetime": _build_temporal,
    "time": _build_temporal,
    "interval": lambda t, d: sa.Interval(),
    "binary": lambda t, d: sa.LargeBinary(t.length),
    "json": lambda t, d: sa.JSON(),
    "uuid": lambda t, d: sa.Uuid(native_uuid=t.native),
    "enum": _build_enum,
    "array": lambda t, d: sa.ARRAY(to_sa_type(t.item, d), dimensions=t.dimensions) if t.item else sa.ARRAY(sa.Text()),
    "other": _build_other,
}
