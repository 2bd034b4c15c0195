"""Declaring views, functions, triggers, extensions and policies next to the models.

    View("active_users", sa.select(users).where(users.c.active), metadata=Base.metadata)
    Function("touch()", "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated = now(); RETURN NEW; END $$",
             metadata=Base.metadata)
    Trigger("users_touch", "users", "BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch()",
            metadata=Base.metadata)

A declaration registers itself in ``metadata.info["schemashift.objects"]``, where
`declared_objects` (called by `from_metadata`) finds it and turns it into the
neutral record of `schemashift.model.objects`. A view's SQLAlchemy selectable is
compiled for each database schemashift targets, with literal values inlined.
`only_on=("postgresql",)` keeps an object off the other databases (declared again with
`only_on=("sqlite",)`, the same object gets its SQLite form); `renamed_from="old"`
renames the object declared as "old" before (views, functions, triggers, policies).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from schemashift.model.objects import (
    ExtensionDef,
    FunctionDef,
    PolicyDef,
    SchemaObject,
    TriggerDef,
    ViewDef,
    object_key,
)
from schemashift.model.schema import qualify

#: The `MetaData.info` entry holding the declarations.
INFO_KEY = "schemashift.objects"


class Declaration:
    """Base of the declarations: registration on the MetaData and the neutral record."""

    def __init__(self, metadata: sa.MetaData, only_on: Iterable[str], renamed_from: str | None = None) -> None:
        self.metadata = metadata
        self.only_on = tuple(only_on)
        self.renamed_from = renamed_from
        metadata.info.setdefault(INFO_KEY, []).append(self)

    def record(self) -> SchemaObject:
        """The neutral record of this declaration."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.record().key!r})"


def _text(definition: object, what: str) -> str:
    if not isinstance(definition, str) or not definition.strip():
        raise TypeError(f"{what}: the definition must be non-empty SQL text")
    return definition.strip()


class View(Declaration):
    """A view (``materialized=True``: a materialized view, PostgreSQL only) over `definition`,
    a SELECT as SQL text or a SQLAlchemy selectable."""

    def __init__(self, name: str, definition: str | sa.Selectable, *, metadata: sa.MetaData,
                 schema: str | None = None, materialized: bool = False, only_on: Iterable[str] = (),
                 renamed_from: str | None = None) -> None:
        if not isinstance(definition, str) and not isinstance(definition, sa.sql.expression.Selectable):
            raise TypeError(f"View {name!r}: the definition must be SQL text or a SQLAlchemy selectable")
        self.name, self.definition, self.schema, self.materialized = name, definition, schema, materialized
        super().__init__(metadata, only_on, renamed_from)

    def record(self) -> SchemaObject:
        forms: tuple[tuple[str, str], ...] = ()
        if isinstance(self.definition, str):
            text = _text(self.definition, f"View {self.name!r}")
        else:
            text, forms = compiled_forms(self.definition)
        return ViewDef(self.name, text, schema=self.schema, materialized=self.materialized, definitions=forms,
                       only_on=self.only_on, renamed_from=self.renamed_from)


def compiled_forms(selectable: sa.Selectable) -> tuple[str, tuple[tuple[str, str], ...]]:
    """`selectable` compiled for each target database (values inlined): the first form and the others that differ."""
    from schemashift.dialects import targets

    forms = [(name, _compile(selectable, dialect)) for name, dialect in targets()]
    first = forms[0][1]
    return first, tuple((name, sql) for name, sql in forms if sql != first)


def _compile(selectable: sa.Selectable, dialect: Any) -> str:
    return " ".join(str(selectable.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).split())


class Function(Declaration):
    """A function (PostgreSQL): ``signature`` like ``touch()``, `definition` the rest of its CREATE FUNCTION."""

    def __init__(self, signature: str, definition: str, *, metadata: sa.MetaData, schema: str | None = None,
                 only_on: Iterable[str] = (), renamed_from: str | None = None) -> None:
        self.signature, self.schema = signature.strip(), schema
        self.definition = _text(definition, f"Function {signature!r}")
        super().__init__(metadata, only_on, renamed_from)

    def record(self) -> SchemaObject:
        return FunctionDef(self.signature, self.definition, schema=self.schema, only_on=self.only_on,
                           renamed_from=self.renamed_from)


class Trigger(Declaration):
    """A trigger called `name` on `table` (a name or ``schema.name``): `definition` follows ``CREATE TRIGGER name``."""

    def __init__(self, name: str, table: str | sa.Table, definition: str, *, metadata: sa.MetaData,
                 only_on: Iterable[str] = (), renamed_from: str | None = None) -> None:
        self.name, self.table = name, _table_key(table)
        self.definition = _text(definition, f"Trigger {name!r}")
        super().__init__(metadata, only_on, renamed_from)

    def record(self) -> SchemaObject:
        return TriggerDef(self.name, self.table, self.definition, only_on=self.only_on, renamed_from=self.renamed_from)


class Extension(Declaration):
    """A database extension (PostgreSQL ``CREATE EXTENSION``), optionally into `schema`."""

    def __init__(self, name: str, *, metadata: sa.MetaData, schema: str | None = None,
                 only_on: Iterable[str] = ()) -> None:
        self.name, self.schema = name, schema
        super().__init__(metadata, only_on)

    def record(self) -> SchemaObject:
        return ExtensionDef(self.name, schema=self.schema, only_on=self.only_on)


class Policy(Declaration):
    """A row-level-security policy (PostgreSQL) on `table`: `definition` follows ``CREATE POLICY name ON table``,
    e.g. ``FOR SELECT USING (owner = current_user)``. Row-level security is enabled on a table with a policy."""

    def __init__(self, name: str, table: str | sa.Table, definition: str, *, metadata: sa.MetaData,
                 only_on: Iterable[str] = (), renamed_from: str | None = None) -> None:
        self.name, self.table = name, _table_key(table)
        self.definition = _text(definition, f"Policy {name!r}")
        super().__init__(metadata, only_on, renamed_from)

    def record(self) -> SchemaObject:
        return PolicyDef(self.name, self.table, self.definition, only_on=self.only_on, renamed_from=self.renamed_from)


def _table_key(table: str | sa.Table) -> str:
    return qualify(table.name, table.schema) if isinstance(table, sa.Table) else table


def declared_objects(metadatas: Iterable[sa.MetaData]) -> dict[str, SchemaObject]:
    """The neutral records of every object declared on `metadatas`, by `object_key`: declarations of one object
    for different databases (disjoint `only_on`) become one record with a form per database; else a later one wins."""
    found: dict[str, SchemaObject] = {}
    for metadata in metadatas:
        for declaration in metadata.info.get(INFO_KEY, ()):
            record = declaration.record()
            key = object_key(record)
            earlier = found.get(key)
            found[key] = record if earlier is None else merged(earlier, record)
    return found


def merged(earlier: SchemaObject, later: SchemaObject) -> SchemaObject:
    """One record for two declarations of an object on different databases (`later` when they overlap)."""
    if not earlier.only_on or not later.only_on or set(earlier.only_on) & set(later.only_on):
        return later
    only_on = (*earlier.only_on, *later.only_on)
    changes: Any = earlier
    if isinstance(earlier, ExtensionDef):
        result: SchemaObject = replace(changes, only_on=only_on)
        return result
    forms = {name: earlier.definition_on(name) for name in earlier.only_on}
    forms.update({name: later.definition_on(name) for name in later.only_on})
    result = replace(changes, definitions=tuple(forms.items()), only_on=only_on)
    return result
