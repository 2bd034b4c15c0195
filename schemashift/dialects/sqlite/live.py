"""SQLite table rebuilds that keep what only the live database has (issue 12).

A rebuild (``CREATE TABLE`` new, copy, ``DROP``, ``RENAME``) builds the table the
migrations define. `adapt` rewrites a plan just before it runs or is shown
(`Dialect.adapt_to_live`, called by `backups.prepare`) so that each rebuild
follows SQLite's documented procedure for other schema changes and carries over
what only the live table has: columns the migrations do not know (definition and
values), table constraints and indexes they do not have, the live definition of
columns the rebuild does not change, and every trigger and view on or over the
table (dropped before and re-created after, so that SQLite's ``RENAME`` check
passes). What cannot be carried, an object using a column the rebuild removes or
a column it adds that the live table already has, is refused before anything
changes. ``PRAGMA foreign_key_check`` follows rebuilds of tables with foreign keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from schemashift import operations as ops
from schemashift.errors import MigrationError
from schemashift.model import normalize as norm
from schemashift.model.schema import Schema, Table
from schemashift.operations import objects as object_ops

if TYPE_CHECKING:
    from schemashift.dialects.sqlite.dialect import SQLiteDialect
    from schemashift.planning.plan import Plan, Step

_OFFLINE_NOTE = (
    "rebuild of {table} as the migrations define it: without a database, columns, constraints, indexes, triggers and "
    "views that only the live table has are unknown here and NOT carried over (`upgrade --sql` connected "
    "to the database prints the rebuild that keeps them)"
)
_READ_WHEN_RUN = "read when the rebuild runs (raw SQL, Python or a rename before it may change it)"
#: First words of statements that only read or write rows.
_ROW_WORDS = frozenset({"insert", "update", "delete", "select", "with", "replace", "values"})
_FIRST_WORD = re.compile(r"\s*([A-Za-z_]\w*)")
#: Operations of ours that SQLite may run as a table rebuild (see `SQLiteDialect.rebuilt`).
_MAY_REBUILD = (ops.AddColumn, ops.DropColumn, ops.AlterColumn, ops.AddConstraint, ops.DropConstraint)


def may_rebuild(operation: ops.Operation) -> bool:
    """True when SQLite may run `operation` as a table rebuild: one of ours that can, or any extension's
    (whose compile method may rebuild; `SQLiteDialect.rebuilt` looks at its statements)."""
    return isinstance(operation, _MAY_REBUILD) or ops.is_extension(operation)
#: A primary key (a table constraint starts with it; a column definition has it anywhere).
_PRIMARY = re.compile(r"(?:constraint \S+ )?primary key\b")
#: Words that start a table constraint, not a column definition, in ``CREATE TABLE``.
_CONSTRAINT_WORDS = frozenset({"constraint", "primary", "unique", "check", "foreign"})


def adapt(dialect: SQLiteDialect, connection: sa.Connection, plan: Plan) -> Plan:
    """`plan` with each table rebuild carrying over what only the live database has on the table.

    Read at plan time (``sqlite_master``, ``table_xinfo``): columns the
    migrations do not know (definition and values), table constraints and
    indexes they do not have, the live definition of columns they define
    otherwise (unless the operation changes them), and the triggers and views
    on or over the table (dropped before, re-created after the rebuild). One of
    those that uses a column the rebuild removes is refused, naming it. After
    an operation whose effect on the live objects the plan cannot know (DDL in
    raw SQL, Python, renames, which SQLite carries into trigger and view
    texts), later rebuilds read the live table when they run instead
    (`LiveRebuild`). A rebuild of a table with foreign keys from or to it is
    followed by `ForeignKeyCheck`.
    """
    if plan.empty:
        return plan
    live = _LivePlan(connection, plan.steps[0].before)
    return replace(plan, steps=[_adapt_step(dialect, step, live) for step in plan.steps])


def adapt_offline(dialect: SQLiteDialect, plan: Plan) -> Plan:
    """`plan` for a script written without a database: each rebuild says what it cannot know."""
    steps = []
    for step in plan.steps:
        if not any(may_rebuild(operation) for operation in step.operations):
            steps.append(step)
            continue
        statements, state, position = list(step.statements), step.before, 0
        for operation, group in zip(step.operations, statement_groups(step), strict=False):
            after = operation.apply(state)
            tables = dialect.rebuilt(operation, state, after) if group and group[0].sql else None
            if tables is not None:
                note = f"-- {_OFFLINE_NOTE.format(table=tables[1].key)}\n{group[0].sql}"
                statements[position] = replace(group[0], sql=note)
            position, state = position + len(group), after
        steps.append(replace(step, statements=statements))
    return replace(plan, steps=steps)


def _adapt_step(dialect: SQLiteDialect, step: Step, live: _LivePlan) -> Step:
    if not any(may_rebuild(operation) for operation in step.operations):
        for operation, group in zip(step.operations, statement_groups(step), strict=False):
            live.note(operation, group)
        return step
    operations: list[ops.Operation] = []
    statements: list[Any] = []
    state = step.before
    for operation, group in zip(step.operations, statement_groups(step), strict=False):
        after = operation.apply(state)
        operations.append(operation)
        for part, before, part_after, part_group in _parts(dialect, operation, state, after, group):
            tables = dialect.rebuilt(part, before, part_after) if part_group else None
            if tables is None:
                statements.extend(part_group)
                live.note(operation, part_group)
            else:
                added, adapted = _adapted_rebuild(dialect, operation, *tables, part_after, live)
                operations += added  # after it: `backups.rows_at_risk` reads what precedes it
                statements += adapted
        state = after
    return replace(step, operations=operations, statements=statements)


def _parts(dialect: SQLiteDialect, operation: ops.Operation, before: Schema, after: Schema,
           group: list[Any]) -> list[tuple[ops.Operation, Schema, Schema, list[Any]]]:
    """`operation` as the parts it runs as: a filled `AddColumn` is an in-place add, then a rebuild."""
    from schemashift.operations.statement import Statement

    if not isinstance(operation, ops.AddColumn) or operation.fill is None or not group:
        return [(operation, before, after, group)]
    return [(part, part_before, part_after,
             [Statement(operation, sql=sql) for sql in dialect.compile(part, part_before, part_after)])
            for part, part_before, part_after in dialect.fill_parts(operation, before)]


def _adapted_rebuild(dialect: SQLiteDialect, operation: ops.Operation, old: Table, new: Table,
                     after: Schema, live: _LivePlan) -> tuple[list[ops.Operation], list[Any]]:
    """The operations shown with `operation` and its statements, carrying what only the live table has."""
    from schemashift.operations.statement import Statement

    shown: list[ops.Operation]
    if live.uncertain:
        shown = [KeepLiveObjects(new.name, _READ_WHEN_RUN, schema=new.schema)]
        statements: list[Any] = [Statement(operation, python=LiveRebuild(dialect, operation, old, new, after))]
    else:
        carried = live.carried(dialect, old, new, after)
        refuse_removed_in_use(carried, old, new, operation.describe())
        shown = [KeepLiveObjects(new.name, carried.describe(), schema=new.schema)] if carried else []
        statements = [Statement(operation, sql=sql) for sql in dialect.rebuild(old, new, after, carried)]
    check = ForeignKeyCheck.planned(live.connection, new, after)
    if check is not None:
        statements.append(Statement(operation, python=check))
    return shown, statements


@dataclass(frozen=True)
class LiveObject:
    """An index, trigger or view as ``sqlite_master`` holds it."""

    kind: str
    name: str
    table: str
    sql: str
    schema: str | None = None

    @cached_property
    def identifiers(self) -> frozenset[str]:
        """Every name its SQL mentions, lower-cased (an over-approximation of what it uses)."""
        return _identifiers(self.sql)


@dataclass(frozen=True)
class LiveColumn:
    """A column of a live table with its definition as written in the table's ``CREATE TABLE``."""

    name: str
    definition: str
    generated: bool = False


