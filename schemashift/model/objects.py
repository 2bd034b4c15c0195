"""Schema objects beyond tables: views, functions, triggers, extensions and row-level-security policies.

Plain frozen records, kept in `Schema.objects` under `object_key` (``"view public.v"``).
A definition is SQL text: the body after ``CREATE VIEW name AS`` (a SELECT), after
``CREATE FUNCTION signature`` (``RETURNS … LANGUAGE … AS $$ … $$``), after
``CREATE TRIGGER name`` (``BEFORE UPDATE ON t FOR EACH ROW …``) or after ``CREATE
POLICY name ON table`` (``FOR SELECT USING (…)``). `definitions` holds
``(dialect name, SQL)`` pairs where a database gets its own form (a SQLAlchemy
selectable compiled per database); `only_on` names the databases an object exists
on when not all. A database that lacks a kind (functions on SQLite) does not get it.
`renamed_from` (models only, never compared nor written) names the object a
declaration renames.

Dependencies are read from the text: an object depends on the tables and objects
whose names appear in it as identifiers (`mentions`), which is enough to order
creates and drops and to find the views a column change must go around.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import ClassVar

from schemashift.model.schema import qualify

#: Identifiers in SQL text, string literals and dollar-quoted bodies skipped.
_TOKENS = re.compile(r"""'(?:[^']|'')*'|"((?:[^"]|"")*)"|`((?:[^`]|``)*)`|([A-Za-z_][A-Za-z0-9_$]*)""")


@lru_cache(maxsize=4096)
def identifiers(sql: str) -> frozenset[str]:
    """The identifiers (quoted ones unquoted, bare ones lower-cased) in `sql`, string literals left out.

    Cached by text: the differ asks for every object's names many times (dependency order)."""
    found: set[str] = set()
    for match in _TOKENS.finditer(sql):
        quoted, backquoted, bare = match.groups()
        if quoted is not None:
            found.add(quoted.replace('""', '"'))
        elif backquoted is not None:
            found.add(backquoted.replace("``", "`"))
        elif bare is not None:
            found.add(bare.lower())
    return frozenset(found)


def rename_mentions(sql: str, old: str, new: str) -> str:
    """`sql` with the identifier `old` (bare, any case, or quoted exactly) written `new`; string literals kept."""

    def swap(match: re.Match[str]) -> str:
        quoted, backquoted, bare = match.groups()
        if (quoted is not None and quoted == old) or (backquoted is not None and backquoted == old):
            return match.group(0)[0] + new + match.group(0)[-1]
        if bare is not None and bare.lower() == old.lower():
            return new
        return match.group(0)

    return _TOKENS.sub(swap, sql)


def squeeze(sql: str) -> str:
    """`sql` with runs of white space made one space, trimmed, without a trailing semicolon."""
    return " ".join(sql.split()).rstrip(";").rstrip()


class SchemaObject:
    """Base of the records: the fields every kind has."""

    kind: ClassVar[str] = ""
    #: Kinds created before tables (a column may use an extension's type) and dropped after them.
    early: ClassVar[bool] = False
    name: str
    definition: str
    definitions: tuple[tuple[str, str], ...]
    only_on: tuple[str, ...]

    @property
    def key(self) -> str:
        """The name that identifies the object among those of its kind."""
        raise NotImplementedError

    def definition_on(self, dialect: str | None) -> str:
        """The definition as database `dialect` gets it."""
        for name, sql in self.definitions:
            if name == dialect:
                return sql
        return self.definition

    def on(self, dialect: str | None) -> SchemaObject:
        """This object as database `dialect` has it (its own definition, without per-database forms or `only_on`)."""
        if not self.definitions and not self.only_on:
            return self
        return replace(self, definition=self.definition_on(dialect), definitions=(), only_on=())  # type: ignore[type-var]

    def exists_on(self, names: Iterable[str]) -> bool:
        """True when the object exists on a database called any of `names`."""
        return not self.only_on or bool(set(self.only_on) & set(names))

    def mentions(self) -> frozenset[str]:
        """The identifiers its definitions mention (every database's form)."""
        texts = [self.definition, *(sql for _, sql in self.definitions)]
        return frozenset().union(*(identifiers(text) for text in texts))

    def label(self) -> str:
        """``view public.v``, ``function touch()`` … for humans."""
        return f"{self.kind.replace('_', ' ')} {self.key}"


def _tuple(record: object, *names: str) -> None:
    for name in names:
        value = getattr(record, name)
        if not isinstance(value, tuple):
            object.__setattr__(record, name, tuple(tuple(v) if isinstance(v, list) else v for v in value))


