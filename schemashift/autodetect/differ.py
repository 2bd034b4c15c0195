"""The differ: two neutral schemas in, an ordered list of operations out.

One generic algorithm for every database. Renames are never guessed silently: a
dropped and an added table (or column) that could be one rename are put to a
`Questioner`; with no answer, `generate` stops rather than drop data. Only
plausible renames are put:

* a table: a dropped and an added table in the same schema sharing more than
  half of the columns of each, by name and kind of type (``users(id, name)`` and
  ``other(id)`` share one of two: not asked); the candidates sharing most first;
* a column: a dropped and an added column of one table with the same kind of
  type (string, integer…; length or precision may change) and the same nullability.

A NOT NULL column without a default (nor identity, sequence, autoincrement or
generation) added to an existing table needs a value for the rows already there:
with `RenameDecisions.settle_fills` (``generate``) it takes the one-off value the
decisions give (``--default``), else the `Questioner`'s answer, else the diff stops
(`FillUndecided`); the value is written as `AddColumn.fill`, never kept as a default.

Operation order: renames, created and altered sequences, dropped foreign keys,
other dropped constraints and indexes, dropped tables (reverse dependency order),
created tables (dependency order), added and altered columns, dropped columns,
added keys/constraints/indexes, added foreign keys, dropped sequences. Foreign
keys that close a cycle between new (or dropped) tables are added after (dropped
before) the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol, TypeVar

from schemashift.autodetect.objects import with_object_changes
from schemashift.errors import SchemashiftError
from schemashift.model.schema import (
    BUILD_OPTIONS,
    Column,
    ForeignKey,
    Index,
    Schema,
    Table,
    qualify,
)
from schemashift.operations import (
    AddColumn,
    AddConstraint,
    AlterColumn,
    AlterSequence,
    AlterTableComment,
    CreateIndex,
    CreateSequence,
    CreateTable,
    DropColumn,
    DropConstraint,
    DropIndex,
    DropSequence,
    DropTable,
    Fill,
    Operation,
    RenameColumn,
    RenameConstraint,
    RenameIndex,
    RenameTable,
    fill_value,
    needs_fill,
    replay,
)


class RenameUndecided(SchemashiftError):
    """A drop + add pair could be a rename and nobody decided."""


class FillUndecided(SchemashiftError):
    """A NOT NULL column without a default is added to an existing table and nobody gave its rows a value."""


class Questioner(Protocol):
    """Answers "is this a rename?" and "what value for the existing rows?"; None means "no answer"."""

    def ask_rename(self, kind: str, old: str, new: str) -> bool | None: ...

    def ask_fill(self, column: str, type_text: str, convert: Callable[[str], Fill]) -> Fill | None:
        """A value for the rows already in the table of `column` (``table.column``), `convert`-ed; None: no answer."""
        ...


class NoQuestions:
    """The non-interactive questioner: never answers."""

    def ask_rename(self, kind: str, old: str, new: str) -> bool | None:
        return None

    def ask_fill(self, column: str, type_text: str, convert: Callable[[str], Fill]) -> Fill | None:
        return None


@dataclass
class RenameDecisions:
    """What the user said about renames (flags, model hints) and fills before diffing.

    `tables` maps old table key -> new name; `columns` maps (table key, old) -> new.
    With `no_rename`, undecided candidates become drop + add. `fills` maps
    ``"table.column"`` to a one-off value for the existing rows (``--default``);
    with `settle_fills`, every added column that needs one must get one.
    """

    tables: dict[str, str] = field(default_factory=dict)
    columns: dict[tuple[str, str], str] = field(default_factory=dict)
    no_rename: bool = False
    questioner: Questioner = field(default_factory=NoQuestions)
    fills: dict[str, object] = field(default_factory=dict)
    settle_fills: bool = False


def diff(old: Schema, new: Schema, decisions: RenameDecisions | None = None) -> list[Operation]:
    """Operations that turn `old` into `new`."""
    decisions = decisions or RenameDecisions()
    renames = _table_renames(old, new, decisions)
    renamed = replay(renames, old)
    column_renames = _column_renames(renamed, new, decisions)
    renamed = replay(column_renames, renamed)
    index_renames = _index_renames(renamed, new)
    renamed = replay(index_renames, renamed)
    pending: list[str] = []
    operations = with_object_changes(renamed, new, renames + column_renames + index_renames + _structural(renamed, new),
                                     partial(_ask, decisions, pending=pending))
    if pending:
        raise _undecided("object", pending)
    return _fills(operations, decisions)


# -- one-off values for existing rows ----------------------------------------


def _fills(operations: list[Operation], decisions: RenameDecisions) -> list[Operation]:
    """`operations` with a `fill` on each AddColumn that needs one and got one (see the module docstring)."""
    given = dict(decisions.fills)
    pending: list[str] = []
    result: list[Operation] = []
    for operation in operations:
        filled = operation
        if isinstance(operation, AddColumn) and operation.fill is None and needs_fill(operation.column):
            label = f"{operation.table_key}.{operation.column.name}"
            value = _fill_for(operation.column, label, given, decisions)
            if value is not None:
                filled = replace(operation, fill=value)
            elif decisions.settle_fills:
                pending.append(label)
        result.append(filled)
    if given:
        raise SchemashiftError(
            f"--default {', '.join(sorted(given))}: not a NOT NULL column without a default that this migration adds "
            "to an existing table"
        )
    if pending:
        raise _unfilled(pending)
    return result


def _fill_for(column: Column, label: str, given: dict[str, object], decisions: RenameDecisions) -> Fill | None:
    """The value given for `label` (taken out of `given`), else the questioner's answer when fills must be settled."""
    if label in given:
        return fill_value(given.pop(label), column)
    if not decisions.settle_fills:
        return None
    return decisions.questioner.ask_fill(label, column.type.describe(), partial(fill_value, column=column))