@dataclass(frozen=True)
class Carried:
    """What a rebuild of one table takes over from the live database beyond the migrations' definition."""

    columns: tuple[LiveColumn, ...] = ()
    indexes: tuple[LiveObject, ...] = ()
    dependents: tuple[LiveObject, ...] = ()  #: triggers and views, in creation order
    constraints: tuple[str, ...] = ()  #: table constraints (CHECK, UNIQUE, FOREIGN KEY) as written
    definitions: tuple[LiveColumn, ...] = ()  #: known columns the live table defines otherwise, kept as they are

    def __bool__(self) -> bool:
        return bool(self.columns or self.indexes or self.dependents or self.constraints or self.definitions)

    def describe(self) -> str:
        """``column legacy (with its values), constraint CHECK (…), index ix_legacy, trigger t, view v``."""
        parts = [f"column {c.name}" + ("" if c.generated else " (with its values)") for c in self.columns]
        parts += [f"column {c.name} defined as live ({_short(c.definition)})" for c in self.definitions]
        parts += [f"constraint {_short(text)}" for text in self.constraints]
        parts += [f"{o.kind} {o.name}" for o in self.indexes + self.dependents]
        return ", ".join(parts)


@dataclass(frozen=True)
class Expected:
    """What the migrations give a rebuilt table, to tell the live-only part apart (names lower-cased)."""

    columns: frozenset[str]
    indexes: frozenset[str]
    constraints: frozenset[str]  #: `canonical_sql` of the table constraints ``CREATE TABLE`` writes
    definitions: dict[str, str]  #: `canonical_sql` of each column definition no operation so far changes
    added: frozenset[str] = frozenset()  #: columns the rebuild adds


