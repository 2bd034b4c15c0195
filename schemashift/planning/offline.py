"""Offline SQL (`--sql`): a plan rendered as a script a DBA can read and run.

A script is a header line, the version tables' ``CREATE TABLE`` when the
database is empty, then one block per step (its statements and version-table
row, in ``BEGIN``/``COMMIT`` where the step is atomic).

The blocks of ``upgrade --sql --from REV`` are also remembered in the project
cache (`schemashift.history.cache.compiled_path`): per environment settings that shape
the SQL (`ScriptKey`), each up-step's block under the hash of the chain through
its revision (`cache.chain_keys`), for this exact schemashift and SQLAlchemy
code (`cache.source_key`). `cached_script` answers a later run with the standard
library alone (no SQLAlchemy, no migration modules) when the manifest verifies
the folder (`manifest.verified_entries`) and every block is cached; an edited,
added or reordered migration changes the chain hash of its own block and of
every later one, so those are compiled afresh. Blocks that keep data before a
destructive operation (`backups.KeepData`) are never cached: they record the
time they were compiled, so such ranges always take the full path.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from schemashift.history import cache, manifest

if TYPE_CHECKING:
    from pathlib import Path

    import sqlalchemy as sa

    from schemashift.config import EnvConfig
    from schemashift.history.chain import History
    from schemashift.history.loader import Migration
    from schemashift.planning.fresh import FreshBuild
    from schemashift.planning.plan import Plan, Statement, Step
    from schemashift.runtime.versions import Recorder


def _compiled(statement: sa.sql.ClauseElement, dialect: sa.engine.Dialect) -> str:
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).strip()


class _VersionSql:
    """The version-table INSERT (up) or DELETE (down) of each step, compiled once per direction.

    SQLAlchemy compiles each statement with placeholder values; every step then
    gets its own values rendered by the same literal processors of the column
    types (compiling thousands of statements one by one dominated `--sql`).
    """

    _NUMBER = 7_364_019_283_551  # stands for statements_done in the template

    def __init__(self, recorder: Recorder, dialect: sa.engine.Dialect) -> None:
        self.table = recorder.version
        self.dialect = dialect
        self._parts: dict[str, list[str | tuple[str, ...]]] = {}
        self._compiler = self.table.insert().compile(dialect=dialect, compile_kwargs={"literal_binds": True})

    def _render(self, column: str, value: object) -> str:
        if value is None:
            return "NULL"
        return self._compiler.render_literal_value(value, self.table.c[column].type)

    def _template(self, direction: str) -> list[str | tuple[str, ...]]:
        from schemashift.history.records import APPLIED
        from schemashift.planning.plan import UP

        if direction in self._parts:
            return self._parts[direction]
        table = self.table
        marks = {name: f"\x02{name}\x03" for name in ("revision", "parent", "checksum", "message")}
        statement: sa.Insert | sa.Delete
        if direction == UP:
            statement = table.insert().values(**marks, state=APPLIED, direction="up", statements_done=self._NUMBER)
        else:
            statement = table.delete().where(table.c.revision == marks["revision"])
        text = _compiled(statement, self.dialect)
        found = {self._render(name, mark): name for name, mark in marks.items()}
        found[str(self._NUMBER)] = "statements_done"
        parts: list[str | tuple[str, ...]] = []
        while text:
            hits = [(text.find(rendered), rendered) for rendered in found if rendered in text]
            if not hits:
                parts.append(text)
                break
            position, rendered = min(hits)
            parts.extend([text[:position], (found[rendered],)])
            text = text[position + len(rendered):]
        self._parts[direction] = parts
        return parts

    def sql(self, step: Step) -> str:
        """The statement that records `step` in the version table."""
        return self.row(step.migration, step.direction, len(step.statements))

    def row(self, migration: Migration, direction: str, statements_done: int) -> str:
        """The statement that records `migration` run in `direction` (the version row of an upgrade)."""
        values = {"revision": migration.revision, "parent": migration.parent, "checksum": migration.checksum,
                  "message": migration.message[:255], "statements_done": statements_done}
        return "".join(part if isinstance(part, str) else self._render(part[0], values[part[0]])
                       for part in self._template(direction))


def safe_key(env: EnvConfig) -> str:
    """The safe-mode settings that shape a script's text, as a `ScriptKey` field."""
    return f"{env.safe}:{env.ddl_lock_timeout:g}"


