"""A way in for existing databases: `baseline` and `stamp`, and Alembic projects.

`baseline` reflects a database that has a schema but no schemashift history and
writes a first migration that creates exactly that schema (or, with ``--after
HEAD``, the difference between the chain's head state and it), then records it
as applied without running it. Where a live table, column, key, index or
sequence compares equal to its counterpart in the models once both are
normalised for this database, the migration holds the model's form of it (the
same schema on this database, and `generate` then sees no false differences);
everything else is written as reflected. Before anything is recorded the written
file is loaded, replayed and compared with the live schema.

`stamp` records a revision of the existing chain as applied after checking that
the live schema is the state the migrations build at that revision; it never
runs DDL (apart from creating the version table, and dropping
``alembic_version`` when asked).

Both detect ``alembic_version``: the database must stand at the head its Alembic
scripts declare (`--alembic-dir`, else ``script_location`` of ``alembic.ini``),
and the Alembic revision is written to the history table.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from schemashift.dialects import dialect_of, run_time_dialects
from schemashift.dialects.objects import adopt_objects, with_live_objects
from schemashift.errors import ConfigError, DatabaseStateError, ModelsError, SchemashiftError
from schemashift.model.schema import Schema, Sequence, Table
from schemashift.model.types import INTEGER_KINDS
from schemashift.runtime.locks import migration_lock
from schemashift.runtime.versions import now
from schemashift.services.project import Project, masked_url, print_line
from schemashift.services.prompting import NO_PROMPTS, Prompter, confirm

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect
    from schemashift.history.chain import History
    from schemashift.history.loader import Migration
    from schemashift.operations import Operation
    from schemashift.runtime.versions import Recorder

Output = Callable[[str], None]
ALEMBIC_TABLE = "alembic_version"
ALEMBIC_INI = "alembic.ini"
BASELINE, STAMP, FORCED = "baseline", "stamp", "stamp-forced"


# -- Alembic ------------------------------------------------------------------


@dataclass(frozen=True)
class AlembicState:
    """The revisions in ``alembic_version`` and the heads the Alembic scripts declare."""

    revisions: tuple[str, ...]
    heads: tuple[str, ...]
    table: str = ALEMBIC_TABLE

    @property
    def label(self) -> str:
        """The revision(s) as one text for the history table."""
        return ",".join(self.revisions)


def alembic_revisions(connection: sa.Connection, schema: str | None,
                      name: str = ALEMBIC_TABLE) -> tuple[str, ...] | None:
    """The rows of Alembic's version table `name` (None when the table does not exist)."""
    if not sa.inspect(connection).has_table(name, schema=schema):
        return None
    table = sa.Table(name, sa.MetaData(), sa.Column("version_num", sa.String(32)), schema=schema)
    rows = connection.execute(sa.select(table.c.version_num)).scalars().all()
    if connection.in_transaction():
        connection.commit()
    return tuple(sorted(str(row) for row in rows))


_VERSION_TABLE = re.compile(r"""\bversion_table\s*=\s*(['"])([A-Za-z0-9_$]+)\1""")


