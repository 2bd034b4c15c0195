"""The real applications of the corpus (tests/databases/test_corpus.py): their models, as installed from PyPI.

Each application's own SQLAlchemy MetaData is imported, never copied. Where the test has to leave
something out (MLflow: what `create_all` itself cannot build) or evolve the models, it works on a
`Table.to_metadata` copy. A schemashift project names the models as ``corpus_apps:<app>_v1`` (the
application's models) or ``corpus_apps:<app>_v2`` (the evolution: a column with a server default, an
index on it, a widened string), resolved lazily by the module `__getattr__` below.
"""

from __future__ import annotations

import datetime
import decimal
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.util import OrderedSet

#: The column, server default and index every evolution adds.
NEW_COLUMN = "corpus_note"
NEW_DEFAULT = "none yet"
ROWS = 3


@dataclass(frozen=True)
class App:
    """One application: how to load its models and how to evolve them."""

    name: str
    load: Callable[[], sa.MetaData]
    table: str  # the table that gets rows and the evolution
    widen: str  # a String column of `table`, widened by the evolution
    widen_to: int
    values: Callable[[int], dict[str, Any]] = field(default=lambda i: {})  # row i's values that must be given
    backends: tuple[str, ...] = ("sqlite", "postgresql", "mysql")


# -- loaders: the applications' own models -------------------------------------------------------


def _mlflow() -> sa.MetaData:
    """MLflow's tracking, model-registry and workspace models, less what `create_all` cannot build.

    Left out: the two `Index` objects with no columns (trace_tags, trace_request_metadata) and the
    foreign key from input_tags.input_uuid to the non-unique inputs.input_uuid.
    """
    import mlflow.store.model_registry.dbmodels.models  # noqa: F401 - each import registers its tables
    import mlflow.store.tracking.dbmodels.models  # noqa: F401
    import mlflow.store.workspace.dbmodels.models  # noqa: F401
    from mlflow.store.db.base_sql_model import Base

    copy = copy_metadata([Base.metadata])
    for table in copy.tables.values():
        for index in [index for index in table.indexes if not index.expressions]:
            table.indexes.discard(index)
    input_tags = copy.tables["input_tags"]
    for constraint in list(input_tags.foreign_key_constraints):
        if constraint.referred_table.name == "inputs":
            _drop_foreign_key(input_tags, constraint)
    return copy


def _optuna() -> sa.MetaData:
    from optuna.storages._rdb.models import BaseModel

    return BaseModel.metadata


def _jupyterhub() -> sa.MetaData:
    from jupyterhub.orm import Base

    return Base.metadata


def _dagster() -> sa.MetaData:
    """Dagster's run, event-log and schedule storage tables in one MetaData (as dagster-postgres/-mysql
    keep them in one database); the three define the same `secondary_indexes` table, kept once."""
    from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
    from dagster._core.storage.runs.schema import RunStorageSqlMetadata
    from dagster._core.storage.schedules.schema import ScheduleStorageSqlMetadata

    return copy_metadata([RunStorageSqlMetadata, SqlEventLogStorageMetadata, ScheduleStorageSqlMetadata])


def _buildbot() -> sa.MetaData:
    from buildbot.db.model import Model

    return Model.metadata


APPS: dict[str, App] = {
    app.name: app
    for app in (
        App("mlflow", _mlflow, "experiments", "artifact_location", 512,
            lambda i: {"name": f"experiment {i}", "lifecycle_stage": "active"}),
        App("optuna", _optuna, "studies", "study_name", 600, lambda i: {"study_name": f"study {i}"}),
        App("jupyterhub", _jupyterhub, "users", "name", 400, lambda i: {"name": f"user{i}"}),
        App("dagster", _dagster, "runs", "status", 100, lambda i: {"run_id": f"run-{i}", "status": "QUEUED"}),
        App("buildbot", _buildbot, "masters", "name_hash", 80,
            lambda i: {"name": f"master {i}", "name_hash": f"{i:040x}", "active": 1, "last_active": 1700000000 + i}),
    )
}


# -- copies and the evolution ----------------------------------------------------------------------


def copy_metadata(sources: list[sa.MetaData]) -> sa.MetaData:
    """One MetaData holding a copy of every table of `sources` (a table name seen before is skipped).

    The copies' constraints and indexes are created in the originals' creation order, the same in every
    process (`Table.to_metadata` alone copies them in the order of a set, which `PYTHONHASHSEED` changes).
    """
    copy = sa.MetaData(naming_convention=dict(sources[0].naming_convention))
    for source in sources:
        for table in source.sorted_tables:
            if table.key not in copy.tables:
                with _in_creation_order(table):
                    table.to_metadata(copy)
    return copy


@contextmanager
def _in_creation_order(table: sa.Table) -> Iterator[None]:
    """`table`'s constraints and indexes iterate in creation order while inside (the same members)."""
    constraints, indexes = table.constraints, table.indexes
    table.constraints = OrderedSet(sorted(constraints, key=_created))
    table.indexes = OrderedSet(sorted(indexes, key=_created))
    try:
        yield
    finally:
        table.constraints, table.indexes = constraints, indexes


def _created(item: object) -> int:
    return getattr(item, "_creation_order", 0)


def _drop_foreign_key(table: sa.Table, constraint: sa.ForeignKeyConstraint) -> None:
    """Remove `constraint` from `table` (a copy) entirely."""
    table.constraints.discard(constraint)
    for element in constraint.elements:
        table.foreign_keys.discard(element)
        element.parent.foreign_keys.discard(element)


