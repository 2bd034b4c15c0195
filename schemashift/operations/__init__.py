"""Migration operations: small typed records that carry both their *from* and *to*.

Each operation answers three questions and nothing else:

* `apply(schema)`: the schema after it (used to replay history with no database);
* `resolve(schema)`: the same operation with its *from* side filled in from the
  schema before it (a hand-written ``DropColumn("t", "c")`` learns the column);
* `inverse()`: the operation that undoes it (needs a resolved operation).

How an operation is written to Python (`render`), compiled to SQL (`dialects`)
and executed (`executor`) lives elsewhere.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar

from schemashift.errors import IrreversibleError, MigrationError
from schemashift.model.schema import (
    CONSTRAINT_FIELDS,
    CheckConstraint,
    Column,
    Constraint,
    ForeignKey,
    Index,
    PrimaryKey,
    Schema,
    Sequence,
    Table,
    UniqueConstraint,
    qualify,
)


class Operation:
    """Base of every operation."""

    #: True when the operation changes no schema (data migrations, raw SQL).
    data_only: ClassVar[bool] = False
    #: True when running it can lose stored values.
    destructive: ClassVar[bool] = False

    def apply(self, schema: Schema) -> Schema:
        """The schema after this operation."""
        raise NotImplementedError

    def resolve(self, schema: Schema) -> Operation:
        """This operation with its *from* side filled from `schema` (the state before)."""
        return self

    def inverse(self) -> Operation:
        """The operation that undoes this one (call on a resolved operation)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for humans."""
        raise NotImplementedError

    @property
    def table_key(self) -> str | None:
        """The key of the table the operation touches, if any."""
        table = getattr(self, "table", None)
        if isinstance(table, Table):
            return table.key
        if isinstance(table, str):
            return qualify(table, getattr(self, "schema", None))
        return None


def _table(schema: Schema, key: str) -> Table:
    if key not in schema:
        raise MigrationError(f"table {key!r} does not exist at this point of the history")
    return schema.table(key)


def _missing(what: str) -> IrreversibleError:
    return IrreversibleError(f"cannot reverse: {what} (its previous definition is unknown)")


# -- tables ---------------------------------------------------------------


@dataclass(frozen=True)
class CreateTable(Operation):
    """Create `table` with its columns, keys, indexes and constraints."""

    table: Table

    def apply(self, schema: Schema) -> Schema:
        if self.table.key in schema:
            raise MigrationError(f"table {self.table.key!r} already exists")
        return schema.with_table(self.table)

    def inverse(self) -> Operation:
        return DropTable(self.table.name, schema=self.table.schema, definition=self.table)

    def describe(self) -> str:
        return f"create table {self.table.key}"


@dataclass(frozen=True)
class DropTable(Operation):
    """Drop a table; `definition` is the table as it was (for the inverse)."""

    table: str
    schema: str | None = None
    definition: Table | None = None
    destructive: ClassVar[bool] = True

    def apply(self, schema: Schema) -> Schema:
        _table(schema, self.table_key or "")
        return schema.without_table(self.table_key or "")

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=_table(schema, self.table_key or ""))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise _missing(f"drop table {self.table_key}")
        return CreateTable(self.definition)

    def describe(self) -> str:
        return f"drop table {self.table_key}"


@dataclass(frozen=True)
class RenameTable(Operation):
    """Rename a table, keeping its data."""

    table: str
    new_name: str
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        old = _table(schema, self.table_key or "")
        renamed = old.evolve(name=self.new_name)
        if renamed.key in schema:
            raise MigrationError(f"table {renamed.key!r} already exists")
        schema = schema.with_table(renamed, old_key=old.key)
        return _repoint_foreign_keys(schema, old.key, lambda fk: replace(fk, ref_table=self.new_name))

    def inverse(self) -> Operation:
        return RenameTable(self.new_name, self.table, schema=self.schema)

    def describe(self) -> str:
        return f"rename table {self.table_key} to {self.new_name}"


def _repoint_foreign_keys(schema: Schema, target: str, change: Callable[[ForeignKey], ForeignKey]) -> Schema:
    """Apply `change` to every foreign key that points at table `target` (databases follow renames)."""
    for table in list(schema.tables.values()):
        if any(fk.ref_key == target for fk in table.foreign_keys):
            fks = tuple(change(fk) if fk.ref_key == target else fk for fk in table.foreign_keys)
            schema = schema.with_table(table.evolve(foreign_keys=fks))
    return schema


@dataclass(frozen=True)
class AlterTableComment(Operation):
    """Set (or remove, with None) a table's comment; `old` is the previous one."""

    table: str
    comment: str | None
    old: str | None = None
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        return schema.with_table(_table(schema, self.table_key or "").evolve(comment=self.comment))

    def resolve(self, schema: Schema) -> Operation:
        return replace(self, old=_table(schema, self.table_key or "").comment)

    def inverse(self) -> Operation:
        return AlterTableComment(self.table, self.old, old=self.comment, schema=self.schema)

    def describe(self) -> str:
        return f"set comment of {self.table_key} to {self.comment!r}"