@dataclass(frozen=True)
class ViewDef(SchemaObject):
    """A view (or a materialized view) over a SELECT."""

    name: str
    definition: str
    schema: str | None = None
    materialized: bool = False
    definitions: tuple[tuple[str, str], ...] = ()
    only_on: tuple[str, ...] = ()
    renamed_from: str | None = field(default=None, compare=False)  #: the old name (models only)
    kind: ClassVar[str] = "view"

    def __post_init__(self) -> None:
        _tuple(self, "definitions", "only_on")

    @property
    def key(self) -> str:
        return qualify(self.name, self.schema)

    def label(self) -> str:
        return f"{'materialized view' if self.materialized else 'view'} {self.key}"


def function_name(signature: str) -> str:
    """The name part of a function signature (``touch`` of ``touch()``)."""
    return signature.split("(", 1)[0].strip()


@dataclass(frozen=True)
class FunctionDef(SchemaObject):
    """A function: its signature (``name(arg types)``) and the rest of its ``CREATE FUNCTION``."""

    signature: str
    definition: str
    schema: str | None = None
    definitions: tuple[tuple[str, str], ...] = ()
    only_on: tuple[str, ...] = ()
    renamed_from: str | None = field(default=None, compare=False)  #: the old name (models only)
    kind: ClassVar[str] = "function"

    def __post_init__(self) -> None:
        _tuple(self, "definitions", "only_on")

    @property
    def name(self) -> str:  # type: ignore[override]
        return function_name(self.signature)

    @property
    def key(self) -> str:
        return qualify(squeeze(self.signature).replace(" (", "(").replace(", ", ","), self.schema)


@dataclass(frozen=True)
class TableObject(SchemaObject):
    """An object defined on `table` (a table key), named within it: a trigger or a policy."""

    name: str
    table: str
    definition: str
    definitions: tuple[tuple[str, str], ...] = ()
    only_on: tuple[str, ...] = ()
    renamed_from: str | None = field(default=None, compare=False)  #: the old name (models only)

    def __post_init__(self) -> None:
        _tuple(self, "definitions", "only_on")

    @property
    def key(self) -> str:
        return f"{self.table}.{self.name}"


@dataclass(frozen=True)
class TriggerDef(TableObject):
    """A trigger on `table`: the rest of its ``CREATE TRIGGER name``."""

    kind: ClassVar[str] = "trigger"


@dataclass(frozen=True)
class ExtensionDef(SchemaObject):
    """A database extension (``CREATE EXTENSION``), optionally installed into `schema`."""

    name: str
    schema: str | None = None
    only_on: tuple[str, ...] = ()
    kind: ClassVar[str] = "extension"
    early: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _tuple(self, "only_on")

    @property
    def definition(self) -> str:  # type: ignore[override]
        return ""

    @property
    def definitions(self) -> tuple[tuple[str, str], ...]:  # type: ignore[override]
        return ()

    def on(self, dialect: str | None) -> SchemaObject:
        return replace(self, only_on=()) if self.only_on else self

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class PolicyDef(TableObject):
    """A row-level-security policy on `table`: the rest of its ``CREATE POLICY name ON table``."""

    kind: ClassVar[str] = "policy"


#: Every record class by kind.
KINDS: dict[str, type[SchemaObject]] = {cls.kind: cls for cls in (ViewDef, FunctionDef, TriggerDef, ExtensionDef,
                                                                     PolicyDef)}

#: Creation order of the kinds (drops run in the reverse order).
ORDER = ("extension", "function", "view", "trigger", "policy")


def renamed(obj: SchemaObject, name: str) -> SchemaObject:
    """`obj` called `name` (a function keeps its argument types)."""
    if isinstance(obj, FunctionDef):
        return replace(obj, signature=name + obj.signature[len(obj.name):], renamed_from=None)
    changed: object = replace(obj, name=name, renamed_from=None)  # type: ignore[type-var]
    return changed  # type: ignore[return-value]


#: Kinds whose stored definition follows a rename of what it uses (views, triggers and policies keep
#: references, not text, on PostgreSQL); a function's body is text and does not follow.
FOLLOWS_RENAMES = ("view", "trigger", "policy")


def with_mention_renamed(obj: SchemaObject, old: str, new: str) -> SchemaObject:
    """`obj` with its definitions naming `new` where they named `old` (kinds in `FOLLOWS_RENAMES` only)."""
    if obj.kind not in FOLLOWS_RENAMES or old.lower() not in {name.lower() for name in obj.mentions()}:
        return obj
    forms = tuple((name, rename_mentions(sql, old, new)) for name, sql in obj.definitions)
    changed: object = replace(obj, definition=rename_mentions(obj.definition, old, new),  # type: ignore[type-var]
                              definitions=forms)
    return changed  # type: ignore[return-value]


def table_of(obj: SchemaObject) -> str | None:
    """The key of the table `obj` belongs to (triggers, policies), else None."""
    table = getattr(obj, "table", None)
    return table if isinstance(table, str) else None


def object_key(obj: SchemaObject) -> str:
    """The key of `obj` in `Schema.objects`: ``"<kind> <key>"``."""
    return f"{obj.kind} {obj.key}"