@dataclass(frozen=True)
class KeepLiveObjects(ops.InternalOperation):
    """Shown before a rebuild (``--dry-run``): what the rebuild carries over that only the live database has."""

    table: str
    what: str
    schema: str | None = None
    data_only = True

    def apply(self, schema: Schema) -> Schema:
        return schema

    def describe(self) -> str:
        return f"keep what only the live database has on {self.table_key}: {self.what}"


class LiveCatalogue:
    """``sqlite_master`` of one database (main or attached), read once, and its tables' columns."""

    def __init__(self, connection: sa.Connection, schema: str | None) -> None:
        self.connection, self.schema = connection, schema
        self.prefix = f'"{schema}".' if schema else ""
        rows = connection.exec_driver_sql(
            f"SELECT type, name, tbl_name, sql FROM {self.prefix}sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"
        ).fetchall()
        self.tables = {name.lower(): sql for kind, name, _, sql in rows if kind == "table"}
        self.objects = [LiveObject(kind, name, table, sql, schema) for kind, name, table, sql in rows
                        if kind in ("index", "trigger", "view")]

    def columns(self, table: str) -> list[LiveColumn]:
        """The live columns of `table` ([] when it does not exist); definition "" where it cannot be read."""
        quoted = table.replace('"', '""')
        rows = self.connection.exec_driver_sql(f'PRAGMA {self.prefix}table_xinfo("{quoted}")').fetchall()
        definitions = column_definitions(self.tables.get(table.lower(), ""))
        return [LiveColumn(row[1], definitions.get(row[1].lower(), ""), row[6] in (2, 3)) for row in rows]

    def carried(self, table: str, expected: Expected) -> Carried:
        """What a rebuild of `table` must carry beyond what the migrations give it (`expected`).

        Columns, indexes and table constraints (by `canonical_sql`, never a primary
        key) they do not have, the live definition of columns they have defined
        otherwise (and no operation so far changes), every dependent trigger and view.
        """
        live = self.columns(table)
        clash = [c.name for c in live if c.name.lower() in expected.added]
        if clash:
            raise MigrationError(f"cannot rebuild {table}: the column {clash[0]} it adds already exists in the live "
                                 "database (the migrations do not have it); nothing was changed",
                                 hint="drop or rename the live column first, or leave it out of the models")
        extra = tuple(c for c in live if c.name.lower() not in expected.columns)
        for column in extra:
            if not column.definition:
                raise MigrationError(f"cannot rebuild {table}: the definition of its live-only column {column.name} "
                                     "could not be read from its CREATE TABLE text; nothing was changed")
        redefined = tuple(c for c in live if c.name.lower() in expected.definitions and c.definition
                          and canonical_sql(c.definition) != expected.definitions[c.name.lower()]
                          and not _PRIMARY.search(canonical_sql(c.definition)))
        indexes = tuple(o for o in self.objects if o.kind == "index" and o.table.lower() == table.lower()
                        and o.name.lower() not in expected.indexes)
        constraints = tuple(
            text for text in table_constraints(self.tables.get(table.lower(), ""))
            if canonical_sql(text) not in expected.constraints and not _PRIMARY.match(canonical_sql(text)))
        return Carried(extra, indexes, self.dependents(table), constraints, redefined)

    def dependents(self, table: str) -> tuple[LiveObject, ...]:
        """Triggers and views on or mentioning `table`, or a view that does (SQLite checks them on RENAME)."""
        names = {table.lower()}
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for live in self.objects:
                key = f"{live.kind}:{live.name.lower()}"
                if live.kind == "index" or key in found:
                    continue
                if live.table.lower() in names or names & live.identifiers:
                    found.add(key)
                    changed = True
                    if live.kind == "view":
                        names.add(live.name.lower())
        return tuple(o for o in self.objects if f"{o.kind}:{o.name.lower()}" in found)