# -- columns --------------------------------------------------------------


#: A one-off value for the rows already in a table (`AddColumn.fill`).
Fill = str | int | float | bool


@dataclass(frozen=True)
class AddColumn(Operation):
    """Add `column` to a table.

    `fill` is a one-off value given to the rows already there (a NOT NULL column
    without a default needs one); unlike a server default it is not kept: the
    column ends up exactly as `column` says.
    """

    table: str
    column: Column
    schema: str | None = None
    fill: Fill | None = None

    def apply(self, schema: Schema) -> Schema:
        table = _table(schema, self.table_key or "")
        if table.has_column(self.column.name):
            raise MigrationError(f"column {table.key}.{self.column.name} already exists")
        return schema.with_table(table.evolve(columns=table.columns + (self.column,)))

    def inverse(self) -> Operation:
        return DropColumn(self.table, self.column.name, schema=self.schema, definition=self.column)

    def describe(self) -> str:
        text = f"add column {self.table_key}.{self.column.name} {self.column.type.describe()}"
        return text if self.fill is None else f"{text} (existing rows set to {self.fill!r})"


def needs_fill(column: Column) -> bool:
    """True for a NOT NULL column that nothing fills by itself (no default, identity, sequence, generation)."""
    fills_itself = (column.default is not None or column.computed is not None or column.identity is not None
                    or column.autoincrement or column.sequence is not None)
    return not column.nullable and not fills_itself


_TRUE, _FALSE = ("true", "t", "yes", "y", "on", "1"), ("false", "f", "no", "n", "off", "0")


def fill_value(value: object, column: Column) -> Fill:
    """`value` (typed at a prompt, given with ``--default`` or through the API) as a fill for `column`.

    Booleans, integers and floats become Python values of that kind; an exact
    numeric stays text (checked to be a number); an enum value must be one of the
    enum's; anything else is text. MigrationError when `value` does not fit.
    """
    kind = column.type.kind
    label = f"{column.name} ({column.type.describe()})"
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise MigrationError(f"{value!r} is not a value for {label}: answer true or false")
    if column.type.is_integer:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise MigrationError(f"{value!r} is not a value for {label}: an integer is needed") from None
    if kind in ("float", "numeric"):
        try:
            number = float(str(value).strip())
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise MigrationError(f"{value!r} is not a value for {label}: a number is needed")
        return str(value).strip() if kind == "numeric" else number
    if kind == "enum" and str(value) not in column.type.values:
        raise MigrationError(f"{value!r} is not a value for {label}: one of {', '.join(column.type.values)} is needed")
    return str(value)


@dataclass(frozen=True)
class DropColumn(Operation):
    """Drop a column; `definition` is the column as it was (for the inverse)."""

    table: str
    column: str
    schema: str | None = None
    definition: Column | None = None
    destructive: ClassVar[bool] = True

    def apply(self, schema: Schema) -> Schema:
        table = _table(schema, self.table_key or "")
        table.column(self.column)
        return schema.with_table(_without_column(table, self.column))

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=_table(schema, self.table_key or "").column(self.column))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise _missing(f"drop column {self.table_key}.{self.column}")
        return AddColumn(self.table, self.definition, schema=self.schema)

    def describe(self) -> str:
        return f"drop column {self.table_key}.{self.column}"


