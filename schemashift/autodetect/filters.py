"""Objects schemashift does not manage: `exclude` patterns and the `include_object` hook.

`exclude` (in the configuration and per environment) lists table and sequence
names or glob patterns (``legacy_*``), optionally qualified by a database schema
(``audit.*``). `include_object = "module:function"` names a function called as
``function(object, name, kind, reflected, compare_to)`` for every table, column,
index, constraint and sequence, like Alembic's hook (and for views, functions, triggers, extensions and policies,
kind ``view`` … ``policy``, by name as `exclude` patterns are): `object` is the neutral
model object (`schemashift.model.schema`), `kind` one of `KINDS`, `reflected`
True for what was read from the database, `compare_to` the object of the same
name on the other side (or None); a false answer leaves the object out.

An `ObjectFilter` is applied to both sides of every comparison (the live schema,
the models, the migrations' state), so a left-out object is never created,
dropped or reported. ``alembic_version`` is always left out, and so is a live table
shaped as Alembic's version table under another name (``version_table=``) that the
other side does not have.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from schemashift.errors import ConfigError
from schemashift.model.schema import Schema, Table

#: Tables never managed by schemashift, whatever the configuration says (Alembic's version table).
ALWAYS_EXCLUDED = ("alembic_version",)

#: The `kind` argument values of the `include_object` hook.
KINDS = ("table", "column", "index", "unique_constraint", "foreign_key_constraint", "check_constraint", "sequence")

IncludeHook = Callable[[Any, "str | None", str, bool, Any], Any]


@dataclass(frozen=True)
class ObjectFilter:
    """Which tables, sequences and table parts a comparison keeps."""

    patterns: tuple[str, ...] = ALWAYS_EXCLUDED
    hook: IncludeHook | None = None

    def excluded_name(self, name: str, schema: str | None = None) -> bool:
        """True when a table or sequence called `name` (in `schema`) matches an exclude pattern."""
        qualified = f"{schema}.{name}" if schema else name
        return any(fnmatchcase(name, pattern) or fnmatchcase(qualified, pattern) for pattern in self.patterns)

    def apply(self, schema: Schema, *, reflected: bool, other: Schema | None = None) -> Schema:
        """`schema` without the objects left out; `other` is the schema it is compared with (for `compare_to`)."""
        if not self.patterns and self.hook is None:
            return schema
        other_tables = other.tables if other is not None else {}
        other_sequences = other.sequences if other is not None else {}
        tables = []
        for key, table in schema.tables.items():
            counterpart = other_tables.get(key)
            if self.excluded_name(table.name, table.schema) or (reflected and counterpart is None and alembic_shaped(
                    table)) or not self._include(table, table.name, "table", reflected, counterpart):
                continue
            tables.append(self._parts(table, reflected, counterpart))
        sequences = [sequence for key, sequence in schema.sequences.items()
                     if not self.excluded_name(sequence.name, sequence.schema)
                     and self._include(sequence, sequence.name, "sequence", reflected, other_sequences.get(key))]
        objects = self._objects(schema, reflected, other)
        if len(tables) == len(schema.tables) and len(sequences) == len(schema.sequences) and all(
                table is schema.tables[table.key] for table in tables) and len(objects) == len(schema.objects):
            return schema
        return Schema.of(tables, sequences, objects)

    def _objects(self, schema: Schema, reflected: bool, other: Schema | None) -> dict[str, Any]:
        """The views, functions, triggers… kept: by name (``schema.name`` for views), and by the hook (their kind)."""
        others = other.objects if other is not None else {}
        return {key: obj for key, obj in schema.objects.items()
                if not self.excluded_name(obj.name, getattr(obj, "schema", None))
                and self._include(obj, obj.name, obj.kind, reflected, others.get(key))}

    def _include(self, obj: object, name: str | None, kind: str, reflected: bool, compare_to: object) -> bool:
        if self.hook is None:
            return True
        return bool(self.hook(obj, name, kind, reflected, compare_to))

    def _parts(self, table: Table, reflected: bool, other: Table | None) -> Table:
        """`table` without the columns, indexes and constraints the hook leaves out."""
        if self.hook is None:
            return table
        changes: dict[str, tuple[Any, ...]] = {}
        for field, kind, key in (("columns", "column", _name), ("indexes", "index", _name),
                                 ("uniques", "unique_constraint", _named_or_columns),
                                 ("foreign_keys", "foreign_key_constraint", _named_or_columns),
                                 ("checks", "check_constraint", _name)):
            items: tuple[Any, ...] = getattr(table, field)
            others = {key(item): item for item in getattr(other, field)} if other is not None else {}
            kept = tuple(item for item in items
                         if self._include(item, getattr(item, "name", None), kind, reflected, others.get(key(item))))
            if len(kept) != len(items):
                changes[field] = kept
        return table.evolve(**changes) if changes else table


def alembic_shaped(table: Table) -> bool:
    """True for a table shaped as Alembic's version table (one ``version_num`` column), whatever its name."""
    return len(table.columns) == 1 and table.columns[0].name == "version_num"


def _name(item: Any) -> object:
    return item.name


def _named_or_columns(item: Any) -> object:
    return item.name or tuple(item.columns)


def object_filter(patterns: Iterable[str] = (), include_object: str | None = None, *,
                  root: str | None = None) -> ObjectFilter:
    """The filter for `patterns` (plus `ALWAYS_EXCLUDED`) and the ``module:function`` hook (imported now)."""
    merged = tuple(dict.fromkeys([*ALWAYS_EXCLUDED, *patterns]))
    hook = load_hook(include_object, root=root) if include_object else None
    return ObjectFilter(merged, hook)


def load_hook(spec: str, *, root: str | None = None) -> IncludeHook:
    """Import the ``module:function`` named by `include_object`."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise ConfigError(f"include_object {spec!r} must look like 'package.module:function'")
    if root is not None and sys.path[:1] != [root]:
        sys.path.insert(0, root)
    try:
        target: Any = importlib.import_module(module_name.strip())
        for part in attr.strip().split("."):
            target = getattr(target, part)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's
        raise ConfigError(f"cannot import include_object {spec!r}: {type(exc).__name__}: {exc}") from None
    if not callable(target):
        raise ConfigError(f"include_object {spec!r} is not a function")
    return target  # type: ignore[no-any-return]