class _LivePlan:
    """The live database while a plan is adapted: catalogues read on first use, and whether they still hold."""

    def __init__(self, connection: sa.Connection, start: Schema) -> None:
        self.connection, self.start = connection, start
        self.uncertain = False  # an earlier operation may have changed live objects unpredictably
        self.fresh: set[str] = set()  # tables this plan creates or drops: their live columns are not drift
        self._catalogues: dict[str | None, LiveCatalogue] = {}
        self.object_edits: list[tuple[str, str, LiveObject | None]] = []  # views/triggers this plan drops or creates

    def note(self, operation: ops.Operation, statements: list[Any]) -> None:
        """Remember an operation whose effect on the live objects cannot be predicted, or that replaces a table.

        Raw SQL that only reads or writes rows (``INSERT``, ``UPDATE``, ``DELETE``, ``SELECT``, ``WITH``) is
        predictable.
        """
        if isinstance(operation, ops.ExecuteSQL):
            self.uncertain = self.uncertain or not all(_rows_only(s.sql or "") for s in statements)
        elif isinstance(operation, (ops.RunPython, ops.RenameTable, ops.RenameColumn)):
            self.uncertain = True
        elif isinstance(operation, (ops.CreateTable, ops.DropTable)) and operation.table_key is not None:
            self.fresh.add(operation.table_key)
        elif isinstance(operation, (object_ops.CreateObject, object_ops.DropObject, object_ops.ReplaceObject,
                                    object_ops.RenameObject)):
            self.note_object(operation, statements)

    def note_object(self, operation: ops.Operation, statements: list[Any]) -> None:
        """Remember a view or trigger the plan drops or creates (a later rebuild carries what is live by then)."""
        if not statements:
            return
        gone = operation.definition if isinstance(operation, (object_ops.DropObject, object_ops.RenameObject)) else \
            getattr(operation, "old", None)
        made = operation.renamed if isinstance(operation, object_ops.RenameObject) else \
            getattr(operation, "object", None) or getattr(operation, "new", None)
        if gone is not None:
            self.object_edits.append((gone.kind, gone.name.lower(), None))
        if made is not None:
            sql = next((s.sql for s in statements if s.sql and s.sql.lstrip().upper().startswith("CREATE")), "")
            table = getattr(made, "table", None) or made.name
            self.object_edits.append((made.kind, made.name.lower(), LiveObject(made.kind, made.name, table, sql)))
        for catalogue in self._catalogues.values():
            self.edit(catalogue, self.object_edits[-2 if gone is not None and made is not None else -1:])

    @staticmethod
    def edit(catalogue: LiveCatalogue, edits: list[tuple[str, str, LiveObject | None]]) -> None:
        """Apply `edits` (kind, name, new object or None) to the objects of `catalogue`."""
        for kind, name, made in edits:
            catalogue.objects = [o for o in catalogue.objects if (o.kind, o.name.lower()) != (kind, name)]
            if made is not None and catalogue.schema is None:
                catalogue.objects.append(made)

    def carried(self, dialect: SQLiteDialect, old: Table, new: Table, after: Schema) -> Carried:
        """What a rebuild of `old` into `new` carries, judged against the migrations' schema at plan start."""
        if old.schema not in self._catalogues:
            self._catalogues[old.schema] = LiveCatalogue(self.connection, old.schema)
            self.edit(self._catalogues[old.schema], self.object_edits)
        catalogue = self._catalogues[old.schema]
        start = None if old.key in self.fresh else self.start.tables.get(old.key)
        if start is None:  # created by this plan: nothing of it is live-only
            return Carried(dependents=catalogue.dependents(old.name))
        return catalogue.carried(old.name, dialect.expected((start, old, new), after))


def refuse_removed_in_use(carried: Carried, old: Table, new: Table, what: str) -> None:
    """MigrationError naming each carried index, trigger or view that mentions a column the rebuild removes.

    Such an object cannot be re-created as it is, and schemashift neither rewrites
    nor silently drops what the user made: like SQLite's own ``DROP COLUMN``, it refuses.
    """
    removed = {name.lower(): name for name in old.column_names if not new.has_column(name)}
    uses = []
    named = [(f"constraint {_short(text)}", _identifiers(text)) for text in carried.constraints]
    named += [(f"column {c.name} as live", _identifiers(c.definition) - {c.name.lower()}) for c in carried.definitions]
    named += [(f"{live.kind} {live.name}", live.identifiers) for live in carried.indexes + carried.dependents]
    for label, identifiers in named:
        used = sorted(removed[name] for name in identifiers.intersection(removed))
        if used:
            uses.append(f"{label} ({', '.join(f'{old.key}.{name}' for name in used)})")
    if uses:
        raise MigrationError(
            f"cannot {what}: what only the live database has uses columns this removes: {', '.join(uses)}; "
            "nothing was changed",
            hint="drop or rewrite them first, e.g. with an ExecuteSQL that has a reverse, "
                 "in this or an earlier migration",
        )