def _without_column(table: Table, name: str) -> Table:
    """`table` without column `name` and without indexes/constraints that used it."""

    def keeps(columns: tuple[str, ...]) -> bool:
        return name not in columns

    return table.evolve(
        columns=tuple(c for c in table.columns if c.name != name),
        indexes=tuple(i for i in table.indexes if keeps(i.columns)),
        uniques=tuple(u for u in table.uniques if keeps(u.columns)),
        foreign_keys=tuple(f for f in table.foreign_keys if keeps(f.columns)),
        primary_key=table.primary_key if table.primary_key is None or keeps(table.primary_key.columns) else None,
    )


@dataclass(frozen=True)
class AlterColumn(Operation):
    """Change a column's type, nullability, default, comment… from `old` to `new`.

    The column keeps its name (renames are `RenameColumn`).
    """

    table: str
    column: str
    new: Column
    old: Column | None = None
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        table = _table(schema, self.table_key or "")
        table.column(self.column)
        columns = tuple(self.new if c.name == self.column else c for c in table.columns)
        return schema.with_table(table.evolve(columns=columns))

    def resolve(self, schema: Schema) -> Operation:
        if self.old is not None:
            return self
        return replace(self, old=_table(schema, self.table_key or "").column(self.column))

    def inverse(self) -> Operation:
        if self.old is None:
            raise _missing(f"alter column {self.table_key}.{self.column}")
        return AlterColumn(self.table, self.column, new=self.old, old=self.new, schema=self.schema)

    @property
    def changes(self) -> tuple[str, ...]:
        """Names of the column fields that differ between old and new."""
        if self.old is None:
            return ()
        fields = ("type", "nullable", "default", "autoincrement", "comment", "computed", "identity", "sequence",
                  "defaults")
        return tuple(f for f in fields if getattr(self.old, f) != getattr(self.new, f))

    def describe(self) -> str:
        detail = ", ".join(_change_text(self.old, self.new, f) for f in self.changes)
        return f"alter column {self.table_key}.{self.column}" + (f" ({detail})" if detail else "")


def _change_text(old: Column | None, new: Column, field: str) -> str:
    if field == "type" and old is not None:
        return f"type {old.type.describe()} -> {new.type.describe()}"
    if field == "nullable":
        return "nullable" if new.nullable else "not null"
    if field == "computed" and old is not None and old.computed is not None and new.computed is not None:
        return f"generated as ({new.computed.sql}) instead of ({old.computed.sql}): values recomputed"
    if field == "defaults":
        forms = ", ".join(f"{name}: {sql}" for name, sql in new.defaults)
        return f"default per database ({forms})" if forms else "default the same on every database"
    if field == "sequence":
        return f"default next value of sequence {new.sequence}" if new.sequence else f"no longer filled from {old and old.sequence}"
    return f"{field} {getattr(old, field, None)!r} -> {getattr(new, field)!r}"


@dataclass(frozen=True)
class RenameColumn(Operation):
    """Rename a column, keeping its data; indexes and constraints follow it."""

    table: str
    column: str
    new_name: str
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        table = _table(schema, self.table_key or "")
        table.column(self.column)
        if table.has_column(self.new_name):
            raise MigrationError(f"column {table.key}.{self.new_name} already exists")
        schema = schema.with_table(_rename_in_table(table, self.column, self.new_name))

        def rename_ref(fk: ForeignKey) -> ForeignKey:
            return replace(fk, ref_columns=tuple(self.new_name if c == self.column else c for c in fk.ref_columns))

        return _repoint_foreign_keys(schema, table.key, rename_ref)

    def inverse(self) -> Operation:
        return RenameColumn(self.table, self.new_name, self.column, schema=self.schema)

    def describe(self) -> str:
        return f"rename column {self.table_key}.{self.column} to {self.new_name}"


