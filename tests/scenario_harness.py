"""Running corpus scenarios in-process through `schemashift.api`, and comparing with Alembic.

Shared by `test_scenarios.py`, `test_alembic_oracle.py` and `alembic_gap_report.py`:
a project folder per database holding every scenario's two models modules
(``sc_<name>_v1.py`` / ``_v2.py``) and one migrations folder per scenario,
database resets between scenarios, row insertion and reading, and the mapping of
Alembic's ``compare_metadata`` differences onto schemashift operations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa

from schemashift import api
from schemashift import operations as ops
from schemashift.cli import build_parser
from schemashift.model.schema import CheckConstraint, ForeignKey, PrimaryKey, UniqueConstraint

from scenarios import Scenario

CONFIG = 'models = "unset:metadata"\nmigrations = "migrations"\ndefault_env = "test"\n\n[env.test]\nurl = "{url}"\n'


def scenario_params() -> list[Any]:
    """One pytest param per (backend, scenario that applies to it), xfail where the scenario says so."""
    import pytest

    from conftest import BACKENDS
    from scenarios import applicable

    params = []
    for backend in BACKENDS:
        for scenario in applicable(backend):
            reason = scenario.xfail_reason(backend)
            marks = [pytest.mark.xfail(reason=reason, strict=False)] if reason else []
            params.append(pytest.param(backend, scenario, id=f"{backend}-{scenario.name}", marks=marks))
    return params


def backend_of(url: str) -> str:
    """``sqlite``, ``postgresql`` or ``mysql`` for a database URL."""
    name = sa.make_url(url).get_backend_name()
    return "mysql" if name == "mariadb" else name


def shared_engine(url: str) -> sa.Engine:
    """One pooled engine for a whole run: schemashift gets it as its bind, so connections and compiled
    catalogue queries are reused from scenario to scenario. SQLite skips fsync (throw-away files)."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", lambda dbapi, record: dbapi.execute("PRAGMA synchronous = OFF"))
    return engine


# -- projects ----------------------------------------------------------------------


def module_name(scenario: Scenario, version: str) -> str:
    """The importable name of a scenario's models module."""
    return f"sc_{scenario.name}_{version}"


def write_project(root: Path, url: str, scenarios: Iterable[Scenario]) -> Path:
    """A project folder at `root` for database `url` with the models of every scenario; returns its config."""
    root.mkdir(parents=True, exist_ok=True)
    for scenario in scenarios:
        for version in ("v1", "v2"):
            (root / f"{module_name(scenario, version)}.py").write_text(scenario.source(version))
    config = root / "schemashift.toml"
    config.write_text(CONFIG.format(url=url))
    return config


def open_scenario(config: Path, scenario: Scenario, version: str = "v1", bind: sa.Engine | None = None) -> api.Project:
    """A project whose models are `scenario`'s `version` and whose migrations are its own folder (on `bind`)."""
    project = api.open_project(config, bind=bind)
    project.config.migrations_dir = config.parent / f"mig_{scenario.name}"
    use_models(project, scenario, version)
    return project


def use_models(project: api.Project, scenario: Scenario, version: str) -> None:
    """Point `project` at `scenario`'s models `version`."""
    project.config.models = [f"{module_name(scenario, version)}:metadata"]


def models(project: api.Project) -> sa.MetaData:
    """The project's (single) models MetaData, imported quietly (cycles warn in SQLAlchemy)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        return project.models()[0]


def generate_options(flags: Iterable[str]) -> dict[str, Any]:
    """`api.generate` keyword arguments for `generate` command-line `flags`."""
    args = build_parser().parse_args(["generate", "-m", "x", *flags])
    return {"rename_tables": args.rename_tables, "rename_columns": args.rename_columns, "no_rename": args.no_rename}


class Log:
    """Collects command output, for failure messages."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def __str__(self) -> str:
        return "\n".join(self.lines)


def quietly(call: Any, *args: Any, log: Log | None = None, **kwargs: Any) -> Any:
    """Call an `api` function with its output collected in `log` and SQLAlchemy warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        return call(*args, out=log if log is not None else Log(), **kwargs)


def live_diff(project: api.Project) -> list[ops.Operation]:
    """`api.diff(project, against="models")`'s operations, warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        return api.diff(project, against="models").operations