class LiveRebuild:
    """A rebuild that reads the live table when it runs (after operations the plan cannot predict)."""

    def __init__(self, dialect: SQLiteDialect, operation: ops.Operation, old: Table, new: Table, after: Schema) -> None:
        self.dialect, self.operation, self.old, self.new, self.after = dialect, operation, old, new, after
        self.__name__ = f"rebuild_{new.name}_keeping_live_objects"

    def __call__(self, context: Any) -> None:
        catalogue = LiveCatalogue(context.connection, self.old.schema)
        carried = catalogue.carried(self.old.name, self.dialect.expected((self.old, self.new), self.after))
        refuse_removed_in_use(carried, self.old, self.new, self.operation.describe())
        for sql in self.dialect.rebuild(self.old, self.new, self.after, carried):
            context.connection.exec_driver_sql(sql)


class ForeignKeyCheck:
    """After a rebuild: ``PRAGMA foreign_key_check`` on the table and those referencing it.

    Refuses (the migration rolls back) when a table has more violating rows than
    when the plan was made, so violations the database already had do not block.
    """

    __name__ = "foreign_key_check"

    def __init__(self, tables: dict[tuple[str, str | None], int | None]) -> None:
        self.tables = tables

    @classmethod
    def planned(cls, connection: sa.Connection, table: Table, after: Schema) -> ForeignKeyCheck | None:
        """The check for a rebuild of `table`, with today's counts; None when no foreign key is involved."""
        involved = [t for t in after.tables.values() if any(fk.ref_key == table.key for fk in t.foreign_keys)]
        if table.foreign_keys:
            involved.insert(0, table)
        if not involved:
            return None
        return cls({(t.name, t.schema): _violations(connection, t.name, t.schema) for t in involved})

    def __call__(self, context: Any) -> None:
        for (name, schema), before in self.tables.items():
            if before is None:
                continue  # the check failed already when planned (a foreign key to a non-unique key)
            now = _violations(context.connection, name, schema, strict=True) or 0
            if now > before:
                raise MigrationError(
                    f"{now - before} more row(s) of {name} violate its foreign keys after the table rebuild "
                    f"(PRAGMA foreign_key_check); nothing was changed"
                )


def _violations(connection: sa.Connection, table: str, schema: str | None, *, strict: bool = False) -> int | None:
    """Rows of `table` violating its foreign keys (0 when it does not exist; None when SQLite cannot check)."""
    prefix = f'"{schema}".' if schema else ""
    quoted = table.replace('"', '""')
    try:
        return len(connection.exec_driver_sql(f'PRAGMA {prefix}foreign_key_check("{quoted}")').fetchall())
    except sa.exc.DBAPIError:
        if strict:
            raise
        return None


def _rows_only(sql: str) -> bool:
    """True when every statement of `sql` reads or writes rows only (no DDL, no PRAGMA)."""
    text = _without_comments(sql)
    starts = [0] + [i + 1 for a, b, kind in _scan(text) if kind == "code" for i in range(a, b) if text[i] == ";"]
    words = [_FIRST_WORD.match(text, start) for start in starts]
    return all(word is None or word.group(1).lower() in _ROW_WORDS for word in words)


def _identifiers(sql: str) -> frozenset[str]:
    names = set()
    for kind, text in norm.tokenize(_without_comments(sql)):
        if kind == "word":
            names.add(text.lower())
        elif kind == "quoted":
            closing = text[-1]
            names.add(text[1:-1].replace(closing * 2, closing).lower())
    return frozenset(names)


def _without_comments(sql: str) -> str:
    return "".join(sql[a:b] for a, b, kind in _scan(sql) if kind != "comment")