#: SQL parts a column rename may touch: string literals (kept), quoted and bare identifiers.
_SQL_NAMES = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|[A-Za-z_][A-Za-z0-9_$]*""")


def rename_in_sql(sql: str, old: str, new: str) -> str:
    """`sql` with column `old` renamed to `new`, as databases rewrite checks and expressions on a rename.

    Bare names match case-insensitively when `old` is lower case; function names and string literals are kept.
    """
    bare_new = new if re.fullmatch(r"[a-z_][a-z0-9_$]*", new) else '"' + new.replace('"', '""') + '"'

    def swap(match: re.Match[str]) -> str:
        text = match.group()
        if text[0] == "'":
            return text
        if text[0] in '"`':
            return bare_new if text[1:-1] == old else text
        same = text == old or (old == old.lower() and text.lower() == old)
        calls = sql[match.end():].lstrip().startswith("(")
        return bare_new if same and not calls else text

    return _SQL_NAMES.sub(swap, sql)


def _rename_in_table(table: Table, old: str, new: str) -> Table:
    def names(columns: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(new if c == old else c for c in columns)

    def sql(text: str) -> str:
        return rename_in_sql(text, old, new)

    def column(c: Column) -> Column:
        c = c.evolve(name=new) if c.name == old else c
        return c.evolve(computed=replace(c.computed, sql=sql(c.computed.sql))) if c.computed else c

    pk = table.primary_key
    return table.evolve(
        columns=tuple(column(c) for c in table.columns),
        primary_key=replace(pk, columns=names(pk.columns)) if pk else None,
        indexes=tuple(
            replace(i, columns=names(i.columns), expressions=tuple(sql(e) for e in i.expressions),
                    where=sql(i.where) if i.where else i.where)
            for i in table.indexes
        ),
        uniques=tuple(replace(u, columns=names(u.columns)) for u in table.uniques),
        foreign_keys=tuple(replace(f, columns=names(f.columns)) for f in table.foreign_keys),
        checks=tuple(replace(c, sql=sql(c.sql)) for c in table.checks),
    )


# -- indexes --------------------------------------------------------------


def index_details(index: Index) -> str:
    """What an index is besides its columns, for descriptions: `` WHERE …`` and ``[option=value …]``."""
    details = f" WHERE {index.where}" if index.where else ""
    options = [f"{key}={_option_text(value)}" for key, value in index.options]
    return details + (f" [{', '.join(options)}]" if options else "")


def _option_text(value: object) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_option_text(item) for item in value) + ")"
    return str(value)


@dataclass(frozen=True)
class CreateIndex(Operation):
    """Create `index` on a table."""

    table: str
    index: Index
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        table = _table(schema, self.table_key or "")
        if any(i.name == self.index.name for i in table.indexes):
            raise MigrationError(f"index {self.index.name!r} already exists on {table.key}")
        return schema.with_table(table.evolve(indexes=table.indexes + (self.index,)))

    def inverse(self) -> Operation:
        return DropIndex(self.table, self.index.name, schema=self.schema, definition=self.index)

    def describe(self) -> str:
        unique = "unique " if self.index.unique else ""
        columns = ", ".join(self.index.columns + self.index.expressions)
        return f"create {unique}index {self.index.name} on {self.table_key} ({columns}){index_details(self.index)}"


@dataclass(frozen=True)
class DropIndex(Operation):
    """Drop an index; `definition` is the index as it was."""

    table: str
    name: str
    schema: str | None = None
    definition: Index | None = None

    def apply(self, schema: Schema) -> Schema:
        table = _table(schema, self.table_key or "")
        self._find(table)
        return schema.with_table(table.evolve(indexes=tuple(i for i in table.indexes if i.name != self.name)))

    def _find(self, table: Table) -> Index:
        for index in table.indexes:
            if index.name == self.name:
                return index
        raise MigrationError(f"index {self.name!r} does not exist on {table.key}")

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=self._find(_table(schema, self.table_key or "")))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise _missing(f"drop index {self.name}")
        return CreateIndex(self.table, self.definition, schema=self.schema)

    def describe(self) -> str:
        details = index_details(self.definition) if self.definition is not None else ""
        return f"drop index {self.name} on {self.table_key}{details}"


@dataclass(frozen=True)
class RenameIndex(Operation):
    """Rename an index."""

    table: str
    name: str
    new_name: str
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        table = _table(schema, self.table_key or "")
        indexes = tuple(replace(i, name=self.new_name) if i.name == self.name else i for i in table.indexes)
        return schema.with_table(table.evolve(indexes=indexes))

    def inverse(self) -> Operation:
        return RenameIndex(self.table, self.new_name, self.name, schema=self.schema)

    def describe(self) -> str:
        return f"rename index {self.name} to {self.new_name} on {self.table_key}"


# -- constraints ----------------------------------------------------------


@dataclass(frozen=True)
class AddConstraint(Operation):
    """Add a primary key, unique, foreign-key or check constraint."""

    table: str
    constraint: Constraint
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        table = _table(schema, self.table_key or "")
        if isinstance(self.constraint, PrimaryKey):
            if table.primary_key is not None:
                raise MigrationError(f"{table.key} already has a primary key")
            return schema.with_table(table.evolve(primary_key=self.constraint))
        field = CONSTRAINT_FIELDS[type(self.constraint)]
        return schema.with_table(table.evolve(**{field: getattr(table, field) + (self.constraint,)}))

    def inverse(self) -> Operation:
        return DropConstraint(self.table, self.constraint.name, schema=self.schema, definition=self.constraint)

    def describe(self) -> str:
        return f"add {_constraint_label(self.constraint)} on {self.table_key}"


@dataclass(frozen=True)
class DropConstraint(Operation):
    """Drop a constraint by name; `definition` is the constraint as it was.

    An unnamed constraint (SQLite allows them) is found by `definition`.
    """

    table: str
    name: str | None
    schema: str | None = None
    definition: Constraint | None = None

    def apply(self, schema: Schema) -> Schema:
        table = _table(schema, self.table_key or "")
        found = self._find(table)
        if isinstance(found, PrimaryKey):
            return schema.with_table(table.evolve(primary_key=None))
        field = CONSTRAINT_FIELDS[type(found)]
        return schema.with_table(table.evolve(**{field: tuple(c for c in getattr(table, field) if c != found)}))

    def _find(self, table: Table) -> Constraint:
        candidates: list[Constraint] = list(table.constraints())
        if table.primary_key is not None:
            candidates.append(table.primary_key)
        for constraint in candidates:
            if self.definition is not None and constraint == self.definition:
                return constraint
            if self.name is not None and constraint.name == self.name:
                return constraint
        raise MigrationError(f"constraint {self.name or self.definition!r} does not exist on {table.key}")

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=self._find(_table(schema, self.table_key or "")))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise _missing(f"drop constraint {self.name}")
        return AddConstraint(self.table, self.definition, schema=self.schema)

    def describe(self) -> str:
        label = _constraint_label(self.definition) if self.definition else f"constraint {self.name}"
        return f"drop {label} on {self.table_key}"


def _constraint_label(constraint: Constraint) -> str:
    kinds = {
        PrimaryKey: "primary key",
        UniqueConstraint: "unique",
        ForeignKey: "foreign key",
        CheckConstraint: "check",
    }
    label = kinds[type(constraint)]
    if constraint.name:
        label += f" {constraint.name}"
    if isinstance(constraint, CheckConstraint):
        return f"{label} ({constraint.sql})"
    if isinstance(constraint, ForeignKey):
        return f"{label} ({', '.join(constraint.columns)}) -> {constraint.ref_key}"
    return f"{label} ({', '.join(constraint.columns)})"


# -- sequences ------------------------------------------------------------


def _sequence(schema: Schema, key: str) -> Sequence:
    if key not in schema.sequences:
        raise MigrationError(f"sequence {key!r} does not exist at this point of the history")
    return schema.sequences[key]


@dataclass(frozen=True)
class CreateSequence(Operation):
    """Create a standalone `sequence` (a no-op on databases without sequences)."""

    sequence: Sequence

    def apply(self, schema: Schema) -> Schema:
        if self.sequence.key in schema.sequences:
            raise MigrationError(f"sequence {self.sequence.key!r} already exists")
        return schema.with_sequence(self.sequence)

    def inverse(self) -> Operation:
        return DropSequence(self.sequence.name, schema=self.sequence.schema, definition=self.sequence)

    def describe(self) -> str:
        return f"create sequence {self.sequence.key}"


@dataclass(frozen=True)
class DropSequence(Operation):
    """Drop a standalone sequence; `definition` is the sequence as it was (for the inverse)."""

    name: str
    schema: str | None = None
    definition: Sequence | None = None

    @property
    def key(self) -> str:
        """``schema.name`` or ``name``."""
        return qualify(self.name, self.schema)

    def apply(self, schema: Schema) -> Schema:
        _sequence(schema, self.key)
        return schema.without_sequence(self.key)

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=_sequence(schema, self.key))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise _missing(f"drop sequence {self.key}")
        return CreateSequence(self.definition)

    def describe(self) -> str:
        return f"drop sequence {self.key}"


@dataclass(frozen=True)
class AlterSequence(Operation):
    """Change a sequence's options (start, increment, bounds, cycle) from `old` to `new`; same name."""

    name: str
    new: Sequence
    old: Sequence | None = None
    schema: str | None = None

    @property
    def key(self) -> str:
        """``schema.name`` or ``name``."""
        return qualify(self.name, self.schema)

    def apply(self, schema: Schema) -> Schema:
        _sequence(schema, self.key)
        return schema.without_sequence(self.key).with_sequence(self.new)

    def resolve(self, schema: Schema) -> Operation:
        if self.old is not None:
            return self
        return replace(self, old=_sequence(schema, self.key))

    def inverse(self) -> Operation:
        if self.old is None:
            raise _missing(f"alter sequence {self.key}")
        return AlterSequence(self.name, new=self.old, old=self.new, schema=self.schema)

    @property
    def changes(self) -> tuple[str, ...]:
        """Names of the options that differ between old and new."""
        if self.old is None:
            return ()
        fields = ("start", "increment", "minvalue", "maxvalue", "cycle")
        return tuple(f for f in fields if getattr(self.old, f) != getattr(self.new, f))

    def describe(self) -> str:
        detail = ", ".join(f"{f} {getattr(self.old, f)!r} -> {getattr(self.new, f)!r}" for f in self.changes)
        return f"alter sequence {self.key}" + (f" ({detail})" if detail else "")


