"""The differ's part for views, functions, triggers, extensions and policies.

Objects are compared whole (kind, key, definition, options): one only in the new
schema is created, one only in the old is dropped, one in both that differs is
replaced. Order around the table operations:

* extensions are created first of all (a column may use their types) and dropped last;
* the other drops come before every table operation, in reverse dependency order;
* creates come after every table operation: functions, views (after the views they
  use), triggers, policies;
* a view or policy over a table whose columns change, or that is dropped or
  renamed, is dropped before the change and created again after it ("cannot alter
  type of a column used by a view"), and so is every view over such a view;
* a changed view, trigger or policy with nothing around it is one `ReplaceObject`,
  a changed function always is (``CREATE OR REPLACE``);
* a declaration with ``renamed_from="old"`` whose old object is gone is a
  `RenameObject` first (then replaced when its definition changed too);
* a dropped object and a created one of the same kind that differ only in their
  names (same definition white space aside, same table for a trigger or policy,
  same schema, a function's same argument types) are put to the differ's `ask`
  as a possible rename, as tables are (a terminal prompt, else ``renamed_from=``
  or ``--no-rename``).

Dependencies are read from names in the definitions (`SchemaObject.mentions`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

from schemashift.model.objects import ORDER, SchemaObject, object_key, renamed, squeeze, table_of
from schemashift.model.schema import Schema
from schemashift.operations import (
    AlterColumn,
    DropColumn,
    DropTable,
    Operation,
    RenameColumn,
    RenameTable,
)
from schemashift.operations.objects import (
    CreateObject,
    DropObject,
    RenameObject,
    ReplaceObject,
)

#: Table operations that a view over the table must be dropped and created again around.
_RESHAPING = (AlterColumn, DropColumn, RenameColumn, DropTable, RenameTable)


#: Asks whether the object labelled by the first text was renamed to the name in the second (kind first).
Ask = Callable[[str, str, str], bool]


def with_object_changes(old: Schema, new: Schema, table_operations: list[Operation],
                        ask: Ask | None = None) -> list[Operation]:
    """`table_operations` with the object operations that turn `old`'s objects into `new`'s around them;
    `ask` decides possible renames (None: none guessed)."""
    if not old.objects and not new.objects:
        return table_operations
    renames, old = _renames(old, new)
    if ask is not None:
        guessed, old = _guessed_renames(old, new, ask)
        renames += guessed
    touched = {op.table_key for op in table_operations if isinstance(op, _RESHAPING) and op.table_key}
    around = _around(old, new, touched)
    drops: list[SchemaObject] = []
    creates: list[SchemaObject] = []
    replaces: list[Operation] = []
    for key, obj in old.objects.items():
        if key not in new.objects or key in around:
            drops.append(obj)
    for key, obj in new.objects.items():
        before = old.objects.get(key)
        if before is None or key in around:
            creates.append(_plain(obj))
        elif before != obj:
            replaces.append(ReplaceObject(_plain(obj), before))
    early_creates = [CreateObject(obj) for obj in _ordered(creates, new) if obj.early]
    late_drops = [_drop(obj) for obj in reversed(_ordered(drops, old)) if obj.early]
    first = [_drop(obj) for obj in reversed(_ordered(drops, old)) if not obj.early]
    last = [CreateObject(obj) for obj in _ordered(creates, new) if not obj.early]
    return early_creates + renames + first + table_operations + _replaces_in_order(replaces, new) + last + late_drops


def _renames(old: Schema, new: Schema) -> tuple[list[Operation], Schema]:
    """`RenameObject` for each new object whose `renamed_from` names an old one that is gone; `old` after them."""
    operations: list[Operation] = []
    for key, obj in new.objects.items():
        source = getattr(obj, "renamed_from", None)
        if not source or key in old.objects:
            continue
        old_key = object_key(renamed(obj, source))
        if old_key in old.objects and old_key not in new.objects:
            operation = RenameObject(obj.kind, old.objects[old_key].key, obj.name, definition=old.objects[old_key])
            operations.append(operation)
            old = operation.apply(old)
    return operations, old


def _guessed_renames(old: Schema, new: Schema, ask: Ask) -> tuple[list[Operation], Schema]:
    """`RenameObject` for each dropped object that `ask` confirms became a created one equal but for its name."""
    operations: list[Operation] = []
    added = [obj for key, obj in new.objects.items() if key not in old.objects and obj.kind != "extension"]
    dropped = [(key, obj) for key, obj in old.objects.items() if key not in new.objects and obj.kind != "extension"]
    for key, _ in sorted(dropped, key=lambda item: ORDER.index(item[1].kind)):  # a function before its triggers
        gone = old.objects[key]  # as earlier renames left it (a trigger naming a renamed function follows it)
        for candidate in [obj for obj in added if _same_but_name(gone, obj)]:
            if ask(gone.kind, gone.label(), candidate.name):
                operation = RenameObject(gone.kind, gone.key, candidate.name, definition=gone)
                operations.append(operation)
                old = operation.apply(old)
                added.remove(candidate)
                break
    return operations, old


def _same_but_name(gone: SchemaObject, candidate: SchemaObject) -> bool:
    """True when `gone` called `candidate`'s name is `candidate` (definitions compared white space aside)."""
    if gone.kind != candidate.kind or gone.name == candidate.name:
        return False
    return _squeezed(renamed(gone, candidate.name)) == _squeezed(_plain(candidate))


