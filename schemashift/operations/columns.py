"""Column operations (add, drop, alter, rename) and what they need: one-off fills, renames inside SQL."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import ClassVar

from schemashift.errors import MigrationError
from schemashift.model.schema import Column, ForeignKey, Schema, Table
from schemashift.operations.base import Operation, existing_table, repoint_foreign_keys, unknown_previous

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
        table = existing_table(schema, self.table_key or "")
        if table.has_column(self.column.name):
            raise MigrationError(f"column {table.key}.{self.column.name} already exists")
        return schema.with_table(table.evolve(columns=(*table.columns, self.column)))

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
        table = existing_table(schema, self.table_key or "")
        table.column(self.column)
        return schema.with_table(_without_column(table, self.column))

    def resolve(self, schema: Schema) -> Operation:
        if self.definition is not None:
            return self
        return replace(self, definition=existing_table(schema, self.table_key or "").column(self.column))

    def inverse(self) -> Operation:
        if self.definition is None:
            raise unknown_previous(f"drop column {self.table_key}.{self.column}")
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
        table = existing_table(schema, self.table_key or "")
        table.column(self.column)
        columns = tuple(self.new if c.name == self.column else c for c in table.columns)
        return schema.with_table(table.evolve(columns=columns))

    def resolve(self, schema: Schema) -> Operation:
        if self.old is not None:
            return self
        return replace(self, old=existing_table(schema, self.table_key or "").column(self.column))

    def inverse(self) -> Operation:
        if self.old is None:
            raise unknown_previous(f"alter column {self.table_key}.{self.column}")
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
        if new.sequence:
            return f"default next value of sequence {new.sequence}"
        return f"no longer filled from {old and old.sequence}"
    return f"{field} {getattr(old, field, None)!r} -> {getattr(new, field)!r}"


@dataclass(frozen=True)
class RenameColumn(Operation):
    """Rename a column, keeping its data; indexes and constraints follow it."""

    table: str
    column: str
    new_name: str
    schema: str | None = None

    def apply(self, schema: Schema) -> Schema:
        table = existing_table(schema, self.table_key or "")
        table.column(self.column)
        if table.has_column(self.new_name):
            raise MigrationError(f"column {table.key}.{self.new_name} already exists")
        schema = schema.with_table(_rename_in_table(table, self.column, self.new_name))

        def rename_ref(fk: ForeignKey) -> ForeignKey:
            return replace(fk, ref_columns=tuple(self.new_name if c == self.column else c for c in fk.ref_columns))

        return repoint_foreign_keys(schema, table.key, rename_ref)

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