# -- data -----------------------------------------------------------------


@dataclass(frozen=True)
class ExecuteSQL(Operation):
    """Raw SQL; reversible only when `reverse` is given.

    `dialects` limits it to the named dialects (empty: all).
    """

    sql: str
    reverse: str | None = None
    dialects: tuple[str, ...] = ()
    data_only: ClassVar[bool] = True

    def apply(self, schema: Schema) -> Schema:
        return schema

    def inverse(self) -> Operation:
        if self.reverse is None:
            raise IrreversibleError("cannot reverse: raw SQL without a `reverse`")
        return ExecuteSQL(self.reverse, reverse=self.sql, dialects=self.dialects)

    def describe(self) -> str:
        first = self.sql.strip().splitlines()[0] if self.sql.strip() else ""
        return f"execute SQL: {first[:60]}"


@dataclass(frozen=True)
class RunPython(Operation):
    """A Python data migration: ``forward(ctx)``; reversible when `reverse` is given.

    `ctx` is a `schemashift.runtime.executor.MigrationContext` with ``connection``,
    ``dialect``, ``env`` and ``vars``.
    """

    forward: Callable[[Any], None]
    reverse: Callable[[Any], None] | None = None
    data_only: ClassVar[bool] = True

    def apply(self, schema: Schema) -> Schema:
        return schema

    def inverse(self) -> Operation:
        if self.reverse is None:
            raise IrreversibleError(f"cannot reverse: Python step {self.forward.__name__} has no `reverse`")
        return RunPython(self.reverse, reverse=self.forward)

    def describe(self) -> str:
        return f"run Python {getattr(self.forward, '__name__', 'callable')}"