class ScriptKey(NamedTuple):
    """The settings besides the migrations that shape an offline script (its cache file is named by them)."""

    backend: str  #: the URL's database name (postgresql, mysql, mariadb, sqlite)
    version_table: str
    schema: str | None
    keep_data: bool
    allow_data_loss: bool
    safe: str = ""  #: the environment's safe-mode settings (see `safe_key`)

    def name(self) -> str:
        """A file name for these settings."""
        return hashlib.sha256(json.dumps(list(self)).encode("utf-8")).hexdigest()[:20]


def _header(direction: str, start: str | None, target: str | None, dialect_name: str) -> str:
    return f"-- schemashift {direction}grade: {start or 'base'} -> {target or 'base'} ({dialect_name})"


def _step_block(step: Step, version_sql: _VersionSql) -> str:
    """The lines of one step, starting with an empty one, joined."""
    from schemashift.planning.plan import UP

    verb = "apply" if step.direction == UP else "revert"
    lines = ["", f"-- {verb} {step.label}: {step.migration.message}"]
    transactional = step.atomic  # not around statements PostgreSQL refuses in a transaction (… CONCURRENTLY)
    if transactional:
        lines.append("BEGIN;")
    for statement in step.statements:
        lines += _statement_lines(statement, own_transaction=not transactional and step.plan_dialect.transactional_ddl)
    lines.append(version_sql.sql(step) + ";")
    if transactional:
        lines.append("COMMIT;")
    return "\n".join(lines)


def _statement_lines(statement: Statement, *, own_transaction: bool) -> list[str]:
    """One statement's lines: in safe mode with its lock-timeout setting first (in a transaction of its own
    when `own_transaction`, where the setting holds for one transaction) and its fallback as a comment."""
    if statement.sql is None and statement.offline_sql is not None:  # a check done in Python, as SQL
        text = statement.offline_sql.strip()
        text = text if text.startswith("--") else f"-- {statement.operation.describe()}\n{text}"
        text += "" if text.splitlines()[-1].startswith("--") else ";"
    else:
        text = statement.describe().strip() + ("" if statement.sql is None else ";")
    lines = [text]
    if statement.lock is not None:
        lines.insert(0, statement.lock.setting + ";")
        if statement.lock.reset is not None:
            lines.append(statement.lock.reset + ";")
        elif own_transaction:
            lines = ["BEGIN;", *lines, "COMMIT;"]
    if statement.fallback is not None:
        lines.append(f"-- if the server refuses that algorithm (1845/1846), schemashift runs: {statement.fallback};")
    if statement.copy is not None:
        lines.append(f"-- (or, when {statement.copy.table} then holds at most {statement.copy.limit} rows: "
                     f"{statement.copy.sql};)")
    return lines


def _fresh_block(build: FreshBuild, version_sql: _VersionSql) -> str:
    """The lines of a fresh build (`schemashift.planning.fresh`), starting with an empty one, joined: its statements
    and the version row of every migration it stands for, in transactions where DDL is transactional (the rows
    with the last), as `upgrade` runs it."""
    from schemashift.planning.plan import UP

    first, last = build.migrations[0], build.migrations[-1]
    lines = ["", f"-- fresh build: {len(build.migrations)} migrations ({first.path.stem} .. {last.path.stem}) "
                 f"as one, from the schema at {build.target}"]
    rows = [version_sql.row(migration, UP, 0) + ";" for migration in build.migrations]
    groups = build.transactions()
    for number, group in enumerate(groups):
        body = [line for statement in group for line in _statement_lines(statement, own_transaction=False)]
        body += rows if number == len(groups) - 1 else []
        lines += ["BEGIN;", *body, "COMMIT;"] if build.dialect.transactional_ddl else body
    return "\n".join(lines)