def _unfilled(pending: list[str]) -> FillUndecided:
    several = len(pending) > 1
    return FillUndecided(
        f"{', '.join(pending)} {'are' if several else 'is'} added NOT NULL without a default to an existing table, "
        f"whose rows would need a value: set a server_default on the model column{'s' if several else ''}, or give "
        f"the existing rows a one-off value with {' '.join(f'--default {p}=VALUE' for p in pending)}"
    )


# -- renames --------------------------------------------------------------


def _ask(decisions: RenameDecisions, kind: str, old: str, new: str, pending: list[str]) -> bool:
    answer = decisions.questioner.ask_rename(kind, old, new)
    if answer is None and not decisions.no_rename:
        pending.append(f"{old} -> {new}")
    return bool(answer)


def _undecided(kind: str, pending: list[str]) -> RenameUndecided:
    flag = {"table": "--rename-table OLD:NEW", "column": "--rename-column TABLE.OLD:NEW"}.get(kind)
    if flag is None:
        return RenameUndecided(
            f"possible rename{'s' if len(pending) > 1 else ''} {', '.join(pending)}: confirm with "
            "renamed_from='OLD' on the declaration, or pass --no-rename to drop and create")
    return RenameUndecided(
        f"possible {kind} rename{'s' if len(pending) > 1 else ''} {', '.join(pending)}: "
        f"confirm with {flag} (or info={{'renamed_from': ...}} on the model), or pass --no-rename to drop and add"
    )


def _shared_columns(a: Table, b: Table) -> int:
    """How many columns `a` and `b` share by name and kind of type."""
    kinds = {column.name: column.type.kind for column in b.columns}
    return sum(1 for column in a.columns if kinds.get(column.name) == column.type.kind)


def _plausible_table_rename(a: Table, b: Table) -> bool:
    """More than half of the columns of each table are shared (see the module docstring)."""
    shared = _shared_columns(a, b)
    return shared * 2 > len(a.columns) and shared * 2 > len(b.columns)


def _plausible_column_rename(old: Column, new: Column) -> bool:
    """Same kind of type and same nullability (see the module docstring)."""
    return old.type.kind == new.type.kind and old.nullable == new.nullable


def _table_renames(old: Schema, new: Schema, decisions: RenameDecisions) -> list[Operation]:
    dropped = [k for k in old.tables if k not in new.tables]
    added = [k for k in new.tables if k not in old.tables]
    ops: list[Operation] = []
    pending: list[str] = []
    for key in list(dropped):
        table = old.table(key)
        target = decisions.tables.get(key)
        if target is None:
            target = _undeclared_table_target(table, new, added, decisions, pending)
        if target is None:
            continue
        new_key = qualify(target, table.schema)
        if new_key not in added:
            raise SchemashiftError(f"cannot rename table {key} to {target}: {new_key} is not a new table in the models")
        ops.append(RenameTable(table.name, target, schema=table.schema))
        added.remove(new_key)
    if pending:
        raise _undecided("table", pending)
    return ops