def assert_fast_paths_agree(project: api.Project) -> None:
    """The manifest/lazy history equals a full load, and cached schema states equal a replay.

    Run on every scenario's migrations (issue 7: the fast paths give the slow paths' answers on the corpus).
    """
    from schemashift.history import cache
    from schemashift.history import manifest
    from schemashift.planning.plan import states_along
    from schemashift.history.chain import History

    folder = project.config.migrations_dir
    full = History.load(folder)
    replayed = states_along(full)
    for attempt in ("cold", "warm"):  # the second load reads the manifest and the cached states from disk
        lazy = manifest.load_history(folder, project.config.root, create_manifest=True)
        assert [(m.revision, m.parent, m.checksum, m.message) for m in lazy.chain] == \
               [(m.revision, m.parent, m.checksum, m.message) for m in full.chain], attempt
        for revision in [None, *full.revisions]:
            assert cache.state_at(lazy, revision) == replayed[revision], (attempt, revision)
        assert [m.operations for m in lazy.chain] == [m.operations for m in full.chain], attempt


# -- databases ---------------------------------------------------------------------


def reset_database(engine: sa.Engine) -> None:
    """Drop everything in the database: tables, types, sequences, schemas (PostgreSQL), the SQLite file.

    SQLite's pooled connections are closed first: the file is deleted.
    """
    backend = backend_of(str(engine.url))
    if backend == "sqlite":
        engine.dispose()
        Path(engine.url.database or "").unlink(missing_ok=True)
        return
    with engine.begin() as conn:
        if backend == "postgresql":
            _reset_postgresql(conn)
        else:
            _reset_mysql(conn)


def _reset_postgresql(conn: sa.Connection) -> None:
    schemas = conn.exec_driver_sql(
        "SELECT nspname FROM pg_namespace WHERE left(nspname, 3) <> 'pg_' AND nspname <> 'information_schema'"
    ).scalars().all()
    for schema in schemas:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    conn.exec_driver_sql("CREATE SCHEMA public")


def _reset_mysql(conn: sa.Connection) -> None:
    rows = conn.exec_driver_sql(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
    ).all()
    conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
    tables = [f"`{name}`" for name, kind in rows if kind != "SEQUENCE"]
    if tables:
        conn.exec_driver_sql(f"DROP TABLE {', '.join(tables)}")
    for name, kind in rows:
        if kind == "SEQUENCE":
            conn.exec_driver_sql(f"DROP SEQUENCE `{name}`")
    conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")


def insert_rows(engine: sa.Engine, metadata: sa.MetaData, rows: dict[str, tuple[dict[str, Any], ...]]) -> None:
    """Insert `rows` (table -> rows, in order) through the models' tables."""
    with engine.begin() as conn:
        for table, table_rows in rows.items():
            for row in table_rows:
                conn.execute(metadata.tables[table].insert().values(**row))


def read_column(engine: sa.Engine, metadata: sa.MetaData, table: str, column: str) -> list[Any]:
    """The values of `table.column`, in primary-key order, read through the models' table."""
    sa_table = metadata.tables[table]
    order = list(sa_table.primary_key.columns) or [sa_table.c[column]]
    with engine.connect() as conn:
        return list(conn.execute(sa.select(sa_table.c[column]).order_by(*order)).scalars())


# -- Alembic as an oracle ------------------------------------------------------------


@dataclass(frozen=True)
class AlembicDiff:
    """One difference Alembic reported: its kind, table key and object (column or constraint) name."""

    kind: str
    table: str
    name: str | None = None
    columns: tuple[str, ...] = ()
    unique: bool = False

    def label(self) -> str:
        """``kind table.name``."""
        target = f"{self.table}.{self.name}" if self.name else self.table
        return f"{self.kind} {target}"


def _key(table: sa.Table | None = None, *, schema: str | None = None, name: str | None = None) -> str:
    if table is not None:
        schema, name = table.schema, table.name
    return f"{schema}.{name}" if schema and schema != "public" else str(name)