def _scan(sql: str) -> Iterator[tuple[int, int, str]]:
    """Spans of `sql`: ``quoted`` (strings and names), ``comment`` and ``code`` pieces."""
    position, length = 0, len(sql)
    closing = {"'": "'", '"': '"', "`": "`", "[": "]"}
    while position < length:
        char = sql[position]
        if char in closing:
            end = sql.find(closing[char], position + 1)
            while end != -1 and char != "[" and sql.startswith(closing[char] * 2, end):
                end = sql.find(closing[char], end + 2)
            end = length if end == -1 else end + 1
            yield position, end, "quoted"
        elif sql.startswith("--", position) or sql.startswith("/*", position):
            end = sql.find("\n", position) if char == "-" else sql.find("*/", position + 2)
            end = length if end == -1 else end + (0 if char == "-" else 2)
            yield position, end, "comment"
        else:
            end = position + 1
            while end < length and sql[end] not in closing and not sql.startswith(("--", "/*"), end):
                end += 1
            yield position, end, "code"
        position = end


def _elements(sql: str) -> list[tuple[int, int]]:
    """Spans of the top-level comma-separated elements inside the first parentheses of `sql`."""
    spans: list[tuple[int, int]] = []
    depth, start = 0, 0
    for a, b, kind in _scan(sql):
        if kind != "code":
            continue
        for position in range(a, b):
            char = sql[position]
            if char == "(":
                depth += 1
                start = position + 1 if depth == 1 else start
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return [*spans, (start, position)]
            elif char == "," and depth == 1:
                spans.append((start, position))
                start = position + 1
    return []


def table_constraints(table_sql: str) -> list[str]:
    """The table constraints (``CONSTRAINT …``, ``CHECK``, ``UNIQUE``, ``FOREIGN KEY``, ``PRIMARY KEY``) of a
    ``CREATE TABLE`` text."""
    found = []
    for a, b in _elements(table_sql):
        text = table_sql[a:b].strip()
        tokens = norm.tokenize(_without_comments(text))
        if tokens and tokens[0][0] == "word" and tokens[0][1].lower() in _CONSTRAINT_WORDS:
            found.append(text + ("\n" if "--" in text else ""))
    return found


def canonical_sql(text: str) -> str:
    """`text` compared loosely: comments and spacing dropped, names unquoted and lower-cased."""
    parts = []
    for kind, token in norm.tokenize(_without_comments(text)):
        if kind == "quoted" and token[0] != "'":
            parts.append(token[1:-1].replace(token[-1] * 2, token[-1]).lower())
        else:
            parts.append(token.lower() if kind == "word" else token)
    return " ".join(parts)


def _short(text: str) -> str:
    text = " ".join(_without_comments(text).split())
    return text if len(text) <= 60 else text[:57] + "..."


def column_definitions(table_sql: str) -> dict[str, str]:
    """Lower-cased column name -> its definition as written in a ``CREATE TABLE`` text."""
    found: dict[str, str] = {}
    for a, b in _elements(table_sql):
        text = table_sql[a:b].strip()
        tokens = norm.tokenize(_without_comments(text))
        if not tokens or (tokens[0][0] == "word" and tokens[0][1].lower() in _CONSTRAINT_WORDS):
            continue
        kind, first = tokens[0]
        name = first[1:-1] if kind == "quoted" else first
        found.setdefault(name.lower(), text + ("\n" if "--" in text else ""))
    return found


def spliced(create: str, count: int, definitions: dict[str, str], columns: list[str],
            constraints: Iterable[str]) -> str:
    """`create` (a ``CREATE TABLE`` whose first `count` elements are columns) with the columns named in
    `definitions` defined so instead, `columns` added after its columns and `constraints` at its end."""
    constraints = list(constraints)
    if not (definitions or columns or constraints):
        return create
    spans = _elements(create)
    edits: list[tuple[int, int, int, str]] = []  # start, order at that place, end, text
    for a, b in spans[:count]:
        name = next(iter(column_definitions(f"({create[a:b]})")), None)
        if name in definitions:
            edits.append((a, 0, b, definitions[name]))
    if columns:
        edits.append((spans[count - 1][1], 1, spans[count - 1][1], ", " + ", ".join(columns)))
    if constraints:
        edits.append((spans[-1][1], 2, spans[-1][1], ", " + ", ".join(constraints)))
    for a, _, b, text in sorted(edits, reverse=True):
        create = create[:a] + text + create[b:]
    return create


def statement_groups(step: Step) -> list[list[Any]]:
    """The statements of each operation of `step`, in order."""
    groups: list[list[Any]] = []
    position = 0
    for operation in step.operations:
        group = []
        while position < len(step.statements) and step.statements[position].operation is operation:
            group.append(step.statements[position])
            position += 1
        groups.append(group)
    return groups