def _undeclared_table_target(
    table: Table, new: Schema, added: list[str], decisions: RenameDecisions, pending: list[str]
) -> str | None:
    candidates = [
        new.table(key) for key in added
        if new.table(key).schema == table.schema and decisions.tables.get(key) is None
        and _plausible_table_rename(table, new.table(key))
    ]
    candidates.sort(key=lambda candidate: (-_shared_columns(table, candidate), candidate.key))
    for candidate in candidates:
        if _ask(decisions, "table", table.key, candidate.key, pending):
            return candidate.name
    return None


def _column_renames(old: Schema, new: Schema, decisions: RenameDecisions) -> list[Operation]:
    ops: list[Operation] = []
    pending: list[str] = []
    for key in sorted(set(old.tables) & set(new.tables)):
        before, after = old.table(key), new.table(key)
        if before.column_names == after.column_names:
            continue
        dropped = [c for c in before.columns if not after.has_column(c.name)]
        added = [c.name for c in after.columns if not before.has_column(c.name)]
        for column in dropped:
            target = decisions.columns.get((key, column.name))
            if target is None:
                target = _undeclared_column_target(key, column, after, added, decisions, pending)
            if target is None:
                continue
            if target not in added:
                raise SchemashiftError(
                    f"cannot rename column {key}.{column.name} to {target}: not a new column of {key}")
            ops.append(RenameColumn(before.name, column.name, target, schema=before.schema))
            added.remove(target)
    if pending:
        raise _undecided("column", pending)
    return ops


def _undeclared_column_target(
    key: str, column: Column, after: Table, added: list[str], decisions: RenameDecisions, pending: list[str]
) -> str | None:
    for name in added:
        if not _plausible_column_rename(column, after.column(name)):
            continue
        label_old, label_new = f"{key}.{column.name}", f"{key}.{name}"
        if _ask(decisions, "column", label_old, label_new, pending):
            return name
    return None


def _index_renames(old: Schema, new: Schema) -> list[Operation]:
    """An index whose definition is unchanged but whose name changed is renamed (no data at stake)."""
    ops: list[Operation] = []
    for key in sorted(set(old.tables) & set(new.tables)):
        before, after = old.table(key), new.table(key)
        if before.indexes == after.indexes:
            continue
        old_names = {i.name for i in before.indexes}
        new_names = {i.name for i in after.indexes}
        gone = [i for i in before.indexes if i.name not in new_names]
        fresh = [i for i in after.indexes if i.name not in old_names]
        for index in gone:
            twin = next((i for i in fresh if replace(i, name=index.name) == index), None)
            if twin is not None:
                ops.append(RenameIndex(before.name, index.name, twin.name, schema=before.schema))
                fresh.remove(twin)
    return ops


# -- structure ------------------------------------------------------------


@dataclass
class _Phases:
    sequences: list[Operation] = field(default_factory=list)
    drop_fks: list[Operation] = field(default_factory=list)
    drop_other: list[Operation] = field(default_factory=list)
    drop_tables: list[Operation] = field(default_factory=list)
    create_tables: list[Operation] = field(default_factory=list)
    columns: list[Operation] = field(default_factory=list)
    drop_columns: list[Operation] = field(default_factory=list)
    add_other: list[Operation] = field(default_factory=list)
    add_fks: list[Operation] = field(default_factory=list)
    drop_sequences: list[Operation] = field(default_factory=list)

    def ordered(self) -> list[Operation]:
        return (
            self.sequences + self.drop_fks + self.drop_other + self.drop_tables + self.create_tables
            + self.columns + self.drop_columns + self.add_other + self.add_fks + self.drop_sequences
        )


def _sequence_changes(old: Schema, new: Schema, phases: _Phases) -> None:
    """New and changed sequences first (columns may use them), dropped ones last (columns used them)."""
    for key in sorted(new.sequences):
        sequence = new.sequences[key]
        before = old.sequences.get(key)
        if before is None:
            phases.sequences.append(CreateSequence(sequence))
        elif before != sequence:
            phases.sequences.append(AlterSequence(sequence.name, new=sequence, old=before, schema=sequence.schema))
    for key in sorted(set(old.sequences) - set(new.sequences)):
        sequence = old.sequences[key]
        phases.drop_sequences.append(DropSequence(sequence.name, schema=sequence.schema, definition=sequence))


def _structural(old: Schema, new: Schema) -> list[Operation]:
    phases = _Phases()
    _sequence_changes(old, new, phases)
    _dropped_tables(old, new, phases)
    _created_tables(old, new, phases)
    common = sorted(set(old.tables) & set(new.tables))
    changed = [key for key in common if old.tables[key] != new.tables[key]]  # equal tables need nothing
    for key in changed:
        _table_changes(old.tables[key], new.tables[key], phases)
    _refresh_foreign_keys(old, new, common, changed, phases)
    return phases.ordered()


