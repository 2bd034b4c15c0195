"""The neutral column type: one small value object every layer agrees on.

A `Type` says what a column holds independently of the ORM and of any database: a
*kind* (``"string"``, ``"integer"``, ``"enum"`` …) plus the parameters that matter
for that kind. Converters turn SQLAlchemy types into `Type` and back; dialects
normalise what reflection returns into the same form so that comparison is plain
equality.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")

#: Every kind a `Type` may have, with a one-line meaning.
KINDS: dict[str, str] = {
    "smallint": "2-byte integer",
    "integer": "4-byte integer",
    "bigint": "8-byte integer",
    "boolean": "true/false",
    "string": "variable-length text with an optional length",
    "text": "unbounded text",
    "float": "floating point, optional precision",
    "numeric": "exact decimal with precision and scale",
    "date": "calendar date",
    "datetime": "date and time, optional time zone",
    "time": "time of day, optional time zone",
    "interval": "time span",
    "binary": "bytes with an optional length",
    "json": "JSON document (variant 'jsonb' on PostgreSQL)",
    "uuid": "UUID",
    "enum": "one of a fixed list of string values",
    "array": "PostgreSQL array of `item`",
    "other": "a database type named verbatim in `sql`",
}


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


def evolve(obj: T, changes: dict[str, Any]) -> T:
    """`dataclasses.replace(obj, **changes)`, but `obj` itself when `changes` change nothing."""
    cls: Any = type(obj)
    names = _field_names(cls)
    for key, value in changes.items():
        if key not in names:
            raise TypeError(f"{type(obj).__name__} has no field {key!r}")
        current = getattr(obj, key)
        if not (current is value or current == value):
            return replace(obj, **changes)  # type: ignore[type-var]
    return obj


@dataclass(frozen=True)
class Type:
    """A column type in neutral form.

    Only the fields meaningful for `kind` are set; all others keep their defaults,
    so two equal types compare equal field by field.
    """

    kind: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    timezone: bool = False
    unsigned: bool = False
    collation: str | None = None
    charset: str | None = None
    values: tuple[str, ...] = ()
    name: str | None = None
    native: bool = True
    item: Type | None = None
    dimensions: int | None = None
    variant: str | None = None
    sql: str | None = None
    #: ``(dialect name, Type)`` pairs: what this column is on that database where it differs from the rest
    #: (``with_variant``, an ``@compiles`` override, a dialect-only type), as `create_all` builds it there.
    dialects: tuple[tuple[str, Type], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown type kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not isinstance(self.values, tuple):
            object.__setattr__(self, "values", tuple(self.values))
        if not isinstance(self.dialects, tuple):
            object.__setattr__(self, "dialects", tuple(tuple(pair) for pair in self.dialects))

    def on(self, dialect: str | None) -> Type:
        """This type as database `dialect` has it: its override there, else itself without overrides."""
        for name, typ in self.dialects:
            if name == dialect:
                return typ
        return self.evolve(dialects=()) if self.dialects else self

    def evolve(self, **changes: object) -> Type:
        """Return a copy with `changes` applied (`self` when nothing changes)."""
        return evolve(self, changes)

    def describe(self) -> str:
        """A short human form such as ``string(50)`` or ``enum status(a,b)``; overrides as ``(mysql: mediumtext)``."""
        text = self._describe()
        for name, typ in self.dialects:
            text += f" ({name}: {typ.describe()})"
        return text

    def _describe(self) -> str:
        params: list[str] = []
        if self.kind == "enum":
            label = f"enum {self.name}" if self.name else "enum"
            return f"{label}({','.join(self.values)})"
        if self.kind == "array" and self.item is not None:
            return f"{self.item.describe()}[]"
        if self.kind == "other":
            return self.sql or "other"
        for value in (self.length, self.precision, self.scale):
            if value is not None:
                params.append(str(value))
        text = self.variant or self.kind
        if params:
            text += f"({','.join(params)})"
        if self.timezone:
            text += " with tz"
        if self.unsigned:
            text += " unsigned"
        if self.charset:
            text += f" charset {self.charset}"
        if self.collation:
            text += f" collate {self.collation}"
        return text

    @property
    def is_integer(self) -> bool:
        """True for the integer kinds."""
        return self.kind in INTEGER_KINDS


INTEGER_KINDS = ("smallint", "integer", "bigint")


def rewrites_storage(old: Type, new: Type) -> bool:
    """True when changing a column from `old` to `new` rewrites every stored value (PostgreSQL rewrites the
    table): not for widening a varchar, a varchar to text, or a numeric's precision at the same scale."""
    if old == new:
        return False
    if old.kind == "string" and new.kind in ("string", "text"):
        return new.kind == "string" and new.length is not None and (old.length is None or new.length < old.length)
    if old.kind == "numeric" and new.kind == "numeric":
        narrower = new.precision is not None and (old.precision is None or new.precision < old.precision)
        return new.scale != old.scale or narrower
    return True


def copies_online(old: Type, new: Type) -> str | None:
    """Why InnoDB (MySQL/MariaDB) must copy the table to change a column from `old` to `new`, as a lint code
    (SS402: enum values reordered or removed; SS401: any other type change but a VARCHAR widened within its
    length-byte class); None when it changes in place."""
    if old.kind == "enum" and new.kind == "enum":
        return None if new.values[: len(old.values)] == old.values else "SS402"
    if old == new or _widens_in_place(old, new):
        return None
    return "SS401"


def _widens_in_place(old: Type, new: Type) -> bool:
    """VARCHAR widened within the same length-byte class runs INPLACE (255 bytes is the boundary)."""
    if old.kind == new.kind == "string" and old.length and new.length and new.length >= old.length:
        return (old.length * 4 <= 255) == (new.length * 4 <= 255) and old.collation == new.collation
    return False
