"""Lint: what a migration will do to a live database, before it runs.

Each rule has a stable code (``SS`` and three digits; the groups are listed in
`GROUPS`) and looks at one resolved operation with the schema before it, judged
for the database the selected environment uses (its dialect's declared
capabilities, never its name). Raw ``ExecuteSQL`` is parsed where a parser for
that database is installed (pglast for PostgreSQL) and checked by the same rules;
what cannot be parsed is reported as unchecked (SS501), never skipped silently.
Elsewhere a simple reading finds whole-table ``UPDATE``/``DELETE`` (SS212) only, also after or inside a
``WITH`` list.

Operations on a table created earlier in the same migration are not findings for
the blocking rules: nobody else can be using that table yet.

A migration suppresses a finding with ``allow(operation, SS201="why it is fine")``
around the operation in its list; the finding is still listed, marked allowed,
with the reason, and does not fail the run. `docs/lint.md` lists every code with
the squawk rule and the Atlas analyzer it corresponds to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from schemashift import operations as ops
from schemashift.errors import MigrationError
from schemashift.model.schema import CheckConstraint, ForeignKey, PrimaryKey, Schema, UniqueConstraint
from schemashift.model.types import INTEGER_KINDS, Type, copies_online, rewrites_storage

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect
    from schemashift.history.loader import Migration

GROUPS = {"SS1": "destructive", "SS2": "blocking", "SS3": "backward-incompatible", "SS4": "MySQL/MariaDB",
          "SS5": "raw SQL"}


@dataclass(frozen=True)
class Rule:
    """One lint rule: its code, a title, why it matters, and the safe alternative."""

    code: str
    title: str
    why: str
    fix: str


RULES: dict[str, Rule] = {rule.code: rule for rule in (
    Rule("SS101", "drop table", "the table and every row in it are gone; running code that reads it fails",
         "stop using the table in a release first; keep a backup (schemashift keeps one unless keep_data is off)"),
    Rule("SS102", "drop column", "the column's values are gone; running code that selects it fails",
         "stop reading and writing the column in a release first, then drop it"),
    Rule("SS103", "narrowing type", "values that do not fit the new type are cut or make the statement fail",
         "check the longest value first, or add a new column, copy, and switch over"),
    Rule("SS104", "enum value removed",
         "rows still holding the value stop the migration; running code may still write it",
         "move the rows to another value (ExecuteSQL with a reverse) in an earlier migration"),
    Rule("SS201", "index built without CONCURRENTLY", "CREATE INDEX blocks every write to the table while it builds",
         "CREATE INDEX CONCURRENTLY outside the transaction (schemashift safe mode)"),
    Rule("SS202", "foreign key validated in place", "ADD FOREIGN KEY scans the table holding SHARE ROW EXCLUSIVE "
         "locks on both tables, blocking writes to each",
         "ADD ... NOT VALID, then VALIDATE CONSTRAINT in its own transaction"),
    Rule("SS203", "check validated in place", "ADD CHECK scans the whole table while blocking writes",
         "ADD ... NOT VALID, then VALIDATE CONSTRAINT in its own transaction"),
    Rule("SS204", "NOT NULL set by a scan", "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock",
         "add CHECK (col IS NOT NULL) NOT VALID, validate it, then SET NOT NULL (no scan) and drop the check"),
    Rule("SS205", "table rewrite by type change", "the table is rewritten under an ACCESS EXCLUSIVE lock: "
         "no reads or writes until it is done", "add a new column, backfill in batches, switch over, drop the old one"),
    Rule("SS206", "table rewrite by volatile default", "a column added with a volatile default (or an identity/"
         "serial) rewrites the whole table under an ACCESS EXCLUSIVE lock",
         "add the column without the default, backfill in batches, then set the default"),
    Rule("SS207", "unique key or primary key built by a scan", "ADD UNIQUE / PRIMARY KEY builds its index while "
         "blocking writes", "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX"),
    Rule("SS208", "no lock_timeout", "a statement waiting for its lock queues every later query on the table "
         "behind it", "SET lock_timeout (a few seconds) and retry; schemashift safe mode does"),
    Rule("SS209", "no statement_timeout", "a slow statement holds its locks for as long as it runs",
         "set statement_timeout for the environment"),
    Rule("SS210", "concurrent refresh without a unique index", "REFRESH MATERIALIZED VIEW CONCURRENTLY fails "
         "unless the materialized view has a unique index (on columns, without WHERE)",
         "CREATE UNIQUE INDEX on the materialized view first (in the same SQL, so lint sees it), or refresh it "
         "without CONCURRENTLY in a quiet period"),
    Rule("SS211", "lock held through the rest of the transaction", "the migration runs as one transaction: the "
         "strong lock an earlier operation took on an existing table is held until the commit, so this operation's "
         "scan, copy or lock wait stalls every reader and writer of that table too",
         "one lock-taking change per migration, or this operation first; in safe mode a lock-safe form (an index, "
         "key, check or NOT NULL on an existing table) makes the migration run statement by statement"),
    Rule("SS212", "UPDATE or DELETE of a whole table in one statement", "one transaction changes every row and "
         "holds their row locks until it commits: writers to any of them wait, the statement runs as long as the "
         "table is large, and a kill loses all of it",
         "a Backfill (short transactions by primary-key ranges, resumable after a kill), or a WHERE that bounds "
         "the rows"),
    Rule("SS301", "table renamed", "running code still uses the old name until it is redeployed",
         "create a view under the old name for the switch-over, or rename in a release of its own"),
    Rule("SS302", "column renamed", "running code still uses the old name until it is redeployed",
         "add the new column, write both, backfill, switch reads, then drop the old one"),
    Rule("SS303", "NOT NULL column without default", "running code that inserts rows without the column fails",
         "add it with a server default, or nullable, then tighten after the code is deployed"),
    Rule("SS304", "column dropped while the models still map it", "the models (so the application built from them) "
         "still select and insert the column: their queries fail once it is gone",
         "remove the column from the models and deploy that first, then drop it in a later migration"),
    Rule("SS401", "ALTER that copies the table", "the change cannot run INSTANT or INPLACE with LOCK=NONE: "
         "MySQL/MariaDB copies the table and blocks writes", "add a new column and backfill, or use an online "
         "schema-change tool"),
    Rule("SS402", "enum values reordered or removed", "changing an ENUM other than appending copies the table",
         "only append values; remove unused ones in a quiet period"),
    Rule("SS403", "foreign key or check validated in place", "MySQL/MariaDB validate every row of the table while "
         "writes wait; there is no online form", "add it in a quiet period, or as NOT ENFORCED/unchecked and "
         "validate with a query of your own"),
    Rule("SS501", "raw SQL not checked", "the SQL could not be parsed, so no rule could look at it",
         "review it by hand, or split it into statements the parser reads"),
)}

#: Blocking rules that concern a table only when it existed before the migration.
ON_EXISTING = ("SS201", "SS202", "SS203", "SS204", "SS205", "SS206", "SS207", "SS211", "SS212", "SS303", "SS401",
               "SS402", "SS403")


@dataclass(frozen=True)
class Finding:
    """One rule hit: where (file, revision, operation index and text) and what."""

    code: str
    title: str
    file: str
    revision: str
    operation: int
    what: str
    why: str
    fix: str
    allowed: str | None = None

    def line(self) -> str:
        """One line for humans."""
        allowed = f" [allowed: {self.allowed}]" if self.allowed is not None else ""
        where = f"op {self.operation + 1}" if self.operation >= 0 else "migration"
        return (f"{self.code} {self.file} {where} ({self.what}): {self.title}: {self.why}; "
                f"instead: {self.fix}{allowed}")


# --------------------------------------------------------------------------- suppression


_ALLOWED: dict[int, tuple[ops.Operation, dict[str, str]]] = {}


def allow(operation: ops.Operation, **codes: str) -> ops.Operation:
    """Mark `operation` (in a migration's list) as accepted for the lint codes given, each with its reason.

        operations = [allow(CreateIndex("t", Index("ix_t_a", ("a",))), SS201="t holds 40 rows")]
    """
    for code, reason in codes.items():
        if code not in RULES or not str(reason).strip():
            raise ValueError(f"allow({code}=...): a known lint code and a reason are needed")
    _ALLOWED[id(operation)] = (operation, {code: str(reason) for code, reason in codes.items()})
    return operation


def allowed_codes(operation: ops.Operation) -> dict[str, str]:
    """The codes `allow` accepted for `operation`, with their reasons."""
    entry = _ALLOWED.get(id(operation))
    return entry[1] if entry is not None and entry[0] is operation else {}


# --------------------------------------------------------------------------- rules on operations


@dataclass
class Context:
    """What a rule sees: the resolved operation, the schema before it, what the migration created, the dialect."""

    operation: ops.Operation
    before: Schema
    created: set[str]
    dialect: Dialect
    env_statement_timeout: float | None = None
    still_mapped: frozenset[tuple[str, str]] = frozenset()  #: (table key, column): in the models, not at head


def _narrower(old: Type, new: Type) -> bool:
    """True when `new` cannot hold every value of `old`."""
    if old.kind in INTEGER_KINDS and new.kind in INTEGER_KINDS:
        return INTEGER_KINDS.index(new.kind) < INTEGER_KINDS.index(old.kind)
    if old.kind != new.kind:
        return not (old.kind == "string" and new.kind == "text")
    for attribute in ("length", "precision", "scale"):
        before, after = getattr(old, attribute), getattr(new, attribute)
        if after is not None and (before is None or after < before):
            return True
    return False


def destructive(ctx: Context) -> Iterator[str]:
    """SS101-SS104."""
    op = ctx.operation
    if isinstance(op, ops.DropTable):
        yield "SS101"
    elif isinstance(op, ops.DropColumn):
        yield "SS102"
    elif isinstance(op, ops.AlterColumn) and op.old is not None:
        if op.old.type.kind == "enum" and op.new.type.kind == "enum":
            if set(op.old.type.values) - set(op.new.type.values):
                yield "SS104"
        elif _narrower(op.old.type, op.new.type):
            yield "SS103"


def blocking(ctx: Context) -> Iterator[str]:
    """SS201-SS207 where the database offers a non-blocking form (PostgreSQL)."""
    op, dialect = ctx.operation, ctx.dialect
    if isinstance(op, ops.CreateIndex) and dialect.concurrent_index:
        yield "SS201"
    elif isinstance(op, ops.AddConstraint) and dialect.not_valid_constraints:
        yield from _constraint_codes(op.constraint)
    elif isinstance(op, ops.AlterColumn) and op.old is not None and dialect.not_valid_constraints:
        if op.old.nullable and not op.new.nullable:
            yield "SS204"
        if rewrites_storage(op.old.type, op.new.type):
            yield "SS205"
    elif isinstance(op, ops.AddColumn) and dialect.not_valid_constraints and _volatile(op, dialect):
        yield "SS206"


def _constraint_codes(constraint: Any) -> Iterator[str]:
    if isinstance(constraint, ForeignKey):
        yield "SS202"
    elif isinstance(constraint, CheckConstraint):
        yield "SS203"
    elif isinstance(constraint, (UniqueConstraint, PrimaryKey)):
        yield "SS207"


def _volatile(op: ops.AddColumn, dialect: Dialect) -> bool:
    column = op.column
    if op.fill is None and dialect.volatile_default(column):
        return True
    return column.identity is not None or (column.computed is not None and column.computed.persisted is not False)


def incompatible(ctx: Context) -> Iterator[str]:
    """SS301-SS304."""
    op = ctx.operation
    if isinstance(op, ops.RenameTable):
        yield "SS301"
    elif isinstance(op, ops.RenameColumn):
        yield "SS302"
    elif isinstance(op, ops.DropColumn) and (op.table_key, op.column) in ctx.still_mapped:
        yield "SS304"
    elif isinstance(op, ops.AddColumn):
        column = op.column
        if not column.nullable and column.default is None and column.identity is None and column.computed is None \
                and not column.autoincrement:
            yield "SS303"  # a one-off fill serves the rows already there, not the inserts of running code


def online_alter(ctx: Context) -> Iterator[str]:
    """SS401-SS403 on databases with online ALTER algorithms (MySQL/MariaDB)."""
    op = ctx.operation
    if not ctx.dialect.online_alter:
        return
    if isinstance(op, ops.AddConstraint) and isinstance(op.constraint, (ForeignKey, CheckConstraint)):
        yield "SS403"
        return
    if isinstance(op, ops.AddColumn) and op.fill is None and ctx.dialect.volatile_default(op.column):
        yield "SS401"  # ``DEFAULT (uuid())``: no INSTANT or INPLACE form
        return
    if not isinstance(op, ops.AlterColumn) or op.old is None:
        return
    code = copies_online(op.old.type, op.new.type)
    if code is not None:
        yield code


RULE_SETS: tuple[Callable[[Context], Iterable[str]], ...] = (destructive, blocking, incompatible, online_alter)


# --------------------------------------------------------------------------- raw SQL (PostgreSQL via pglast)


def sql_codes(sql: str, created: Collection[str] = ()) -> list[str] | None:
    """The codes PostgreSQL `sql` hits, or None when it cannot be parsed (or pglast is not installed); `created`:
    the tables the migration made earlier (no blocking finding there)."""
    try:
        import pglast
    except ImportError:
        return None
    try:
        tree = pglast.parse_sql(sql)
    except Exception:  # noqa: BLE001 - any parse failure means "not checked"
        return None
    codes: list[str] = []
    unique: set[str] = set()  # relations given a unique index earlier in this SQL
    made = set(created)  # and tables created
    for raw in tree:
        statement: Any = raw.stmt
        if type(statement).__name__ == "CreateStmt":
            made.add(_relation(statement.relation))
        codes.extend(_statement_codes(statement, made))
        codes.extend(_refresh_codes(raw.stmt, unique))
    return codes


def _refresh_codes(node: Any, unique: set[str]) -> Iterator[str]:
    """SS210: ``REFRESH MATERIALIZED VIEW CONCURRENTLY`` of a view no earlier statement gave a unique index."""
    kind = type(node).__name__
    if kind == "IndexStmt" and node.unique and node.whereClause is None:
        unique.add(_relation(node.relation))
    elif kind == "RefreshMatViewStmt" and node.concurrent and _relation(node.relation) not in unique:
        yield "SS210"


def _relation(node: Any) -> str:
    return f"{node.schemaname}.{node.relname}" if node.schemaname else str(node.relname)


def _statement_codes(node: Any, created: Collection[str]) -> Iterator[str]:
    for cte in getattr(getattr(node, "withClause", None), "ctes", None) or ():  # ``WITH u AS (UPDATE …) SELECT …``
        yield from _statement_codes(cte.ctequery, created)
    kind = type(node).__name__
    if kind in ("UpdateStmt", "DeleteStmt") and node.whereClause is None and _relation(node.relation) not in created:
        yield "SS212"
    elif kind == "IndexStmt" and not node.concurrent:
        yield "SS201"
    elif kind == "DropStmt" and str(node.removeType).endswith("OBJECT_TABLE"):
        yield "SS101"
    elif kind == "RenameStmt":
        yield "SS302" if str(node.renameType).endswith("OBJECT_COLUMN") else "SS301"
    elif kind == "AlterTableStmt":
        for command in node.cmds or ():
            yield from _alter_codes(command)


def _alter_codes(command: Any) -> Iterator[str]:
    subtype = str(command.subtype).rsplit(".", 1)[-1]
    if subtype == "AT_DropColumn":
        yield "SS102"
    elif subtype == "AT_SetNotNull":
        yield "SS204"
    elif subtype == "AT_AlterColumnType":
        yield "SS205"
    elif subtype == "AT_AddConstraint" and command.def_ is not None:
        constraint = command.def_
        contype = str(constraint.contype).rsplit(".", 1)[-1]
        if constraint.skip_validation:
            return
        yield from {"CONSTR_FOREIGN": ["SS202"], "CONSTR_CHECK": ["SS203"], "CONSTR_UNIQUE": ["SS207"],
                    "CONSTR_PRIMARY": ["SS207"]}.get(contype, [])


# --------------------------------------------------------------------------- raw SQL elsewhere (a simple reading)

#: ``UPDATE t …`` / ``DELETE FROM t …`` (MySQL's modifiers allowed), the table name captured (quoted parts are
#: hidden as ``\0n\0`` by then).
_WRITE = re.compile(r"^(?:UPDATE(?:\s+(?:LOW_PRIORITY|IGNORE))*|DELETE(?:\s+(?:LOW_PRIORITY|QUICK|IGNORE))*\s+FROM)"
                    r"\s+([\w.\x00]+)", re.IGNORECASE)
#: ``CREATE TABLE t``, the table name captured.
_CREATE = re.compile(r"^CREATE\s+(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.\x00]+)", re.IGNORECASE)
#: What bounds the rows of such a statement.
_BOUNDED = re.compile(r"\b(?:WHERE|LIMIT)\b", re.IGNORECASE)
#: Comments, and quoted strings and names (read past, so that ``;`` and ``WHERE`` inside them count for nothing).
_COMMENT = re.compile(r"--[^\n]*|#[^\n]*|/\*.*?\*/", re.DOTALL)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`")


def plain_sql_codes(sql: str, created: Collection[str] = ()) -> list[str]:
    """SS212 for each ``UPDATE``/``DELETE`` of `sql` with neither WHERE nor LIMIT on a table not in `created` (nor
    created earlier in `sql`): a simple reading for databases without a parser here (statements split at ``;``
    outside quotes)."""
    names: list[str] = []
    made = set(created)

    def hide(match: re.Match[str]) -> str:
        names.append(match.group())
        return f"\0{len(names) - 1}\0"

    text = _QUOTED.sub(hide, _COMMENT.sub(" ", sql))
    codes: list[str] = []
    for statement in text.split(";"):
        if new := _CREATE.match(statement.strip()):
            made.add(_unquoted(re.sub(r"\0(\d+)\0", lambda m: names[int(m.group(1))], new.group(1))))
        bodies, main = _common_table_expressions(statement.strip())
        for part in (*bodies, main):
            match = _WRITE.match(part.strip())
            if match is None or _BOUNDED.search(part):
                continue
            table = re.sub(r"\0(\d+)\0", lambda m: names[int(m.group(1))], match.group(1))
            if _unquoted(table) not in made:
                codes.append("SS212")
    return codes


#: ``WITH [RECURSIVE]`` before a statement, and each ``name [(columns)] AS [[NOT] MATERIALIZED] (`` of its list.
_WITH = re.compile(r"^WITH(?:\s+RECURSIVE)?\s+", re.IGNORECASE)
_CTE_HEAD = re.compile(r"^,?\s*[\w\x00]+\s*(?:\([^()]*\)\s*)?AS\s+(?:(?:NOT\s+)?MATERIALIZED\s+)?\(", re.IGNORECASE)


def _common_table_expressions(statement: str) -> tuple[list[str], str]:
    """The bodies of a leading ``WITH`` list, and the statement after it (no ``WITH``: none, and `statement`)."""
    start = _WITH.match(statement)
    if start is None:
        return [], statement
    bodies: list[str] = []
    rest = statement[start.end():]
    while head := _CTE_HEAD.match(rest):
        end = _closing_parenthesis(rest, head.end())
        if end is None:
            return bodies, rest
        bodies.append(rest[head.end():end])
        rest = rest[end + 1:]
    return bodies, rest


def _closing_parenthesis(text: str, start: int) -> int | None:
    """The index of the ``)`` closing the ``(`` just before `start` (quoted parts are hidden already)."""
    depth = 1
    for index in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return index
    return None


def _unquoted(name: str) -> str:
    """``"s"."t"`` or `` `t` `` as the key of the table (``s.t``, ``t``)."""
    return ".".join(part.strip('`"') for part in name.split("."))


# --------------------------------------------------------------------------- running


def lint_migration(migration: Migration, before: Schema, dialect: Dialect, *,
                   statement_timeout: float | None = None, safe: bool = False,
                   still_mapped: frozenset[tuple[str, str]] = frozenset(), keep_data: bool = True) -> list[Finding]:
    """Every finding of `migration`, applied to `before`, for `dialect`; with `safe`, as safe mode runs it
    (`schemashift.planning.safe`: the codes its lock-safe forms avoid are not findings, nor SS208);
    `still_mapped`: the (table key, column) pairs the models have and the migrations' head has not (SS304);
    `keep_data`: dropped columns and tables are copied first (a scan while earlier locks are held: SS211)."""
    findings: list[Finding] = []
    created: set[str] = set()
    state = before
    blocking_ops = 0
    held = _HeldLocks(_one_transaction(migration, before, dialect, safe=safe), keep_data)
    for index, original in enumerate(migration.operations):
        resolved = original.resolve(state)
        ctx = Context(resolved, state, created, dialect, statement_timeout, still_mapped)
        codes = list(_codes(ctx, dialect))
        if safe and codes and not (resolved.table_key in created or isinstance(resolved, ops.ExecuteSQL)):
            codes = [code for code in codes if code not in _safe_fixes(resolved, state, dialect)]
        if _locks_existing_table(resolved, created) or any(code.startswith("SS2") for code in codes):
            blocking_ops += 1
        findings.extend(_finding(code, migration, index, resolved, allowed_codes(original)) for code in codes)
        findings.extend(held.finding(migration, index, original, resolved, ctx))
        if isinstance(resolved, ops.CreateTable):
            created.add(resolved.table.key)
        state = resolved.apply(state)
    if blocking_ops and dialect.not_valid_constraints:
        findings.extend(_timeouts(migration, statement_timeout, safe=safe))
    return findings


def _one_transaction(migration: Migration, before: Schema, dialect: Dialect, *, safe: bool) -> bool:
    """True when `migration` will run as one transaction holding its locks to the end (PostgreSQL): no
    statement that must run outside one, no batched backfill, and in safe mode no lock-safe form (any of those
    makes the step run statement by statement, each committed)."""
    if not (dialect.transactional_ddl and dialect.not_valid_constraints):
        return False
    created: set[str] = set()
    state = before
    for original in migration.operations:
        op = original.resolve(state)
        if op.batched or _outside_transaction(op, dialect):
            return False
        if safe and op.table_key is not None and op.table_key not in created and _has_safe_form(op, state, dialect):
            return False
        if isinstance(op, ops.CreateTable):
            created.add(op.table.key)
        state = op.apply(state)
    return True


def _outside_transaction(op: ops.Operation, dialect: Dialect) -> bool:
    if isinstance(op, ops.ExecuteSQL):
        return not dialect.runs_in_transaction(op.sql)
    index = op.index if isinstance(op, ops.CreateIndex) else None
    return index is not None and bool(index.option("postgresql_concurrently"))


def _has_safe_form(op: ops.Operation, before: Schema, dialect: Dialect) -> bool:
    try:
        after = op.apply(before)
        form = dialect.safe_form(op, before, after, dialect.compile(op, before, after))
    except MigrationError:
        return False
    return form is not None and bool(form.statements)


@dataclass
class _HeldLocks:
    """SS211: in a migration run as one transaction, the first strong lock on an existing table is held while
    every later operation runs; those that scan, copy, run SQL or wait for another table's lock are findings."""

    one_transaction: bool
    keep_data: bool
    holder: tuple[int, str] | None = None  #: (operation index, table) of the first lock

    def finding(self, migration: Migration, index: int, original: ops.Operation, op: ops.Operation,
                ctx: Context) -> list[Finding]:
        """The SS211 finding of operation `index` (`op` resolved), if any; remembers the first lock."""
        if not self.one_transaction:
            return []
        if self.holder is None:
            if _locks_existing_table(op, ctx.created):
                self.holder = (index, str(op.table_key))
            return []
        if not self._prolongs(op, ctx):
            return []
        found = _finding("SS211", migration, index, op, allowed_codes(original))
        return [replace(found, what=f"{found.what}; op {self.holder[0] + 1}'s lock on {self.holder[1]} held")]

    def _prolongs(self, op: ops.Operation, ctx: Context) -> bool:
        """True when `op` takes time while the lock is held: raw SQL, data, a scan, a kept-data copy, or a lock on
        another existing table."""
        if isinstance(op, ops.ExecuteSQL) or op.data_only:
            return True
        if op.table_key is None or op.table_key in ctx.created:
            return False
        if op.table_key != self.holder_table or isinstance(op, (ops.CreateIndex, ops.AddConstraint)):
            return True
        if isinstance(op, (ops.DropColumn, ops.DropTable)):
            return self.keep_data
        return any(code in ("SS204", "SS205", "SS206") for code in blocking(ctx))

    @property
    def holder_table(self) -> str | None:
        """The table whose lock is held."""
        return None if self.holder is None else self.holder[1]


def _locks_existing_table(op: ops.Operation, created: set[str]) -> bool:
    """True for DDL on a table that existed before the migration (every ALTER takes a strong lock)."""
    if op.data_only or isinstance(op, (ops.CreateTable, ops.CreateSequence, ops.DropSequence, ops.AlterSequence)):
        return False
    return op.table_key is not None and op.table_key not in created


def _codes(ctx: Context, dialect: Dialect) -> Iterator[str]:
    op = ctx.operation
    if isinstance(op, ops.ExecuteSQL):
        if op.dialects and dialect.name not in op.dialects:
            return
        reader = sql_codes if dialect.not_valid_constraints else plain_sql_codes
        found = reader(op.sql, ctx.created)
        yield from (found if found is not None else ["SS501"])
        return
    on_new_table = op.table_key is not None and op.table_key in ctx.created
    for rules in RULE_SETS:
        for code in rules(ctx):
            if not (on_new_table and code in ON_EXISTING):
                yield code


def _finding(code: str, migration: Migration, index: int, op: ops.Operation, allowed: dict[str, str]) -> Finding:
    rule = RULES[code]
    return Finding(code, rule.title, migration.path.name, migration.revision, index, op.describe(), rule.why,
                   rule.fix, allowed.get(code))


def _safe_fixes(operation: ops.Operation, before: Schema, dialect: Dialect) -> frozenset[str]:
    """The codes the lock-safe form of `operation` (on an existing table) no longer deserves."""
    try:
        after = operation.apply(before)
        form = dialect.safe_form(operation, before, after, dialect.compile(operation, before, after))
    except MigrationError:  # not compilable here: judged as written
        return frozenset()
    return frozenset() if form is None else form.fixes


def _timeouts(migration: Migration, statement_timeout: float | None, *, safe: bool = False) -> list[Finding]:
    """SS208 (unless safe mode sets a lock timeout) and SS209 (no statement_timeout in the environment)."""
    allowed: dict[str, str] = {}
    for operation in migration.operations:
        allowed.update(allowed_codes(operation))
    codes = ([] if safe else ["SS208"]) + (["SS209"] if statement_timeout is None else [])
    return [Finding(code, RULES[code].title, migration.path.name, migration.revision, -1, "the whole migration",
                    RULES[code].why, RULES[code].fix, allowed.get(code)) for code in codes]


def failing(findings: list[Finding]) -> list[Finding]:
    """The findings not allowed by a suppression."""
    return [finding for finding in findings if finding.allowed is None]


def as_json(findings: list[Finding]) -> str:
    """The findings as a JSON array of objects (stable keys: see `Finding`)."""
    return json.dumps([asdict(finding) for finding in findings], indent=2)


def as_sarif(findings: list[Finding], folder: str) -> str:
    """The findings as a SARIF 2.1.0 log (one run, one result per finding; allowed ones as suppressed)."""
    used = sorted({finding.code for finding in findings})
    rules = [{"id": code, "name": RULES[code].title, "shortDescription": {"text": RULES[code].title},
              "fullDescription": {"text": RULES[code].why}, "help": {"text": RULES[code].fix}} for code in used]
    results = []
    for finding in findings:
        result: dict[str, Any] = {
            "ruleId": finding.code, "level": "warning",
            "message": {"text": f"{finding.what}: {finding.why}; instead: {finding.fix}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": f"{folder}/{finding.file}"}}}],
        }
        if finding.allowed is not None:
            result["suppressions"] = [{"kind": "inSource", "justification": finding.allowed}]
        results.append(result)
    log = {"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
           "runs": [{"tool": {"driver": {"name": "schemashift", "rules": rules}}, "results": results}]}
    return json.dumps(log, indent=2)


__all__ = [
    "GROUPS",
    "RULES",
    "Finding",
    "Rule",
    "allow",
    "as_json",
    "as_sarif",
    "failing",
    "lint_migration",
    "plain_sql_codes",
    "sql_codes",
]
