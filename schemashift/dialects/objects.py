"""Views, functions, triggers, extensions and policies on a database: capabilities, DDL, reading, settling.

`ObjectDDL` is mixed into `Dialect`: it declares which kinds a database has
(`supports_views`, `supports_materialized_views`, `supports_functions`,
`supports_triggers`, `supports_extensions`, `supports_policies`) and compiles
`CreateObject`, `DropObject` and `ReplaceObject`; an object this database lacks
compiles to nothing (`generate`, which has no database, notes it). Each
database's module ``schemashift.dialects.<name>.objects`` (`objects_module`)
reads the live objects (`read`) and *probes* declared ones (`probe`): it creates
them under a scratch name, reads the database's own text of them back and
removes them again (a rolled-back transaction where DDL is transactional), so
that a definition is compared as the database normalises it (`settle`). After an
upgrade, `remember_texts` keeps the hashes of each created object's declared
definition and of the database's text of it (`TEXTS_TABLE`), so that `settle`
probes only objects whose pair it does not know (changed outside schemashift).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

from schemashift.model.objects import (
    ExtensionDef,
    FunctionDef,
    PolicyDef,
    SchemaObject,
    TriggerDef,
    ViewDef,
    object_key,
    squeeze,
    table_of,
)
from schemashift.model.schema import Schema
from schemashift.operations.objects import (
    CreateObject,
    DropObject,
    RenameObject,
    ReplaceObject,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

#: Prefix of the names probes create (and remove at once).
PROBE_PREFIX = "schemashift_probe_"

#: The table remembering, per object an upgrade created or replaced, the hash of the definition it was given and
#: of the text the database made of it (`remember_texts`), so that `settle` need not probe it again; the prefix
#: keeps it out of reflection, fingerprints and diffs. One row per object (primary key: Galera needs one).
TEXTS_TABLE = "_schemashift_objects"

#: The longest object key remembered (the key column's length); longer ones are probed each time.
_KEY_LENGTH = 255


class ObjectDDL:
    """The object part of a dialect (mixed into `schemashift.dialects.base.Dialect`)."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]]
    #: Views (``CREATE VIEW``).
    supports_views: ClassVar[bool] = True
    #: Materialized views (``CREATE MATERIALIZED VIEW``).
    supports_materialized_views: ClassVar[bool] = False
    #: Functions (``CREATE FUNCTION`` with a body in the declaration's language).
    supports_functions: ClassVar[bool] = False
    #: Triggers (``CREATE TRIGGER``).
    supports_triggers: ClassVar[bool] = True
    #: Extensions (``CREATE EXTENSION``).
    supports_extensions: ClassVar[bool] = False
    #: Row-level-security policies (``CREATE POLICY``).
    supports_policies: ClassVar[bool] = False
    #: ``DROP TRIGGER name ON table`` (triggers are named per table) rather than ``DROP TRIGGER name``.
    triggers_per_table: ClassVar[bool] = False
    #: Kinds renamed in place (``ALTER … RENAME``); others are dropped and created again under the new name.
    renames_in_place: ClassVar[frozenset[str]] = frozenset()
    #: How a view is renamed in place (``{view}``: ``VIEW`` or ``MATERIALIZED VIEW``).
    view_rename: ClassVar[str] = "ALTER {view} {old} RENAME TO {new}"
    #: Module reading and probing this database's objects (``read``, ``probe``); None: none.
    objects_module: ClassVar[str | None] = None

    def quote(self, name: str) -> str:
        raise NotImplementedError

    def table_name(self, name: str, schema: str | None = None) -> str:
        raise NotImplementedError

    # --- capabilities --------------------------------------------------------

    def has_object(self, obj: SchemaObject) -> bool:
        """True when this database gets `obj`: it has its kind and `obj` is not kept to other databases."""
        supported = {
            "view": self.supports_materialized_views if getattr(obj, "materialized", False) else self.supports_views,
            "function": self.supports_functions,
            "trigger": self.supports_triggers,
            "extension": self.supports_extensions,
            "policy": self.supports_policies,
        }
        return supported.get(obj.kind, False) and obj.exists_on((self.name, *self.aliases))

    def own_objects(self, schema: Schema) -> Schema:
        """`schema` with only the objects this database gets, each in its form for this database."""
        objects = {key: obj.on(self.name) for key, obj in schema.objects.items() if self.has_object(obj)}
        if objects == schema.objects:
            return schema
        return replace(schema, objects=objects)

    # --- compilation ---------------------------------------------------------------

    def compile_create_object(self, op: CreateObject, before: Schema, after: Schema) -> list[str]:
        """The statements creating `op.object` here (none where this database lacks it)."""
        if not self.has_object(op.object):
            return []
        return self.create_object_sql(op.object.on(self.name), before)

    def compile_drop_object(self, op: DropObject, before: Schema, after: Schema) -> list[str]:
        """The statements dropping the object (none where this database lacks it)."""
        if op.definition is None or not self.has_object(op.definition):
            return []
        return self.drop_object_sql(op.definition.on(self.name), after)

    def compile_replace_object(self, op: ReplaceObject, before: Schema, after: Schema) -> list[str]:
        """Drop and create (or the database's replacing form) where both forms exist here."""
        old = op.old if op.old is not None and self.has_object(op.old) else None
        new = op.new if self.has_object(op.new) else None
        if old is None:
            return [] if new is None else self.create_object_sql(new.on(self.name), before)
        if new is None:
            return self.drop_object_sql(old.on(self.name), after)
        return self.replace_object_sql(old.on(self.name), new.on(self.name), before, after)

    def compile_rename_object(self, op: RenameObject, before: Schema, after: Schema) -> list[str]:
        """``ALTER … RENAME`` where the database renames the kind in place, else drop and create."""
        old, new = op.definition, op.renamed
        if old is None or new is None or not self.has_object(old):
            return []
        if old.kind not in self.renames_in_place:
            return self.drop_object_sql(old.on(self.name), after) + self.create_object_sql(new.on(self.name), before)
        return [self.rename_object_sql(old, new)]

    def rename_object_sql(self, old: SchemaObject, new: SchemaObject) -> str:
        """The in-place rename of `old` to `new`'s name."""
        target = self.quote(new.name)
        if isinstance(old, ViewDef):
            view = "MATERIALIZED VIEW" if old.materialized else "VIEW"
            return self.view_rename.format(view=view, old=self.table_name(old.name, old.schema), new=target)
        if isinstance(old, FunctionDef):
            return f"ALTER FUNCTION {self.function_name(old)} RENAME TO {target}"
        if isinstance(old, (TriggerDef, PolicyDef)):
            kind = "TRIGGER" if isinstance(old, TriggerDef) else "POLICY"
            return f"ALTER {kind} {self.quote(old.name)} ON {self.qualified_table(old.table)} RENAME TO {target}"
        raise NotImplementedError(old.kind)

    def replace_object_sql(self, old: SchemaObject, new: SchemaObject, before: Schema, after: Schema) -> list[str]:
        """Give an object its new definition: generic form drop, then create."""
        return self.drop_object_sql(old, after) + self.create_object_sql(new, before)

    def create_object_sql(self, obj: SchemaObject, before: Schema) -> list[str]:
        """``CREATE VIEW/FUNCTION/TRIGGER/EXTENSION/POLICY`` for `obj`."""
        if isinstance(obj, ViewDef):
            materialized = "MATERIALIZED " if obj.materialized else ""
            return [f"CREATE {materialized}VIEW {self.table_name(obj.name, obj.schema)} AS {_body(obj.definition)}"]
        if isinstance(obj, FunctionDef):
            return [f"CREATE OR REPLACE FUNCTION {self.function_name(obj)} {_body(obj.definition)}"]
        if isinstance(obj, TriggerDef):
            return [f"CREATE TRIGGER {self.quote(obj.name)} {_body(obj.definition)}"]
        if isinstance(obj, ExtensionDef):
            into = f" SCHEMA {self.quote(obj.schema)}" if obj.schema else ""
            return [f"CREATE EXTENSION IF NOT EXISTS {self.quote(obj.name)}{into}"]
        if isinstance(obj, PolicyDef):
            return self.create_policy_sql(obj, before)
        raise NotImplementedError(obj.kind)

    def drop_object_sql(self, obj: SchemaObject, after: Schema) -> list[str]:
        """``DROP …`` for `obj`."""
        if isinstance(obj, ViewDef):
            materialized = "MATERIALIZED " if obj.materialized else ""
            return [f"DROP {materialized}VIEW {self.table_name(obj.name, obj.schema)}"]
        if isinstance(obj, FunctionDef):
            return [f"DROP FUNCTION {self.function_name(obj)}"]
        if isinstance(obj, TriggerDef):
            return [self.drop_trigger_sql(obj)]
        if isinstance(obj, ExtensionDef):
            return [f"DROP EXTENSION IF EXISTS {self.quote(obj.name)}"]
        if isinstance(obj, PolicyDef):
            return self.drop_policy_sql(obj, after)
        raise NotImplementedError(obj.kind)

    def function_name(self, obj: FunctionDef) -> str:
        """The signature, schema-qualified when the function has a schema."""
        return f"{self.quote(obj.schema)}.{obj.signature}" if obj.schema else obj.signature

    def drop_trigger_sql(self, obj: TriggerDef) -> str:
        """``DROP TRIGGER name``, with ``ON table`` where `triggers_per_table`."""
        table = f" ON {self.qualified_table(obj.table)}" if self.triggers_per_table else ""
        return f"DROP TRIGGER {self.quote(obj.name)}{table}"

    def create_policy_sql(self, obj: PolicyDef, before: Schema) -> list[str]:
        """Row-level security enabled on the table (with its first policy), then ``CREATE POLICY``."""
        table = self.qualified_table(obj.table)
        enable = [] if _policies_on(before, obj.table) else [f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"]
        return [*enable, f"CREATE POLICY {self.quote(obj.name)} ON {table} {_body(obj.definition)}"]

    def drop_policy_sql(self, obj: PolicyDef, after: Schema) -> list[str]:
        """``DROP POLICY``, then row-level security disabled when the table has no policy left."""
        table = self.qualified_table(obj.table)
        left = _policies_on(after, obj.table) or obj.table not in after
        disable = [] if left else [f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"]
        return [f"DROP POLICY {self.quote(obj.name)} ON {table}", *disable]

    def qualified_table(self, key: str) -> str:
        """The table `key` (``name`` or ``schema.name``) as SQL."""
        schema, _, name = key.rpartition(".")
        return self.table_name(name, schema or None)

    # --- live objects -------------------------------------------------------------

    def read_objects(self, connection: sa.Connection, schemas: Iterable[str | None]) -> dict[str, SchemaObject]:
        """The objects of `schemas` on the live database, by `object_key` (none without `objects_module`)."""
        if self.objects_module is None:
            return {}
        found: dict[str, SchemaObject] = import_module(self.objects_module).read(self, connection, list(schemas))
        return found

    def probe_objects(self, connection: sa.Connection, objects: list[SchemaObject]) -> dict[str, SchemaObject]:
        """`objects` as this database writes them back, by `object_key` (those it could not create left out)."""
        if self.objects_module is None or not objects:
            return {}
        probed: dict[str, SchemaObject] = import_module(self.objects_module).probe(self, connection, objects)
        return probed


def _body(definition: str) -> str:
    return definition.strip().rstrip(";").rstrip()


def _policies_on(schema: Schema, table: str) -> bool:
    return any(isinstance(obj, PolicyDef) and table_of(obj) == table for obj in schema.objects.values())


def settle(dialect: ObjectDDL, connection: sa.Connection, live: Schema, expected: Schema) -> tuple[Schema, Schema]:
    """`live` and `expected` with only this database's objects (live ones only of the kinds `expected` has, see
    `managed_only`), and each expected object whose text differs from its live counterpart's replaced by the live
    one when the database writes the two alike (see `probe`)."""
    live, expected = dialect.own_objects(live), dialect.own_objects(expected)
    live = managed_only(live, expected)
    differing = {key: obj for key, obj in expected.objects.items()
                 if key in live.objects and not same_text(live.objects[key], obj)}
    if not differing:
        return live, expected
    known = remembered(connection)
    adopted = {key: live.objects[key] for key, obj in differing.items()
               if known.get(key) == text_hashes(obj, live.objects[key]) and same_but_text(live.objects[key], obj)}
    unknown = [obj for key, obj in differing.items() if key not in adopted]
    probed = dialect.probe_objects(connection, unknown) if unknown else {}
    adopted.update({key: live.objects[key] for key, obj in probed.items() if same_text(live.objects[key], obj)})
    if not adopted:
        return live, expected
    return live, replace(expected, objects={**expected.objects, **adopted})


def managed_only(live: Schema, expected: Schema) -> Schema:
    """`live` with only the objects of the kinds `expected` has: a project manages the kinds it declares (views
    and triggers made by raw SQL in a project that declares none are not reported); `exclude` leaves out more."""
    kinds = {obj.kind for obj in expected.objects.values()}
    kept = {key: obj for key, obj in live.objects.items() if obj.kind in kinds}
    return live if len(kept) == len(live.objects) else replace(live, objects=kept)


def same_text(a: SchemaObject, b: SchemaObject) -> bool:
    """True when `a` and `b` are equal but for white space in their definitions."""
    if isinstance(a, ExtensionDef) or isinstance(b, ExtensionDef):
        return a == b
    return squeeze(a.definition) == squeeze(b.definition) and same_but_text(a, b)


def same_but_text(a: SchemaObject, b: SchemaObject) -> bool:
    """True when `a` and `b` are equal but for their definitions."""
    if isinstance(a, ExtensionDef) or isinstance(b, ExtensionDef):
        return a == b
    same: Any = b
    return bool(a == replace(same, definition=a.definition))


# --- remembered texts ---------------------------------------------------------------


def text_hash(text: str) -> str:
    """sha256 hex of `text` with its white space squeezed."""
    return hashlib.sha256(squeeze(text).encode("utf-8", "surrogatepass")).hexdigest()


def text_hashes(declared: SchemaObject, live: SchemaObject) -> tuple[str, str]:
    """(hash of the declared definition, hash of the database's text of it)."""
    return text_hash(declared.definition), text_hash(live.definition)


def texts_table() -> sa.Table:
    """`TEXTS_TABLE` as a SQLAlchemy table (in the connection's default schema)."""
    import sqlalchemy as sa

    return sa.Table(TEXTS_TABLE, sa.MetaData(),
                    sa.Column("object", sa.String(_KEY_LENGTH), primary_key=True),
                    sa.Column("declared", sa.String(64), nullable=False),
                    sa.Column("live", sa.String(64), nullable=False))


def remembered(connection: sa.Connection) -> dict[str, tuple[str, str]]:
    """The remembered (declared, live) hashes by object key (none when the table does not exist)."""
    import sqlalchemy as sa

    table = texts_table()
    if not sa.inspect(connection).has_table(table.name):
        return {}
    return {key: (declared, live) for key, declared, live in connection.execute(sa.select(table))}


def remember_texts(dialect: ObjectDDL, connection: sa.Connection, keys: Iterable[str], schema: Schema) -> int:
    """Remember how the database wrote the objects of `keys` that `schema` (just built) holds; returns how many.

    The objects are read back in one pass; each whose text differs from its definition (white space aside)
    gets a row with both hashes, and the other `keys` lose theirs. `settle` then adopts an object whose live
    text and declared definition both hash as remembered, without probing it. Commits.
    """
    import sqlalchemy as sa

    own = dialect.own_objects(schema).objects
    wanted = {key: own[key] for key in keys if key in own and own[key].kind != "extension"}
    if not wanted:
        return 0
    live = dialect.read_objects(connection, _schemas_of(wanted.values()))
    rows = [{"object": key, "declared": declared, "live": seen}
            for key, obj in wanted.items() if key in live and len(key) <= _KEY_LENGTH
            and not same_text(live[key], obj) and same_but_text(live[key], obj)
            for declared, seen in [text_hashes(obj, live[key])]]
    if connection.in_transaction():
        connection.commit()
    table = texts_table()
    if not rows and not sa.inspect(connection).has_table(table.name):
        connection.commit()
        return 0
    table.create(connection, checkfirst=True)
    connection.execute(table.delete().where(table.c.object.in_(list(wanted))))
    if rows:
        connection.execute(table.insert(), rows)
    connection.commit()
    return len(rows)


def _schemas_of(objects: Iterable[SchemaObject]) -> list[str | None]:
    """The schemas `objects` live in (a trigger's or policy's: its table's), the default one (None) first."""
    names: set[str | None] = set()
    for obj in objects:
        table = table_of(obj)
        names.add(table.rpartition(".")[0] or None if table is not None else getattr(obj, "schema", None))
    return sorted(names, key=lambda name: (name is not None, name or ""))


def probe_name(index: int) -> str:
    """The scratch name of the `index`-th probed object."""
    return f"{PROBE_PREFIX}{index}"


def keyed(objects: Iterable[SchemaObject]) -> dict[str, SchemaObject]:
    """`objects` by `object_key`."""
    return {object_key(obj): obj for obj in objects}


def with_live_objects(connection: sa.Connection, live: Schema, schemas: Iterable[str | None]) -> Schema:
    """`live` (reflected tables) with the live database's objects of `schemas`."""
    from schemashift.dialects import dialect_of

    objects = dialect_of(connection).read_objects(connection, schemas)
    return replace(live, objects=objects) if objects else live


def adopt_objects(dialect: ObjectDDL, connection: sa.Connection, live: Schema, models: Schema | None) -> Schema:
    """`live` where each object equal on this database to its model counterpart is the model's record (its text,
    forms and `only_on`), plus the model objects this database does not get (`baseline`: the models then match)."""
    if models is None or not models.objects:
        return live
    own = {key: obj.on(dialect.name) for key, obj in models.objects.items() if dialect.has_object(obj)}
    differing = [obj for key, obj in own.items() if key in live.objects and not same_text(live.objects[key], obj)]
    probed = dialect.probe_objects(connection, differing) if differing else {}
    objects = dict(live.objects)
    for key, obj in own.items():
        if key in live.objects and (same_text(live.objects[key], obj)
                                    or (key in probed and same_text(live.objects[key], probed[key]))):
            objects[key] = models.objects[key]
    objects.update({key: obj for key, obj in models.objects.items() if not dialect.has_object(obj)})
    return replace(live, objects=objects)