def alembic_version_table(alembic_dir: str | Path | None, search: Iterable[Path]) -> str:
    """The name of Alembic's version table: ``version_table`` in ``alembic.ini`` or the scripts' ``env.py``.

    ``alembic_version`` (Alembic's default) when neither names another; nothing is imported or run.
    """
    folders = [Path(alembic_dir)] if alembic_dir is not None else []
    ini = next((place / ALEMBIC_INI for place in search if (place / ALEMBIC_INI).is_file()), None)
    if ini is not None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(ini, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            return ALEMBIC_TABLE
        named = parser.get("alembic", "version_table", fallback="").strip()
        if named:
            return named
        location = parser.get("alembic", "script_location", fallback="").strip()
        if location and ":" not in location:
            folders.append(Path(location) if Path(location).is_absolute() else ini.parent / location)
    for folder in folders:
        try:
            found = _VERSION_TABLE.search((folder / "env.py").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        if found:
            return found.group(2)
    return ALEMBIC_TABLE


def alembic_heads(alembic_dir: str | Path | None, search: Iterable[Path]) -> tuple[str, ...]:
    """The heads of the Alembic scripts in `alembic_dir`, else of ``script_location`` in the first ``alembic.ini``."""
    try:
        from alembic.config import Config as AlembicConfig
        from alembic.script import ScriptDirectory
    except ImportError:
        raise ConfigError("this database is managed by Alembic (alembic_version) and checking it needs Alembic: "
                          "pip install alembic") from None
    try:
        if alembic_dir is not None:
            folder = Path(alembic_dir)
            if not (folder / "env.py").is_file() and not (folder / "versions").is_dir():
                raise ConfigError(f"--alembic-dir {folder} is not an Alembic scripts folder (no env.py or versions/)")
            scripts = ScriptDirectory(str(folder))
        else:
            ini = next((place / ALEMBIC_INI for place in search if (place / ALEMBIC_INI).is_file()), None)
            if ini is None:
                raise ConfigError(
                    "the database has an alembic_version table but no Alembic scripts were found: pass "
                    "--alembic-dir DIR (the folder with env.py and versions/) or run where alembic.ini is")
            config = AlembicConfig(str(ini))
            location = config.get_main_option("script_location")
            if not location:
                raise ConfigError(f"{ini} has no script_location")
            if ":" not in location and not Path(location).is_absolute():  # not a package resource
                config.set_main_option("script_location", str(ini.parent / location))
            scripts = ScriptDirectory.from_config(config)
        return tuple(sorted(scripts.get_heads()))
    except SchemashiftError:
        raise
    except Exception as exc:  # noqa: BLE001 - broad on purpose: Alembic raises several kinds for bad script folders
        raise ConfigError(f"cannot read the Alembic scripts: {type(exc).__name__}: {exc}") from None


def check_alembic(project: Project, connection: sa.Connection, alembic_dir: str | Path | None) -> AlembicState | None:
    """None when the database has no Alembic version table; else its state, refusing unless it is at the heads."""
    search = [Path.cwd(), project.config.root]
    name = alembic_version_table(alembic_dir, search)
    revisions = alembic_revisions(connection, project.env.schema, name)
    if revisions is None:
        return None
    heads = alembic_heads(alembic_dir, search)
    if not heads:
        raise ConfigError("the Alembic scripts declare no revision: is --alembic-dir the right folder?")
    if set(revisions) != set(heads):
        at = ", ".join(revisions) or "base (alembic_version is empty)"
        raise DatabaseStateError(
            f"the database is at Alembic revision {at}, not at the head of its Alembic scripts ({', '.join(heads)}): "
            "run `alembic upgrade head` first, then bring it under schemashift")
    return AlembicState(revisions, heads, name)


def drop_alembic_table(connection: sa.Connection, schema: str | None, name: str = ALEMBIC_TABLE) -> None:
    """``DROP TABLE`` Alembic's version table (committed)."""
    sa.Table(name, sa.MetaData(), schema=schema).drop(connection)
    connection.commit()


# -- reading the live schema ----------------------------------------------------


def _models(project: Project) -> Schema | None:
    """The models' schema, or None when the project has none configured."""
    try:
        return project.model_schema()
    except ModelsError:
        if project.config.models:
            raise
        return None


def live_schema(project: Project, connection: sa.Connection, history: History,
                models: Schema | None) -> Schema:
    """The live schema, without schemashift's own tables and what `exclude`/`include_object` leave out."""
    from schemashift.history.cache import schema_names_through

    named: set[str | None] = set(models.schema_names) if models is not None else set()
    named |= set(schema_names_through(history, history.head))
    schemas = [None, *sorted(name for name in named - {None, project.env.schema} if name is not None)]
    live = dialect_of(connection).reflect(connection, schemas=schemas, exclude=project.recorder(connection).own_tables)
    live = with_live_objects(connection, live, schemas)
    if connection.in_transaction():
        connection.commit()
    return project.object_filter().apply(live, reflected=True, other=models)


# -- the models' form of equal objects ------------------------------------------------


class _Same:
    """Equality of tables and sequences as this database sees them (both normalised)."""

    def __init__(self, dialect: Dialect, sequences: Iterable[Sequence]) -> None:
        self.dialect = dialect
        self.sequences = tuple(sequences)

    def tables(self, first: Table, second: Table) -> bool:
        """True when `first` and `second` are the same table on this database."""
        one = self.dialect.normalize(Schema.of([first], self.sequences)).tables
        two = self.dialect.normalize(Schema.of([second.evolve(name=first.name, schema=first.schema)],
                                               self.sequences)).tables
        return one == two

    def sequence(self, first: Sequence, second: Sequence) -> bool:
        """True when two sequences are the same on this database."""
        return self.dialect.normalize(Schema.of([], [first])).sequences == \
            self.dialect.normalize(Schema.of([], [second])).sequences


def adopt_models(live: Schema, models: Schema, dialect: Dialect) -> Schema:
    """`live` where each table, column, key, index, constraint and sequence that equals its model counterpart
    on this database is replaced by the model's form (so the models compare equal to it without normalising)."""
    same = _Same(dialect, live.sequences.values())
    tables = [_adopt_table(table, models.tables.get(key), same) for key, table in live.tables.items()]
    sequences = []
    for key, sequence in live.sequences.items():
        model = models.sequences.get(key)
        sequences.append(model if model is not None and same.sequence(sequence, model) else sequence)
    sequences += [model for key, model in models.sequences.items()  # those this database cannot hold (SQLite)
                  if key not in live.sequences and not dialect.normalize(Schema.of([], [model])).sequences]
    return Schema.of(tables, sequences, live.objects)


def _adopt_table(live: Table, model: Table | None, same: _Same) -> Table:
    if model is None:
        return _model_like(live, live, same)
    if same.tables(live, model):
        return model
    table = live
    for position, column in enumerate(live.columns):
        if not model.has_column(column.name):
            continue
        columns = list(table.columns)
        columns[position] = model.column(column.name)
        candidate = table.evolve(columns=columns)
        if same.tables(live, candidate):
            table = candidate
    for field in ("primary_key", "comment"):
        candidate = table.evolve(**{field: getattr(model, field)})
        if same.tables(live, candidate):
            table = candidate
    for field in ("indexes", "uniques", "foreign_keys", "checks"):
        table = _adopt_items(live, table, model, field, same)
    return _model_like(live, table, same)


def _model_like(live: Table, table: Table, same: _Same) -> Table:
    """`table` in the form models usually declare, where that is the same table on this database: a one-column
    integer primary key marked autoincrement, without the default the database gave it (a SERIAL's nextval),
    constraints without the names the database generated and without spelled-out default actions
    (so models that add it later compare equal)."""
    key = table.primary_key.columns if table.primary_key is not None else ()
    if len(key) == 1 and table.has_column(key[0]) and table.column(key[0]).type.kind in INTEGER_KINDS:
        column = table.column(key[0])
        for change in ({"autoincrement": True}, {"autoincrement": True, "default": None}):
            trial = column.evolve(**change)
            candidate = table.evolve(columns=[trial if c is column else c for c in table.columns])
            if trial is not column and same.tables(live, candidate):
                table = candidate
    if table.primary_key is not None and table.primary_key.name is not None:
        candidate = table.evolve(primary_key=replace(table.primary_key, name=None))
        if same.tables(live, candidate):
            table = candidate
    for field in ("uniques", "foreign_keys", "checks"):
        items = list(getattr(table, field))
        for position in range(len(items)):
            for attribute in ("name", "ondelete", "onupdate"):  # generated names, spelled-out defaults
                item = items[position]
                if getattr(item, attribute, None) is None:
                    continue
                unnamed = items.copy()
                unnamed[position] = replace(item, **{attribute: None})
                candidate = table.evolve(**{field: unnamed})
                if same.tables(live, candidate):
                    items, table = unnamed, candidate
    return table


def _adopt_items(live: Table, table: Table, model: Table, field: str, same: _Same) -> Table:
    """`table` with each item of `field` replaced by a model item where that keeps it the same table."""
    candidate = table.evolve(**{field: getattr(model, field)})
    if same.tables(live, candidate):
        return candidate
    items = list(getattr(table, field))
    spare = list(getattr(model, field))
    for position in range(len(items)):
        for option in spare:
            trial = items.copy()
            trial[position] = option
            candidate = table.evolve(**{field: trial})
            if same.tables(live, candidate):
                items, table = trial, candidate
                spare.remove(option)
                break
    for option in spare:  # model items this database does not show (e.g. implied by another one)
        candidate = table.evolve(**{field: [*items, option]})
        if option not in items and same.tables(live, candidate):
            items, table = [*items, option], candidate
    return table


# -- baseline ---------------------------------------------------------------------


def _confirm(project: Project, yes: bool, prompter: Prompter, what: str) -> None:
    """Ask `prompter` to confirm `what` where the environment says so (``confirm = true``) and `yes` was not given."""
    if project.env.confirm and not yes:
        confirm(prompter, project.env.name, masked_url(project), what)


def _refuse_history(recorder: Recorder) -> None:
    applied = recorder.applied()
    if applied:
        raise DatabaseStateError(
            f"the version table {recorder.name!r} already has {len(applied)} row(s): this database is already "
            "under schemashift (see `schemashift status`)")


def _differences(dialect: Dialect, live: Schema, expected: Schema) -> list[str]:
    from schemashift.autodetect.differ import RenameDecisions, diff

    return [op.describe() for op in diff(dialect.normalize(live), dialect.normalize(expected),
                                         RenameDecisions(no_rename=True))]


@contextmanager
def _unrecorded(project: Project, alembic_dir: str | Path | None) -> Iterator[tuple[Any, Any, Any, Any]]:
    """(connection, dialect, recorder, Alembic state) of a database with no schemashift history, under the lock."""
    with project.connect() as connection:
        dialect = dialect_of(connection)
        recorder = project.recorder(connection)
        with migration_lock(dialect, connection, project.lock_name, project.env):
            _refuse_history(recorder)
            yield connection, dialect, recorder, check_alembic(project, connection, alembic_dir)


def baseline(project: Project, message: str = "baseline", *, after: str | None = None,
             alembic_dir: str | Path | None = None, drop_alembic_version: bool = False,
             out: Output = print_line, yes: bool = False, prompter: Prompter = NO_PROMPTS) -> Path | None:
    """Write the migration that creates the live schema and record it as applied without running it.

    On an environment with ``confirm = true`` `prompter` is asked first unless `yes`.
    """
    from schemashift.autodetect.differ import RenameDecisions, diff
    from schemashift.history.cache import state_at

    if not message.strip():
        raise SchemashiftError("a migration needs a message: -m 'what it does'")
    history = project.history()
    if after is not None and after.lower() != "head":
        raise SchemashiftError(f"--after takes HEAD (adopt on top of the existing chain), not {after!r}")
    if history.chain and after is None:
        raise DatabaseStateError(
            f"migrations already exist ({len(history.chain)}, head {history.head}): use `schemashift stamp REV` "
            "for a database one of them describes, or `schemashift baseline --after HEAD` to adopt this one on top")
    models = _models(project)
    with _unrecorded(project, alembic_dir) as (connection, dialect, recorder, alembic):
        live = live_schema(project, connection, history, models)
        if not live.tables and not live.sequences:
            raise DatabaseStateError("the database holds no tables: there is nothing to baseline "
                                     "(run `schemashift generate` and `schemashift upgrade` instead)")
        start = project.object_filter().apply(state_at(history, history.head), reflected=False, other=live)
        target = adopt_models(live, models, dialect) if models is not None else live
        if _differences(dialect, live, target):
            target = live
        target = adopt_objects(dialect, connection, target, models)
        operations = diff(start, target, RenameDecisions(no_rename=True))
        _confirm(project, yes, prompter, f"baseline (record {len(operations)} operation(s) as applied)")
        revisions = [(m.revision, m.parent, m.checksum, m.message) for m in history.chain]
        written: Path | None = None
        if operations or not history.chain:
            migration = _write(project, message, operations, history.head, dialect, target)
            written = migration.path
            revisions.append((migration.revision, migration.parent, migration.checksum, migration.message))
        try:
            _record(project, connection, recorder, revisions, BASELINE, alembic, None)
        except BaseException:
            if written is not None:
                _unwrite(project, written)
            raise
        if alembic is not None and drop_alembic_version:
            drop_alembic_table(connection, project.env.schema, alembic.table)
    _report(out, written, operations, project, revisions[-1][0], alembic, drop_alembic_version, "baseline")
    return written


def _write(project: Project, message: str, operations: list[Operation], parent: str | None, dialect: Dialect,
           live: Schema) -> Migration:
    """Write the migration, then prove that replaying the chain with it builds `live`."""
    from schemashift.history.cache import state_at
    from schemashift.history.writer import write_migration

    migration = write_migration(project.config.migrations_dir, message, operations, parent=parent,
                                dialects=run_time_dialects(project.config))
    history = project.reload_history()
    try:
        built = project.object_filter().apply(state_at(history, history.head, store=False), reflected=False, other=live)
        differences = _differences(dialect, live, built)
    except BaseException:
        _unwrite(project, migration.path)
        raise
    if differences:
        _unwrite(project, migration.path)
        raise SchemashiftError(
            f"cannot write a migration that builds this database exactly ({len(differences)} difference(s) after a "
            f"replay, first: {differences[0]}); nothing was recorded")
    return history.get(migration.revision)  # type: ignore[return-value]


def _unwrite(project: Project, path: Path) -> None:
    from schemashift.history.manifest import rebuild

    path.unlink(missing_ok=True)
    rebuild(project.config.migrations_dir, run_time_dialects(project.config))
    project.reload_history()


def _record(project: Project, connection: sa.Connection, recorder: Recorder,
            revisions: list[tuple[str, str | None, str, str]], outcome: str, alembic: AlembicState | None,
            note: str | None) -> None:
    """Version rows for `revisions` (applied, not run) and one history row for the last, in one transaction."""

    dialect_of(connection).ensure_schema(connection, project.env.schema)
    recorder.ensure()
    if connection.in_transaction():
        connection.commit()
    started = now()
    last = revisions[-1]
    message = last[3] + (f" [alembic {alembic.label}]" if alembic is not None else "")
    with connection.begin():
        for revision, parent, checksum, text in revisions:
            recorder.insert(revision, parent, checksum, text, "applied", duration_ms=0)
        recorder.log(last[0], "up", last[2], message, started, 0, outcome, note)


def _report(out: Output, written: Path | None, operations: list[Operation], project: Project, revision: str,
            alembic: AlembicState | None, dropped: bool, what: str) -> None:
    if written is not None:
        out(f"Wrote {_relative(written)} ({revision}): {len(operations)} operation(s).")
    else:
        out("The database matches the migrations' head: no migration written.")
    out(f"Recorded {revision} as applied on {project.env.name!r} without running it ({what}).")
    if alembic is not None:
        out(f"Alembic revision {alembic.label} recorded in the history table; {alembic.table} "
            + ("dropped." if dropped else "is left alone and ignored from now on."))


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- stamp ------------------------------------------------------------------------


def _stamp_target(history: History, revision: str) -> tuple[History, str]:
    """The history holding `revision` and its full id: a revision a squash replaced is found in ``replaced/``."""
    from schemashift.errors import RevisionError
    from schemashift.services.squash import resolve_replaced, route_from

    try:
        target = history.resolve(revision)
    except RevisionError:
        replaced = resolve_replaced(history, revision.strip())
        route = route_from(history, replaced) if replaced else None
        if not route:
            raise
        return route[0][0], replaced  # type: ignore[return-value]
    if target is None:
        raise SchemashiftError("stamp takes a revision of the chain, not base")
    return history, target


def stamp(project: Project, revision: str, *, force: bool = False, alembic_dir: str | Path | None = None,
          drop_alembic_version: bool = False, out: Output = print_line, yes: bool = False,
          prompter: Prompter = NO_PROMPTS) -> None:
    """Record `revision` (and the chain below it) as applied where the live schema is its state; no DDL.

    On an environment with ``confirm = true`` `prompter` is asked first unless `yes`.
    """
    from schemashift.history.cache import state_at

    history = project.history()
    if not history.chain:
        raise DatabaseStateError("there are no migrations to stamp: run `schemashift baseline` instead")
    history, target = _stamp_target(history, revision)
    with _unrecorded(project, alembic_dir) as (connection, dialect, recorder, alembic):
        expected = state_at(history, target)
        keep = project.object_filter()
        live = live_schema(project, connection, history, expected)
        differences = _differences(dialect, live, keep.apply(expected, reflected=False, other=live))
        if differences and not force:
            out(f"The database differs from the migrations at {target} ({len(differences)} difference(s)):")
            for line in differences:
                out(f"  - {line}")
            raise DatabaseStateError(
                f"not stamped: the database differs from the migrations at {target} in {len(differences)} "
                f"place(s), first: {differences[0]} (fix the drift, stamp another revision, or pass --force)")
        _confirm(project, yes, prompter, f"stamp {target}" + (" despite differences" if differences else ""))
        chain = history.chain[: history.index(target) + 1]
        revisions = [(m.revision, m.parent, m.checksum, m.message) for m in chain]
        note = None
        if differences:
            note = f"forced despite {len(differences)} difference(s): " + "; ".join(differences)
        _record(project, connection, recorder, revisions, FORCED if differences else STAMP, alembic, note)
        if alembic is not None and drop_alembic_version:
            drop_alembic_table(connection, project.env.schema, alembic.table)
    if differences:
        out(f"WARNING: stamped despite {len(differences)} difference(s) (--force); recorded in the history table:")
        for line in differences:
            out(f"  - {line}")
    out(f"Recorded {target} as applied on {project.env.name!r} without running it (stamp).")
    if alembic is not None:
        out(f"Alembic revision {alembic.label} recorded in the history table; {alembic.table} "
            + ("dropped." if drop_alembic_version else "is left alone and ignored from now on."))
