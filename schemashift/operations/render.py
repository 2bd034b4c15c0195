"""Writing operations and whole migration files as readable Python source.

`render_value` turns the frozen dataclasses of `schemashift.operations`,
`schemashift.model.schema` and `Type` (plus tuples, lists, dicts and plain
scalars) into source that evaluates back to an equal object in the
`schemashift.migration` namespace; `arguments` says how a dataclass instance is
called back into being (`schemashift.operations.codec` writes the same calls as
JSON). `render_migration` writes a complete file.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING, Field, fields, is_dataclass
from datetime import datetime
from types import FunctionType
from typing import TYPE_CHECKING, Any, NamedTuple

from schemashift.errors import MigrationError
from schemashift.operations.base import Operation
from schemashift.operations.raw import RunPython

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: Lines longer than this are broken up.
WIDTH = 100
_STEP = 4

#: Required fields rendered as keywords anyway, because the call reads better.
_KEYWORD_FIELDS: dict[str, frozenset[str]] = {
    "Table": frozenset({"columns"}),
    "AlterColumn": frozenset({"new"}),
}

_Item = tuple[str, object]
_Layout = tuple[str, list[_Item], str]


def render_value(obj: object, indent: int = 0) -> str:
    """Python source for `obj`, its continuation lines indented by `indent` spaces.

    Short values stay on one line; longer ones are broken one element per line
    with trailing commas. The first line carries no indentation of its own.
    """
    return _render(obj, indent, indent, nested=False)


def _render(obj: object, indent: int, used: int, *, nested: bool) -> str:
    """Render `obj` whose first line starts at column `used`; later lines at `indent`."""
    flat = _flat(obj)
    if used + len(flat) + 1 <= WIDTH:
        return flat
    if isinstance(obj, str):
        return _long_string(obj, indent, nested=nested)
    layout = _layout(obj)
    if layout is None or not layout[1]:
        return flat
    opener, items, closer = layout
    inner = indent + _STEP
    lines = [opener]
    for prefix, value in items:
        text = _render(value, inner, inner + len(prefix), nested=True)
        lines.append(" " * inner + prefix + text + ",")
    lines.append(" " * indent + closer)
    return "\n".join(lines)


def _flat(obj: object) -> str:
    """The one-line form of `obj`."""
    layout = _layout(obj)
    if layout is None:
        return _atom(obj)
    opener, items, closer = layout
    parts = [prefix + _flat(value) for prefix, value in items]
    if opener == "(" and len(parts) == 1:
        return f"({parts[0]},)"
    return opener + ", ".join(parts) + closer


def _layout(obj: object) -> _Layout | None:
    """Opener, ``(prefix, value)`` items and closer of a container; None for atoms."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return f"{type(obj).__name__}(", _dataclass_items(obj), ")"
    if isinstance(obj, tuple):
        return "(", [("", item) for item in obj], ")"
    if isinstance(obj, list):
        return "[", [("", item) for item in obj], "]"
    if isinstance(obj, dict):
        return "{", [(_flat(key) + ": ", value) for key, value in obj.items()], "}"
    return None


class Argument(NamedTuple):
    """One argument of the constructor call that rebuilds a dataclass instance (see `arguments`)."""

    name: str
    value: object
    keyword: bool


def arguments(obj: DataclassInstance) -> list[Argument]:
    """The arguments of the call that rebuilds `obj`, as migration files write it: its init fields in order,
    required ones positionally (some by keyword anyway: `_KEYWORD_FIELDS`), then the optional ones whose value
    differs from their default (in value or type) by keyword. The class is called with them to rebuild `obj`."""
    keywords = _KEYWORD_FIELDS.get(type(obj).__name__, frozenset())
    found: list[Argument] = []
    as_keyword = False
    for field in fields(obj):
        if not field.init:
            continue
        value = getattr(obj, field.name)
        default = _default(field)
        if default is not MISSING:
            as_keyword = True
            if type(value) is type(default) and value == default:
                continue
        elif field.name in keywords:
            as_keyword = True
        found.append(Argument(field.name, value, as_keyword))
    return found


def _dataclass_items(obj: DataclassInstance) -> list[_Item]:
    """`arguments` as layout items: keyword ones prefixed with ``name=``."""
    return [(f"{arg.name}=" if arg.keyword else "", arg.value) for arg in arguments(obj)]


def _default(field: Field[Any]) -> object:
    """The default value of a dataclass field; MISSING when it has none."""
    if callable(field.default_factory):
        return field.default_factory()
    return field.default


def _atom(obj: object) -> str:
    """Source for a scalar or a named function."""
    if obj is None or isinstance(obj, bool):
        return repr(obj is True) if obj is not None else "None"
    if isinstance(obj, int):
        return int.__repr__(obj)
    if isinstance(obj, float):
        return float.__repr__(obj) if math.isfinite(obj) else f'float("{obj}")'
    if isinstance(obj, str):
        return _quote(obj)
    if isinstance(obj, bytes):
        return bytes.__repr__(obj)
    if callable(obj):
        return _function_name(obj)
    raise MigrationError(f"cannot write a {type(obj).__name__} value to a migration file: {obj!r}")