#: Every operation class by name, for rendering and loading migration files.
OPERATIONS: dict[str, type[Operation]] = {
    cls.__name__: cls
    for cls in (
        CreateTable,
        DropTable,
        RenameTable,
        AlterTableComment,
        AddColumn,
        DropColumn,
        AlterColumn,
        RenameColumn,
        CreateIndex,
        DropIndex,
        RenameIndex,
        AddConstraint,
        DropConstraint,
        CreateSequence,
        DropSequence,
        AlterSequence,
        ExecuteSQL,
        RunPython,
    )
}


def replay(operations: list[Operation], schema: Schema | None = None) -> Schema:
    """Apply `operations` in order to `schema` (empty by default)."""
    state = schema if schema is not None else Schema()
    for operation in operations:
        state = operation.apply(state)
    return state


def resolve_all(operations: list[Operation], schema: Schema) -> tuple[list[Operation], Schema]:
    """Resolve each operation against the state before it; return them and the final state."""
    resolved: list[Operation] = []
    for operation in operations:
        done = operation.resolve(schema)
        resolved.append(done)
        schema = done.apply(schema)
    return resolved, schema


def invert_all(operations: list[Operation]) -> list[Operation]:
    """The inverse of a resolved operation list, in reverse order."""
    return [operation.inverse() for operation in reversed(operations)]