def _squeezed(obj: SchemaObject) -> SchemaObject:
    forms = tuple((name, squeeze(sql)) for name, sql in obj.definitions)
    changed: object = replace(obj, definition=squeeze(obj.definition), definitions=forms)  # type: ignore[type-var]
    return changed  # type: ignore[return-value]


def _plain(obj: SchemaObject) -> SchemaObject:
    """`obj` without its `renamed_from` hint (not written to migrations)."""
    if getattr(obj, "renamed_from", None) is None:
        return obj
    plain: object = replace(obj, renamed_from=None)  # type: ignore[type-var]
    return plain  # type: ignore[return-value]


def _drop(obj: SchemaObject) -> Operation:
    return DropObject(obj.kind, obj.key, definition=obj)


def _around(old: Schema, new: Schema, touched: set[str]) -> set[str]:
    """Keys of old objects to drop before the table operations and create again after them."""
    names = {_bare(key) for key in touched}
    around: set[str] = set()
    for key, obj in old.objects.items():
        changed = key in new.objects and new.objects[key] != obj
        over_touched = obj.kind in ("view", "policy") and bool(obj.mentions() & names or table_of(obj) in touched)
        if over_touched or (changed and obj.kind == "view" and _has_dependents(old, obj)):
            around.add(key)
    return _dependents_closure(old, around)


def _bare(key: str) -> str:
    return key.rpartition(".")[2]


def _has_dependents(schema: Schema, view: SchemaObject) -> bool:
    return any(other is not view and view.name in _names(other) for other in schema.objects.values())


def _names(obj: SchemaObject) -> frozenset[str]:
    mentioned = obj.mentions()
    return mentioned | frozenset(name.lower() for name in mentioned)


def _dependents_closure(schema: Schema, keys: set[str]) -> set[str]:
    """`keys` and every view or trigger that mentions a view among them, transitively."""
    result = set(keys)
    pending = list(keys)
    while pending:
        obj = schema.objects[pending.pop()]
        if obj.kind != "view":
            continue
        for key, other in schema.objects.items():
            if key not in result and other.kind in ("view", "trigger", "policy") and obj.name in _names(other):
                result.add(key)
                pending.append(key)
    return result


def _ordered(objects: Iterable[SchemaObject], schema: Schema) -> list[SchemaObject]:
    """`objects` in creation order: by kind (`ORDER`), views after the views they mention."""
    by_kind: dict[str, list[SchemaObject]] = {}
    for obj in sorted(objects, key=lambda item: item.key):
        by_kind.setdefault(obj.kind, []).append(obj)
    result: list[SchemaObject] = []
    for kind in ORDER:
        items = by_kind.get(kind, [])
        result += _views_in_order(items) if kind == "view" else items
    return result


def _views_in_order(views: list[SchemaObject]) -> list[SchemaObject]:
    """`views` with each after the others it mentions (a cycle keeps the given order)."""
    named: dict[str, list[SchemaObject]] = {}
    for view in views:
        named.setdefault(view.name, []).append(view)
    uses = {id(view): [other for name in _names(view) for other in named.get(name, ()) if other is not view]
            for view in views}
    placed: list[SchemaObject] = []
    done: set[int] = set()
    pending = list(views)
    while pending:
        ready = [view for view in pending if all(id(used) in done for used in uses[id(view)])]
        for view in ready or pending[:1]:
            placed.append(view)
            done.add(id(view))
        taken = {id(view) for view in ready or pending[:1]}
        pending = [view for view in pending if id(view) not in taken]
    return placed


def _replaces_in_order(replaces: list[Operation], schema: Schema) -> list[Operation]:
    order = {id(obj): index for index, obj in enumerate(_ordered((op.new for op in replaces  # type: ignore[attr-defined]
                                                                  ), schema))}
    return sorted(replaces, key=lambda op: order[id(op.new)])  # type: ignore[attr-defined]


class Holder(Protocol):
    """A database that says whether it gets an object (`schemashift.dialects.objects.ObjectDDL`)."""

    def has_object(self, obj: SchemaObject) -> bool: ...


def object_notes(operations: Iterable[Operation], databases: Iterable[tuple[str, Holder]]) -> list[str]:
    """One line per set of `databases` (``(name, dialect)``) that do not get some of the created objects."""
    targets = list(databases)
    missing: dict[tuple[str, ...], list[str]] = {}
    for op in operations:
        if isinstance(op, CreateObject):
            lacking = tuple(name for name, dialect in targets if not dialect.has_object(op.object))
            if lacking:
                missing.setdefault(lacking, []).append(op.object.label())
    return [f"not created on {', '.join(names)} (not available there): {_some(labels)}"
            for names, labels in missing.items()]


def _some(labels: list[str], shown: int = 5) -> str:
    more = f" and {len(labels) - shown} more" if len(labels) > shown else ""
    return ", ".join(labels[:shown]) + more