def _constraint_diff(kind: str, constraint: Any) -> AlembicDiff:
    table = constraint.table
    columns = tuple(c.name for c in getattr(constraint, "columns", ())) or tuple(
        getattr(e, "name", str(e)) for e in getattr(constraint, "expressions", ())
    )
    name = constraint.name if isinstance(constraint.name, str) else None
    unique = bool(getattr(constraint, "unique", False)) or isinstance(constraint, sa.UniqueConstraint)
    return AlembicDiff(kind, _key(table), name, columns, unique)


def flatten_alembic(diffs: list[Any]) -> list[AlembicDiff]:
    """Alembic's ``compare_metadata`` output as flat `AlembicDiff` records."""
    found: list[AlembicDiff] = []
    for diff in diffs:
        if isinstance(diff, list):  # modify_* come grouped per column
            for item in diff:
                kind, schema, table, column = item[0], item[1], item[2], item[3]
                found.append(AlembicDiff(kind, _key(schema=schema, name=table), column))
            continue
        kind = diff[0]
        if kind in ("add_table", "remove_table"):
            found.append(AlembicDiff(kind, _key(diff[1])))
        elif kind in ("add_column", "remove_column"):
            found.append(AlembicDiff(kind, _key(schema=diff[1], name=diff[2]), diff[3].name))
        elif kind in ("add_table_comment", "remove_table_comment"):
            found.append(AlembicDiff(kind, _key(diff[1])))
        elif kind in ("add_index", "remove_index", "add_constraint", "remove_constraint", "add_fk", "remove_fk"):
            found.append(_constraint_diff(kind, diff[1]))
        else:
            found.append(AlembicDiff(kind, "?", repr(diff[1:])[:80]))
    return found