def _refresh_foreign_keys(old: Schema, new: Schema, common: list[str], changed: list[str], phases: _Phases) -> None:
    """A kept foreign key over a column whose type changes (at either end) is dropped before and added after.

    MySQL and MariaDB refuse to change the type of a column a foreign key uses,
    and a key between columns of different types cannot be added back in between.
    `common` are the sorted keys of the tables in both schemas, `changed` those that differ.
    """
    retyped = {
        (key, column.name)
        for key in changed
        for column in new.tables[key].columns
        if old.tables[key].has_column(column.name) and old.tables[key].column(column.name).type != column.type
    }
    if not retyped:
        return
    retyped_tables = {key for key, _ in retyped}
    for key in common:
        before, after = old.tables[key], new.tables[key]
        for fk in after.foreign_keys:
            if key not in retyped_tables and fk.ref_key not in retyped_tables:
                continue
            ends = [(key, c) for c in fk.columns] + [(fk.ref_key, c) for c in fk.ref_columns]
            if retyped.intersection(ends) and fk in before.foreign_keys:
                phases.drop_fks.append(DropConstraint(before.name, fk.name, schema=before.schema, definition=fk))
                phases.add_fks.append(AddConstraint(after.name, fk, schema=after.schema))


def _order_by_dependencies(tables: list[Table]) -> tuple[list[Table], list[tuple[str, ForeignKey]]]:
    """Tables so that referenced ones come first; FKs that close a cycle are returned apart.

    Both orders are canonical (by key, then each table's own FK order): no set is iterated.
    """
    keys = {t.key for t in tables}
    deps = {t.key: {fk.ref_key for fk in t.foreign_keys if fk.ref_key in keys and fk.ref_key != t.key} for t in tables}
    by_key = {t.key: t for t in tables}
    ordered: list[Table] = []
    deferred: list[tuple[str, ForeignKey]] = []
    remaining = dict(deps)
    while remaining:
        ready = sorted(k for k, d in remaining.items() if not d)
        if not ready:
            # break a cycle: defer the FKs (to unplaced tables) of the first table on a cycle
            victim = _on_a_cycle(remaining)
            for fk in by_key[victim].foreign_keys:
                if fk.ref_key in remaining and fk.ref_key != victim:
                    deferred.append((victim, fk))
            ready = [victim]
        for key in ready:
            ordered.append(by_key[key])
            remaining.pop(key)
            for other in remaining.values():
                other.discard(key)
    return ordered, deferred


def _on_a_cycle(remaining: dict[str, set[str]]) -> str:
    """A table on a dependency cycle: follow the first dependency from the first table until one repeats."""
    seen: list[str] = []
    key = sorted(remaining)[0]
    while key not in seen:
        seen.append(key)
        key = sorted(remaining[key])[0]
    return min(seen[seen.index(key):])


def _dropped_tables(old: Schema, new: Schema, phases: _Phases) -> None:
    gone = [old.table(k) for k in old.tables if k not in new.tables]
    ordered, deferred = _order_by_dependencies(gone)
    for key, fk in sorted(deferred, key=lambda item: (item[0], item[1].columns)):
        table = old.table(key)
        phases.drop_fks.append(DropConstraint(table.name, fk.name, schema=table.schema, definition=fk))
    for table in reversed(ordered):
        definition = table
        cut = [fk for k, fk in deferred if k == table.key]
        if cut:
            definition = table.evolve(foreign_keys=tuple(f for f in table.foreign_keys if f not in cut))
        phases.drop_tables.append(DropTable(table.name, schema=table.schema, definition=definition))


def _created_tables(old: Schema, new: Schema, phases: _Phases) -> None:
    fresh = [new.table(k) for k in new.tables if k not in old.tables]
    ordered, deferred = _order_by_dependencies(fresh)
    for table in ordered:
        cut = [fk for k, fk in deferred if k == table.key]
        created = table.evolve(foreign_keys=tuple(f for f in table.foreign_keys if f not in cut)) if cut else table
        phases.create_tables.append(CreateTable(created))
        for fk in cut:
            phases.add_fks.append(AddConstraint(table.name, fk, schema=table.schema))


COLUMN_FIELDS = (
    "type", "nullable", "default", "autoincrement", "comment", "computed", "identity", "sequence", "defaults",
)


def columns_differ(a: Column, b: Column) -> bool:
    """True when two same-named columns differ in anything the database stores."""
    return a != b and any(getattr(a, f) != getattr(b, f) for f in COLUMN_FIELDS)


