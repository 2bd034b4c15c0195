"""Operations and schema values as JSON lines: one value per line, read back exactly.

`to_json` writes each value on a line of its own; `from_json` (exported to
migration files and the head snapshot by `schemashift.migration`) reads them
back. It stands for the same constructor calls as `render_value` (the fields
`schemashift.operations.render.arguments` gives) in a form whose parsing is
done by the `json` module in C, which matters for big generated files such as
``schemashift.head``. Values map to JSON as follows:

* None, bool, int, float (``NaN``/``Infinity`` as Python's `json` writes them), str: themselves;
* tuple: an array; list: ``{"@list": [...]}``; set and frozenset: ``{"@set": [...]}`` and
  ``{"@frozenset": [...]}`` (items in a fixed order); bytes: ``{"@bytes": "<hex>"}``;
* dict: an object when its keys are strings none of which starts with ``@``, else ``{"@dict": [[key, value], ...]}``;
* an operation or schema model object: ``{"@": "ClassName", "field": value, ...}``, with the fields
  `arguments` gives (those at their default are left out).

A subclass is written as `render_value` writes it, as its base (a StrEnum or SQLAlchemy's ``quoted_name`` as a str,
an IntEnum as an int, a namedtuple as a tuple): `from_json` gives what the same value written as Python calls gives.
Anything else (a function, an enum of no such base, another object, a dataclass of a class migration files cannot
name: only operations, `OPERATIONS`, and the dataclasses of the schema model) is refused with `MigrationError`.
Characters a reader cannot see (controls, format characters, lone surrogates) are written as
``\\u`` escapes, so a line shows all it holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from schemashift.errors import MigrationError
from schemashift.model import objects, schema, types
from schemashift.operations.base import OPERATIONS
from schemashift.operations.render import arguments

#: The key naming a dataclass's class, and the keys of the other tagged values.
CLASS_KEY = "@"
_TAGS = ("@list", "@set", "@frozenset", "@bytes", "@dict")
_INVISIBLE = re.compile(r"[^\x20-\x7e]")
_SCALARS = frozenset({str, int, float, bool})

_Builder = Callable[[dict[str, Any]], object]
_builders: dict[str, _Builder] = {}
_model: dict[str, type] = {}


def class_named(name: str) -> type | None:
    """The operation or schema model dataclass that `from_json` builds for ``{"@": name}``; None: none."""
    if not _model:  # filled in one step (a dict from a dict): a thread never sees part of it
        _model.update({key: value for module in (schema, types, objects) for key, value in vars(module).items()
                       if isinstance(value, type) and is_dataclass(value) and value.__module__ == module.__name__})
    found = OPERATIONS.get(name) or _model.get(name)
    return found if found is not None and is_dataclass(found) else None


# -- writing -------------------------------------------------------------------------


def to_json(values: Iterable[object]) -> str:
    """One JSON line per value of `values` (no trailing newline); MigrationError when one cannot be written."""
    return "\n".join(_line(value) for value in values)


def _line(value: object) -> str:
    text = json.dumps(_encoded(value), ensure_ascii=False)
    return text if text.isprintable() else _INVISIBLE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    """A ``\\u`` escape of a character that is not printable (a pair of them beyond the BMP), printable ones kept."""
    char = found.group(0)
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _encoded(value: object) -> object:
    """The JSON form of `value` (see the module docstring)."""
    kind = type(value)
    if value is None or kind in _SCALARS:
        return value
    if is_dataclass(value) and not isinstance(value, type):
        if class_named(kind.__name__) is not kind:
            raise MigrationError(f"cannot write a {kind.__name__} as JSON: migration files cannot name its class")
        found: dict[str, object] = {CLASS_KEY: kind.__name__}
        for argument in arguments(value):
            found[argument.name] = _encoded(argument.value)
        return found
    if isinstance(value, tuple):
        return [_encoded(item) for item in value]
    if isinstance(value, list):
        return {"@list": [_encoded(item) for item in value]}
    if isinstance(value, dict):
        return _encoded_dict(value)
    if isinstance(value, (set, frozenset)):
        tag = "@frozenset" if isinstance(value, frozenset) else "@set"
        return {tag: sorted((_encoded(item) for item in value), key=_sort_key)}
    return _scalar(value)


def _scalar(value: object) -> object:
    """A str, int, float or bytes of a subclass as the plain value `render_value` writes (a StrEnum's string,
    SQLAlchemy's ``quoted_name`` a str); MigrationError for anything else."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, bytes):
        return {"@bytes": value.hex()}
    raise MigrationError(f"cannot write a {type(value).__name__} value as JSON: {value!r}")


def _encoded_dict(value: dict[Any, object]) -> object:
    if all(isinstance(key, str) and not key.startswith("@") for key in value):
        return {str.__str__(key): _encoded(item) for key, item in value.items()}
    return {"@dict": [[_encoded(key), _encoded(item)] for key, item in value.items()]}


def _sort_key(encoded: object) -> str:
    return json.dumps(encoded, sort_keys=True)


# -- reading -------------------------------------------------------------------------


def from_json(text: str) -> list[object]:
    """The values of `text`, one JSON value per line as `to_json` writes them (blank lines around them ignored).

    Only the classes `class_named` knows are built; anything else is an error (ValueError, KeyError or TypeError).
    """
    body = text.strip()
    if not body:
        return []
    values = json.loads("[" + body.replace("\n", ",") + "]", object_hook=_decoded)
    return [_value(value) for value in values]


class _Listed:
    """A decoded ``{"@list": ...}`` until it is placed: a list there would pass for a JSON array (a tuple)."""

    __slots__ = ("items",)

    def __init__(self, items: list[object]) -> None:
        self.items = items


def _value(found: object) -> object:
    """A decoded value as it is placed: an array becomes a tuple, a `_Listed` its list."""
    kind = type(found)
    if kind is list:
        return tuple([_value(item) for item in found])  # type: ignore[attr-defined]
    return found.items if kind is _Listed else found  # type: ignore[attr-defined]


def _decoded(found: dict[str, Any]) -> object:
    """The value of a JSON object (called by `json.loads` innermost first)."""
    for key, item in found.items():
        kind = type(item)
        if kind is list or kind is _Listed:
            found[key] = _value(item)
    name = found.pop(CLASS_KEY, None)
    if name is not None:
        return (_builders.get(name) or _builder(name))(found)
    if len(found) == 1:
        key, item = next(iter(found.items()))
        if key in _TAGS:
            return _tagged(key, item)
    return found


def _tagged(tag: str, item: Any) -> object:
    if tag == "@bytes":
        if type(item) is not str:
            raise TypeError("@bytes holds a hex string")
        return bytes.fromhex(item)
    if type(item) is not tuple:
        raise TypeError(f"{tag} holds an array")
    if tag == "@dict":
        return dict(item)
    if tag == "@list":
        return _Listed(list(item))
    return set(item) if tag == "@set" else frozenset(item)


def _builder(name: str) -> _Builder:
    """How to build class `name` from its fields: as its generated ``__init__`` would (defaults, then the fields
    given, then ``__post_init__``), without the per-field cost of a frozen dataclass's ``__init__``; classes that
    are not plain dataclasses (slots, fields outside ``__init__``) are called."""
    cls = class_named(name)
    if cls is None:
        raise KeyError(f"no operation or schema class {name!r}")
    every = fields(cls)
    if hasattr(cls, "__slots__") or not all(field.init for field in every):
        def call(given: dict[str, Any]) -> object:
            return cls(**given)
        _builders[name] = call
        return call
    names = frozenset(field.name for field in every)
    count = len(names)
    defaults = {field.name: field.default for field in every if field.default is not MISSING}
    factories = [(field.name, field.default_factory) for field in every if field.default_factory is not MISSING]
    post_init = getattr(cls, "__post_init__", None)
    new = object.__new__

    def build(given: dict[str, Any]) -> object:
        obj: object = new(cls)
        state = obj.__dict__
        state.update(defaults)
        if factories:
            for key, factory in factories:
                state[key] = factory()
        state.update(given)
        if len(state) != count or not given.keys() <= names:
            raise TypeError(f"{name}: unknown or missing fields in {sorted(given)}")
        if post_init is not None:
            post_init(obj)
        return obj

    _builders[name] = build
    return build


__all__ = ["CLASS_KEY", "class_named", "from_json", "to_json"]