def alembic_differences(engine: sa.Engine, metadata: sa.MetaData) -> list[AlembicDiff]:
    """What Alembic's ``compare_metadata`` (types and server defaults compared) finds between the database and `metadata`."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    schemas = sorted({t.schema for t in metadata.tables.values() if t.schema})
    opts: dict[str, Any] = {"compare_type": True, "compare_server_default": True}
    if schemas:
        opts["include_schemas"] = True
        opts["include_name"] = lambda name, kind, parent: kind != "schema" or name in (None, *schemas)
    opts["include_object"] = lambda obj, name, kind, reflected, compare_to: not (
        kind == "table" and str(name).startswith(("schemashift_version", "_schemashift_"))
    )
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = MigrationContext.configure(conn, opts=opts)
        return flatten_alembic(compare_metadata(context, metadata))


#: Alembic modify_* kind -> the AlterColumn fields that report the same change.
_MODIFY_FIELDS = {
    "modify_type": {"type"},
    "modify_nullable": {"nullable"},
    "modify_default": {"default", "identity", "autoincrement", "computed"},
    "modify_comment": {"comment"},
}


def _constraint_of(op: ops.Operation) -> Any:
    if isinstance(op, ops.AddConstraint):
        return op.constraint
    if isinstance(op, ops.DropConstraint):
        return op.definition
    return None


def _uniqueish(op: ops.Operation, columns: tuple[str, ...]) -> bool:
    """True when `op` adds or drops a unique constraint or unique index over `columns`."""
    constraint = _constraint_of(op)
    if isinstance(constraint, UniqueConstraint):
        return constraint.columns == columns
    index = getattr(op, "index", None) or getattr(op, "definition", None)
    return isinstance(op, (ops.CreateIndex, ops.DropIndex)) and getattr(index, "unique", False) and (
        index.columns == columns
    )


def covers(op: ops.Operation, diff: AlembicDiff) -> bool:
    """True when schemashift's `op` reports the change Alembic's `diff` names (by kind and object).

    Beyond the same kind on the same object, a key or index over a column that is
    added, dropped or retyped goes with that column's change.
    """
    if _follows_column(op, diff):
        return True
    if op.table_key != diff.table and not (isinstance(op, ops.CreateTable) and op.table.key == diff.table):
        return False
    kind = diff.kind
    if isinstance(op, ops.CreateTable):  # a new table brings its indexes and constraints
        return kind.startswith("add_")
    if isinstance(op, ops.DropTable):
        return kind.startswith("remove_")
    if kind in ("add_table", "remove_table"):  # keys added after (cycles) or dropped before the table itself
        wanted = (ops.AddConstraint, ops.CreateIndex) if kind == "add_table" else (ops.DropConstraint, ops.DropIndex)
        return isinstance(op, wanted)
    if kind == "add_column":
        return isinstance(op, ops.AddColumn) and op.column.name == diff.name
    if kind == "remove_column":
        return isinstance(op, ops.DropColumn) and op.column == diff.name
    if kind in _MODIFY_FIELDS:
        if isinstance(op, ops.AlterColumn) and op.column == diff.name:
            return bool(_MODIFY_FIELDS[kind] & set(op.changes))
        return False
    if kind in ("add_table_comment", "remove_table_comment"):
        return isinstance(op, ops.AlterTableComment)
    adding = kind.startswith("add_")
    if _removes_with_column(op, diff) and not adding:
        return True
    if kind in ("add_fk", "remove_fk"):
        wanted = ops.AddConstraint if adding else ops.DropConstraint
        return isinstance(op, wanted) and isinstance(_constraint_of(op), ForeignKey) and (
            _constraint_of(op).columns == diff.columns
        )
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        wanted_ix = ops.CreateIndex if adding else ops.DropIndex
        if isinstance(op, wanted_ix) and (getattr(op, "index", None) or op.definition).name == diff.name:
            return True
        if isinstance(op, ops.RenameIndex) and diff.name in (op.name, op.new_name):
            return True
        wanted_c = ops.AddConstraint if adding else ops.DropConstraint
        constraint = _constraint_of(op)
        if isinstance(op, wanted_c) and isinstance(constraint, (UniqueConstraint, CheckConstraint, PrimaryKey)):
            if constraint.name and constraint.name == diff.name:
                return True
        return diff.unique and isinstance(op, (wanted_ix, wanted_c)) and _uniqueish(op, diff.columns)
    return False


def _follows_column(op: ops.Operation, diff: AlembicDiff) -> bool:
    """A key over an added (dropped) column added (dropped) with it; a foreign key re-made around a type change."""
    constraint = _constraint_of(op)
    if constraint is None or isinstance(constraint, CheckConstraint):
        return False
    ends = {(op.table_key, c) for c in constraint.columns}
    if isinstance(constraint, ForeignKey):
        ends |= {(constraint.ref_key, c) for c in constraint.ref_columns}
    if (diff.table, diff.name) not in ends:
        return False
    if diff.kind == "modify_type":
        return isinstance(constraint, ForeignKey)
    adding = isinstance(op, ops.AddConstraint)
    return diff.kind == ("add_column" if adding else "remove_column") and (op.table_key, diff.name) in ends


def _removes_with_column(op: ops.Operation, diff: AlembicDiff) -> bool:
    """A dropped column takes its indexes and constraints along."""
    return isinstance(op, ops.DropColumn) and op.column in diff.columns


@dataclass
class Comparison:
    """Alembic's differences against schemashift's operations for one database and models."""

    alembic: list[AlembicDiff]
    schemashift: list[ops.Operation]
    alembic_noise: list[AlembicDiff] = field(default_factory=list)

    @property
    def missed_by_schemashift(self) -> list[AlembicDiff]:
        """Alembic differences (not known Alembic false alarms) no schemashift operation reports."""
        noise = {(d.kind, d.table, d.name) for d in self.alembic_noise}
        return [
            d for d in self.alembic
            if (d.kind, d.table, d.name) not in noise and not any(covers(op, d) for op in self.schemashift)
        ]

    @property
    def missed_by_alembic(self) -> list[ops.Operation]:
        """schemashift operations no Alembic difference corresponds to."""
        return [op for op in self.schemashift if not any(covers(op, d) for d in self.alembic)]


def compare_with_alembic(config: Path, engine: sa.Engine, scenario: Scenario) -> Comparison:
    """Upgrade an emptied database to `scenario`'s v1, then compare it with the v2 models: Alembic and schemashift.

    Alembic's differences against the v1 models themselves (the database matches
    them) are its false alarms, kept apart as `alembic_noise`.
    """
    reset_database(engine)
    project = open_scenario(config, scenario, "v1", bind=engine)
    quietly(api.generate, project, "v1")
    quietly(api.upgrade, project)
    noise = alembic_differences(engine, models(project))
    use_models(project, scenario, "v2")
    return Comparison(alembic_differences(engine, models(project)), live_diff(project), noise)