def offline_script(plan: Plan, recorder: Recorder, *, create_version_table: bool | None = None,
                   remember: tuple[History, ScriptKey] | None = None, fresh: FreshBuild | None = None,
                   step_by_step: bool = False) -> str:
    """The SQL of `plan`, one statement per line group, each ended by ``;``.

    With `fresh`, the fresh build that takes an empty database to where `plan`
    starts comes first. With `remember` (the plan's history and the settings
    that shaped it), the blocks of an upgrade are saved for `cached_script`,
    and for an upgrade from base without `step_by_step` how it starts (a fresh build or not).
    """
    from sqlalchemy.schema import CreateTable

    from schemashift.planning.plan import UP

    dialect = plan.dialect.sa_dialect()
    start, target = (None, plan.target if not plan.empty else fresh.target) if fresh else (plan.start, plan.target)
    header = _header(plan.direction, start, target, plan.dialect.name)
    if plan.empty and fresh is None:
        return f"{header}\n-- nothing to do"
    if create_version_table is None:
        create_version_table = not recorder.exists()
    creates = [_compiled(CreateTable(table), dialect) + ";" for table in (recorder.version, recorder.history)]
    version_sql = _VersionSql(recorder, dialect)
    built = [_fresh_block(fresh, version_sql)] if fresh is not None else []
    blocks = [_step_block(step, version_sql) for step in plan.steps]
    if remember is not None:
        _remember(plan, blocks, "\n".join(creates), *remember)
        if start is None and plan.direction == UP and not step_by_step:
            _remember_fresh(remember[0], remember[1], target, fresh, built)
    return "\n".join([header, *(creates if create_version_table else ()), *built, *blocks])


# -- the cache of compiled scripts -------------------------------------------------


def _pack_path(cache_dir: Path, key: ScriptKey) -> Path:
    return cache.compiled_path(cache_dir, f"offline-{key.name()}")


def _remember(plan: Plan, blocks: list[str], creates: str, history: History, key: ScriptKey) -> None:
    """Save the blocks of an upgrade plan under the chain keys of their revisions (for this chain only).

    Blocks that keep data are left out: their registry row holds the time of compiling.
    """
    from schemashift.planning.backups import KeepData
    from schemashift.planning.plan import UP

    directory = history.cache_dir
    if directory is None or plan.direction != UP:
        return
    path = _pack_path(directory, key)
    keys = cache.chain_keys(history)
    data = cache.load_compiled(path) or {}
    old = data.get("steps") if data.get("dialect") == plan.dialect.name else None
    wanted = set(keys)
    steps = {k: v for k, v in old.items() if k in wanted} if isinstance(old, dict) else {}
    for step, block in zip(plan.steps, blocks, strict=True):
        if not any(isinstance(operation, KeepData) for operation in step.operations):
            steps[keys[history.index(step.migration.revision)]] = [step.migration.path.name, block]
    builds = data.get("fresh") if data.get("dialect") == plan.dialect.name else None  # see `_remember_fresh`
    cache.store_compiled(path, {"dialect": plan.dialect.name, "creates": creates, "steps": steps,
                                **({"fresh": builds} if isinstance(builds, dict) else {})})


def _remember_fresh(history: History, key: ScriptKey, target: str | None, build: FreshBuild | None,
                    block: list[str]) -> None:
    """Save how an upgrade from base to `target` starts: the fresh `build`'s block, or none (the steps' blocks)."""
    directory = history.cache_dir
    if directory is None or target is None:
        return
    path = _pack_path(directory, key)
    data = cache.load_compiled(path)
    if data is None:
        return
    keys = cache.chain_keys(history)
    wanted = set(keys)
    old = data.get("fresh")
    builds = {k: v for k, v in old.items() if k in wanted} if isinstance(old, dict) else {}
    names = [build.migrations[0].path.name, build.migrations[-1].path.name] if build is not None else []
    builds[keys[history.index(target)]] = [build.target, block[0], *names] if build is not None else [None]
    cache.store_compiled(path, {**data, "fresh": builds})