def create_all(metadata: sa.MetaData, bind: sa.Engine, tables: list[sa.Table] | None = None) -> None:
    """`metadata.create_all` that leaves the models as they were.

    On a database with ALTER, `create_all` adds a ``use_alter`` foreign key (Buildbot's) afterwards and marks it,
    for good, as not to be written inside CREATE TABLE; a later `create_all` on SQLite (no ALTER) would then leave
    the key out altogether. Each constraint's mark is put back after the call.
    """
    marks = [(constraint, constraint.__dict__.get("_create_rule", _UNSET))
             for table in metadata.tables.values() for constraint in table.constraints]
    try:
        metadata.create_all(bind, tables=tables)
    finally:
        for constraint, mark in marks:
            if mark is _UNSET:
                constraint.__dict__.pop("_create_rule", None)
            else:
                constraint._create_rule = mark


_UNSET = object()


@cache
def v1(name: str) -> sa.MetaData:
    """The application's models as the corpus uses them."""
    return APPS[name].load()


@cache
def v2(name: str) -> sa.MetaData:
    """A copy of v1 with the evolution: `NEW_COLUMN` (server default, NOT NULL), an index on it, `widen` widened."""
    app = APPS[name]
    copy = copy_metadata([v1(name)])
    table = copy.tables[app.table]
    column = sa.Column(NEW_COLUMN, sa.String(40), nullable=False, server_default=NEW_DEFAULT)
    table.append_column(column)
    sa.Index(f"ix_corpus_{app.table}_note", column)
    widened = table.c[app.widen]
    widened.type = sa.String(app.widen_to)
    return copy


def __getattr__(attr: str) -> sa.MetaData:
    """``<app>_v1`` / ``<app>_v2``: what a corpus project's ``models`` setting names."""
    name, _, version = attr.rpartition("_")
    if name in APPS and version in ("v1", "v2"):
        return v1(name) if version == "v1" else v2(name)
    raise AttributeError(attr)


# -- what an application compiles itself --------------------------------------------------------------

#: The class attributes `sqlalchemy.ext.compiler.compiles` sets on the class it overrides.
_DISPATCH = ("_compiler_dispatch", "_compiler_dispatcher")
CompilerState = dict[type, dict[str, Any]]


def compiler_state() -> CompilerState:
    """Every SQL element and type class's own compiler dispatch, as now.

    Importing dagster overrides how `DateTime`, `TIMESTAMP` and `Float` compile on MySQL for the whole
    process (`@compiles`); the corpus turns each application's overrides on for its own run only, so that no
    other test in the same process sees them.
    """
    import sqlalchemy.dialects.mysql  # noqa: F401 - every dialect's classes exist before the first state
    import sqlalchemy.dialects.postgresql  # noqa: F401
    import sqlalchemy.dialects.sqlite  # noqa: F401

    state: CompilerState = {}
    pending = [sa.sql.visitors.Visitable]
    while pending:
        for cls in pending.pop().__subclasses__():
            if cls not in state:
                state[cls] = {name: cls.__dict__[name] for name in _DISPATCH if name in cls.__dict__}
                pending.append(cls)
    return state


def apply_compiler_state(state: CompilerState) -> None:
    """Give each class of `state` its dispatch attributes from `state` (classes created since are left alone)."""
    for cls, attributes in state.items():
        for name in _DISPATCH:
            if name in attributes:
                if cls.__dict__.get(name) is not attributes[name]:
                    setattr(cls, name, attributes[name])
            elif name in cls.__dict__:
                delattr(cls, name)


#: SQLAlchemy's own compilers, before any application is imported; then each application's.
_BASELINE = compiler_state()
_APP_STATES: dict[str, CompilerState] = {}


@contextmanager
def app_compilers(app: str) -> Iterator[None]:
    """The application's models loaded, its own `@compiles` overrides active inside only.

    Skips (fails in CI) when the application is not installed: `pip install -e '.[corpus]'`. Shared by every
    corpus module of a process (one baseline state, one state per application).
    """
    if app not in _APP_STATES:
        apply_compiler_state(_BASELINE)
        try:
            v1(app)
            v2(app)
        except ImportError as exc:
            message = f"{app} is not installed ({exc}): pip install -e '.[corpus]'"
            if os.environ.get("SCHEMASHIFT_REQUIRE_SERVERS") == "1":
                pytest.fail(message)
            pytest.skip(message)
        _APP_STATES[app] = compiler_state()
    apply_compiler_state(_APP_STATES[app])
    try:
        yield
    finally:
        apply_compiler_state(_BASELINE)


# -- rows ------------------------------------------------------------------------------------------


def rows(app: App, table: sa.Table) -> list[dict[str, Any]]:
    """`ROWS` rows for `table`: the app's given values, plus a made-up value for each other required column."""
    result = []
    for i in range(ROWS):
        row = dict(app.values(i))
        for column in table.columns:
            if column.name not in row and _required(column):
                row[column.name] = _made_up(column, i)
        result.append(row)
    return result


def _required(column: sa.Column[Any]) -> bool:
    if column.nullable or column.server_default is not None or column.default is not None:
        return False
    return not (column.primary_key and column.autoincrement in (True, "auto") and column is next(
        iter(column.table.primary_key.columns), None))


def _made_up(column: sa.Column[Any], i: int) -> object:
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = str
    values: dict[type, object] = {
        bool: False, int: i + 1, float: i + 0.5, decimal.Decimal: decimal.Decimal(i), bytes: b"corpus",
        datetime.datetime: datetime.datetime(2024, 1, 1, 12, i), datetime.date: datetime.date(2024, 1, 1 + i),
        uuid.UUID: uuid.UUID(int=i + 1), dict: {}, list: [],
    }
    if python_type in values:
        return values[python_type]
    enums = getattr(column.type, "enums", None)
    if enums:
        return enums[0]
    length = getattr(column.type, "length", None) or 20
    return f"{column.name[:8]}{i}"[:length]