def _table_changes(before: Table, after: Table, phases: _Phases) -> None:
    name, schema = before.name, before.schema
    _constraint_changes(before, after, phases)
    for column in after.columns:
        if not before.has_column(column.name):
            phases.columns.append(AddColumn(name, column, schema=schema))
        elif columns_differ(before.column(column.name), column):
            old = before.column(column.name)
            phases.columns.append(AlterColumn(name, column.name, new=column, old=old, schema=schema))
    for column in before.columns:
        if not after.has_column(column.name):
            phases.drop_columns.append(DropColumn(name, column.name, schema=schema, definition=column))
    if before.comment != after.comment:
        phases.columns.append(_table_comment(before, after))


def _table_comment(before: Table, after: Table) -> Operation:
    return AlterTableComment(before.name, after.comment, old=before.comment, schema=before.schema)


class Named(Protocol):
    """A constraint or index: anything matched by content with an optional name."""

    @property
    def name(self) -> str | None: ...


C = TypeVar("C", bound=Named)


def _same_ignoring_name(a: object, b: object) -> bool:
    return replace(a, name=None) == replace(b, name=None)  # type: ignore[type-var]


def match_items(old: Iterable[C], new: Iterable[C],
                same: Callable[[C, C], bool] = _same_ignoring_name) -> tuple[list[C], list[C]]:
    """(removed, added) between two constraint lists.

    Equal items match first; then an unnamed item matches a named one with the same
    definition (databases and naming conventions name what models leave unnamed). In
    that order, of twins (a named key and an unnamed one alike) the one missing is the
    one reported.
    """
    removed = list(old)
    unequal: list[C] = []
    for item in new:
        twin = next((o for o in removed if o == item), None)
        if twin is None:
            unequal.append(item)
        else:
            removed.remove(twin)
    added: list[C] = []
    for item in unequal:
        twin = next(
            (o for o in removed if (o.name is None or item.name is None) and same(o, item)),
            None,
        )
        if twin is None:
            added.append(item)
        else:
            removed.remove(twin)
    return removed, added


def _constraint_changes(before: Table, after: Table, phases: _Phases) -> None:
    name, schema = before.name, before.schema
    # removed columns take their constraints along; only drop those that outlive the column drop
    for kind in ("uniques", "checks", "foreign_keys"):
        removed, added = match_items(getattr(before, kind), getattr(after, kind))
        drop_target = phases.drop_fks if kind == "foreign_keys" else phases.drop_other
        add_target = phases.add_fks if kind == "foreign_keys" else phases.add_other
        for constraint in removed:
            drop_target.append(DropConstraint(name, constraint.name, schema=schema, definition=constraint))
        for constraint in added:
            add_target.append(AddConstraint(name, constraint, schema=schema))
    _primary_key_change(before, after, phases)
    removed_ix, added_ix = _index_changes(before, after)
    for index in removed_ix:
        phases.drop_other.append(DropIndex(name, index.name, schema=schema, definition=index))
    for index in added_ix:
        phases.add_other.append(CreateIndex(name, index, schema=schema))


def _index_changes(before: Table, after: Table) -> tuple[list[Index], list[Index]]:
    """(removed, added) indexes, ignoring DDL-time options (postgresql_concurrently…): how to build, not what it is."""
    def bare(index: Index) -> Index:
        if not any(key in BUILD_OPTIONS for key, _ in index.options):
            return index
        return replace(index, options=tuple((k, v) for k, v in index.options if k not in BUILD_OPTIONS))

    old, new = {bare(index) for index in before.indexes}, {bare(index) for index in after.indexes}
    return [i for i in before.indexes if bare(i) not in new], [i for i in after.indexes if bare(i) not in old]


def _primary_key_change(before: Table, after: Table, phases: _Phases) -> None:
    old_pk, new_pk = before.primary_key, after.primary_key
    old_cols = old_pk.columns if old_pk else ()
    new_cols = new_pk.columns if new_pk else ()
    if old_cols == new_cols:
        if old_pk is not None and new_pk is not None and old_pk.name and new_pk.name and old_pk.name != new_pk.name:
            phases.add_other.append(RenameConstraint(before.name, old_pk.name, new_pk.name, schema=before.schema))
        return
    if old_pk is not None:
        phases.drop_other.append(DropConstraint(before.name, old_pk.name, schema=before.schema, definition=old_pk))
    if new_pk is not None:
        phases.add_other.append(AddConstraint(before.name, new_pk, schema=before.schema))


def describe(operations: list[Operation]) -> list[str]:
    """One line per operation."""
    return [op.describe() for op in operations]