def _cached_fresh(data: dict[str, Any], keys: list[str], entries: list[Any], revisions: dict[str, int],
                  target: int) -> tuple[int, list[str]] | None:
    """Where the steps of a cached upgrade from base start (-1: base) and the fresh build's block before them."""
    builds = data.get("fresh")
    found = builds.get(keys[target]) if isinstance(builds, dict) else None
    if not isinstance(found, list) or not found:
        return None
    if found[0] is None:
        return -1, []
    end = revisions.get(found[0]) if isinstance(found[0], str) else None
    if len(found) != 4 or end is None or [found[2], found[3]] != [entries[0].name, entries[end].name]:
        return None
    return end, [found[1]]


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9]*)(?:\+[A-Za-z0-9_.]*)?://")


def cached_script(args: Any) -> str | None:
    """The script of ``upgrade --sql --from REV`` (CLI options `args`) from the cache; None when not certain.

    Only exact revision ids, ``base`` and ``head`` are understood here; anything
    else, an unverified folder or one missing block, and the full path runs (and
    fills the cache).
    """
    try:
        return _cached_script(args)
    except Exception:  # noqa: BLE001 - the cached path never fails a command: the full path runs instead
        return None


def _cached_script(args: Any) -> str | None:
    from schemashift.config import load_config
    from schemashift.dialects import REGISTRY

    if not getattr(args, "sql", False) or getattr(args, "from_revision", None) is None:
        return None
    config = load_config(args.config)
    env = config.env(args.env, url=args.url)
    scheme = _SCHEME.match(env.url or "")
    if scheme is None or scheme.group(1) not in REGISTRY:
        return None
    entries = manifest.verified_entries(config.migrations_dir, config.root)
    if not entries:
        return None
    revisions = {entry.revision: position for position, entry in enumerate(entries)}
    start = _position(args.from_revision, revisions, entries)
    target = _position(getattr(args, "target", "head"), revisions, entries)
    if start is None or target is None or start >= target:
        return None
    allow = bool(getattr(args, "allow_data_loss", False)) or env.allow_data_loss
    stepped = bool(getattr(args, "step_by_step", False)) or env.step_by_step
    key = ScriptKey(scheme.group(1), env.version_table, env.schema, env.keep_data, allow, safe_key(env))
    data = cache.load_compiled(_pack_path(cache.folder_cache(config.root, config.migrations_dir), key))
    if data is None:
        return None
    steps, creates, dialect = data.get("steps"), data.get("creates"), data.get("dialect")
    if not isinstance(steps, dict) or not isinstance(creates, str) or not isinstance(dialect, str):
        return None
    keys = cache.chain_keys_of((entry.revision, entry.parent, entry.checksum) for entry in entries[: target + 1])
    blocks: list[str] = []
    steps_from = start
    if start < 0 and not stepped:  # a fresh build first, as `upgrade` would run it
        fresh = _cached_fresh(data, keys, entries, revisions, target)
        if fresh is None:
            return None
        steps_from, blocks = fresh
    for position in range(steps_from + 1, target + 1):
        found = steps.get(keys[position])
        if not (isinstance(found, list) and len(found) == 2 and found[0] == entries[position].name):
            return None
        blocks.append(found[1])
    first = entries[start].revision if start >= 0 else None
    head = [_header("up", first, entries[target].revision, dialect)]
    if start < 0:
        head.append(creates)
    return "\n".join([*head, *blocks])


def _position(name: str | None, revisions: dict[str, int], entries: list[Any]) -> int | None:
    """The chain position `name` denotes (-1: base), for ``base``, ``head`` and exact ids; else None."""
    if name is None:
        return None
    name = name.strip()
    if name == "base":
        return -1
    if name == "head":
        return len(entries) - 1
    return revisions.get(name)