def _quote(text: str) -> str:
    """A string literal, double-quoted unless the text holds a double quote."""
    literal = str.__repr__(text)
    if literal.startswith("'") and '"' not in text:
        literal = '"' + literal[1:-1] + '"'
    return literal


def _long_string(text: str, indent: int, *, nested: bool) -> str:
    """A string too long for one line: one literal per source line, concatenated."""
    pieces = text.splitlines(keepends=True)
    if len(pieces) < 2:
        return _quote(text)
    if nested:
        pad = " " * indent
        return ("\n" + pad).join(_quote(piece) for piece in pieces)
    pad = " " * (indent + _STEP)
    return "(\n" + "\n".join(pad + _quote(piece) for piece in pieces) + "\n" + " " * indent + ")"


def _function_name(function: Callable[..., object]) -> str:
    name = getattr(function, "__name__", "")
    if not name.isidentifier():
        raise MigrationError(
            f"cannot write {function!r} to a migration file: use a function defined with `def`, not a lambda"
        )
    return name


# -- whole files ----------------------------------------------------------

_EMPTY_EXAMPLE = '''\
# Write data steps or raw SQL here, for example:
#
# def forward(ctx):
#     ctx.connection.exec_driver_sql("UPDATE users SET active = TRUE WHERE active IS NULL")
#
#
# def backward(ctx):
#     ctx.connection.exec_driver_sql("UPDATE users SET active = NULL")
#
#
# operations = [
#     RunPython(forward, reverse=backward),
#     ExecuteSQL(
#         "CREATE VIEW active_users AS SELECT * FROM users WHERE active",
#         reverse="DROP VIEW active_users",
#     ),
# ]

operations = []
'''


def render_migration(
    revision: str,
    parent: str | None,
    message: str,
    operations: Sequence[Operation],
    created: datetime,
    replaces: Sequence[str] = (),
) -> str:
    """The full source of a migration file (`replaces`: the revisions a squashed migration stands for).

    Functions used by `RunPython` steps are written above the operations (their
    source when it can be found, else a stub to fill in). An empty operation list
    gives a commented example of data steps instead.
    """
    text = _header(revision, parent, message, created)
    text += "from schemashift.migration import *  # noqa: F401,F403\n\n"
    text += f"revision = {_quote(revision)}\nparent = {render_value(parent)}\nmessage = {render_value(message)}\n"
    if replaces:
        text += f"replaces = {render_value(list(replaces))}\n"
    functions = [_function_source(function).rstrip("\n") + "\n" for function in _functions_of(operations)]
    if functions:
        text += "\n\n" + "\n\n".join(functions) + "\n"
    text += "\n" + (_operations_block(operations) if operations else _EMPTY_EXAMPLE)
    return text


def _header(revision: str, parent: str | None, message: str, created: datetime) -> str:
    summary = message.strip() or "(no message)"
    if summary[-1] not in ".!?":
        summary += "."
    summary = "".join(_docstring_char(char) for char in summary).replace('"""', '\\"\\"\\"')
    return (
        f'"""{summary}\n\n'
        f"Revision: {revision}\n"
        f"Parent: {parent if parent is not None else '(none)'}\n"
        f"Created: {created:%Y-%m-%d %H:%M}\n"
        '"""\n'
    )


def _docstring_char(char: str) -> str:
    """`char` as it may appear inside a docstring (escapes for backslashes and control characters)."""
    if char == "\\":
        return "\\\\"
    if char == "\n" or char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")


def _operations_block(operations: Iterable[Operation]) -> str:
    lines = ["operations = ["]
    for operation in operations:
        lines.append(" " * _STEP + _render(operation, _STEP, _STEP, nested=True) + ",")
    lines.append("]")
    return "\n".join(lines) + "\n"


def _functions_of(operations: Iterable[Operation]) -> list[Callable[..., object]]:
    """The distinct functions `RunPython` steps call, in order of appearance."""
    found: dict[str, Callable[..., object]] = {}
    for operation in operations:
        if isinstance(operation, RunPython):
            for function in (operation.forward, operation.reverse):
                if function is not None:
                    found.setdefault(_function_name(function), function)
    return list(found.values())


def _function_source(function: Callable[..., object]) -> str:
    """The `def` of `function` as written, or a stub when its source is unknown."""
    name = _function_name(function)
    if isinstance(function, FunctionType):
        try:
            source = textwrap.dedent(inspect.getsource(function))
        except (OSError, TypeError):
            source = ""
        if f"def {name}(" in source and not source.lstrip().startswith("@"):
            return source
    return (
        f"def {name}(ctx):\n"
        f'    """Data step {name}: `ctx` has connection, dialect, env and vars."""\n'
        f'    raise NotImplementedError("write the data step {name}")\n'
    )
