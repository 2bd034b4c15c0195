"""The bulk readers reflect what SQLAlchemy's Inspector reflects, on every model of the scenario corpus.

Each distinct models module of `scenarios.py` (v1 and v2 of every scenario, for
the backends it applies to) is created once per backend in its own namespace of
a throw-away database — a SQLite file, a PostgreSQL schema, a MariaDB database
(named ``ss_reflect_eq_<random>…``, so parallel runs do not meet) — and
reflected twice by `reflect`: through the dialect's bulk reader (`Dialect.read_tables`) and
through `read_with_inspector` (SQLAlchemy's per-dialect ``get_multi_*``). The two
neutral schemas must be equal, apart from the differences listed in `KNOWN`,
where SQLAlchemy itself reads the database wrongly or not at all.
PostgreSQL is compared both by schema name and through the search path, and its
reflected shapes key by key. Last, SQLite's shortened ``UNIQUE`` parse is checked
against the whole-table parse on awkward CREATE TABLE texts.
"""

from __future__ import annotations

import sys
import uuid
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from conftest import BACKENDS, create_database, drop_database, require_backend
from scenarios import SCENARIOS

from schemashift.dialects import dialect_of, get_dialect
from schemashift.dialects.base import Dialect
from schemashift.dialects.sqlite import reflect as reflect_sqlite
from schemashift.model.schema import Schema, Table
from schemashift.reflection.core import RawSchema, Reader, read_with_inspector

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


def _distinct_models() -> dict[str, tuple[str, frozenset[str]]]:
    """Label -> (models source, backends) for each distinct models module of the corpus."""
    found: dict[str, tuple[str, set[str]]] = {}
    labels: dict[str, str] = {}
    for scenario in SCENARIOS:
        for version in ("v1", "v2"):
            source = scenario.source(version)
            label = labels.setdefault(source, f"{scenario.name}_{version}")
            found.setdefault(label, (source, set()))[1].update(scenario.backends)
    return {label: (source, frozenset(backends)) for label, (source, backends) in found.items()}


MODELS = _distinct_models()
LABELS = sorted(MODELS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "label" in metafunc.fixturenames:
        backends = ("postgresql",) if metafunc.function.__name__.startswith("test_postgresql") else BACKENDS
        pairs = [(b, label) for b in backends for label in LABELS if b in MODELS[label][1]]
        metafunc.parametrize(("backend", "label"), pairs, ids=[f"{b}-{label}" for b, label in pairs])


# -- building every model once per backend ---------------------------------------------


def _metadata(label: str) -> sa.MetaData:
    """The ``metadata`` of model `label`, run as a module (declarative annotations look their module up)."""
    module = ModuleType(f"_reflect_eq_{label}")
    sys.modules[module.__name__] = module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            exec(compile(MODELS[label][0], module.__name__, "exec"), module.__dict__)  # noqa: S102 - corpus models
    finally:
        del sys.modules[module.__name__]
    metadata = module.__dict__["metadata"]
    assert isinstance(metadata, sa.MetaData)
    return metadata


@dataclass
class Built:
    """Where one models module lives: an engine and the schemas (None: the default) holding its tables."""

    engine: sa.Engine
    schemas: list[str | None]
    metadata: sa.MetaData
    error: str | None = None


class Corpus:
    """Every model of the corpus that applies to a backend, created in its own namespace on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.engines: list[sa.Engine] = []
        self.databases: list[tuple[str, str]] = []
        self.found: dict[str, dict[str, Built]] = {}

    def built(self, backend: str) -> dict[str, Built]:
        """Label -> where that model lives on `backend` (skips when its server is not reachable)."""
        require_backend(backend)
        if backend not in self.found:
            self.found[backend] = self._build(backend)
        return self.found[backend]

    def _build(self, backend: str) -> dict[str, Built]:
        base = f"ss_reflect_eq_{uuid.uuid4().hex[:8]}"
        found: dict[str, Built] = {}
        shared = None
        if backend == "postgresql":
            shared = self._engine(backend, base)
        labels = [label for label in LABELS if backend in MODELS[label][1]]
        for number, label in enumerate(labels):
            metadata = _metadata(label)
            if backend == "sqlite":
                engine = sa.create_engine(f"sqlite:///{self.folder / label}.db", poolclass=sa.pool.NullPool)
                self.engines.append(engine)
                found[label] = _create(engine, metadata, {})
            elif shared is not None:
                names = {schema: f"m{number}" + (f"_{schema}" if schema else "") for schema in _schemas(metadata)}
                found[label] = _create(shared, metadata, names)
            else:
                engine = self._engine(backend, f"{base}_m{number}")
                found[label] = _create(engine, metadata, {})
        return found

    def _engine(self, backend: str, name: str) -> sa.Engine:
        self.databases.append((backend, name))
        engine = sa.create_engine(create_database(backend, name, self.folder), poolclass=sa.pool.NullPool)
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        """Drop every database created."""
        for engine in self.engines:
            engine.dispose()
        for backend, name in self.databases:
            drop_database(backend, name)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    """The corpus' models, built per backend when first asked for; dropped at the end of the module."""
    found = Corpus(tmp_path_factory.mktemp("reflect_eq"))
    try:
        yield found
    finally:
        found.close()


def _schemas(metadata: sa.MetaData) -> set[str | None]:
    return {None} | {table.schema for table in metadata.tables.values()}


def _create(engine: sa.Engine, metadata: sa.MetaData, names: dict[str | None, str]) -> Built:
    """Create `metadata` in `engine`'s database, each schema renamed by `names` (created first)."""
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                for name in names.values():
                    conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
            metadata.create_all(conn.execution_options(schema_translate_map=names or None))
    except sa.exc.DBAPIError as exc:
        return Built(engine, [], metadata, f"cannot be created: {str(exc.orig).splitlines()[0]}")
    if engine.dialect.name == "postgresql":
        return Built(engine, sorted(names.values()), metadata)
    return Built(engine, [None], metadata)  # SQLite's main file, MariaDB's current database


# -- the comparison --------------------------------------------------------------------


def _bulk(conn: sa.Connection, schema: str | None) -> RawSchema:
    """The dialect's bulk reader, less what SQLAlchemy's reflection does not read at all (see `KNOWN`)."""
    raw = dialect_of(conn).read_tables(conn, schema)
    if conn.dialect.name == "postgresql":
        return raw
    for table, indexes in raw.indexes.items():
        if conn.dialect.name == "sqlite":
            indexes = [index for index in indexes if not index.get("expressions")]
        raw.indexes[table] = [{k: v for k, v in index.items() if k != "column_sorting"} for index in indexes]
    return raw


def _inspector(metadata: sa.MetaData) -> Reader:
    """`read_with_inspector`, with SQLAlchemy's MariaDB misreadings put right (see `KNOWN`)."""

    def read(conn: sa.Connection, schema: str | None) -> RawSchema:
        raw = read_with_inspector(conn, schema)
        if conn.dialect.name not in ("mysql", "mariadb"):
            return raw
        for table, columns in raw.columns.items():
            declared = metadata.tables[table].c if table in metadata.tables else {}
            for column in columns:
                satype = column["type"]
                if isinstance(satype, mysql.TINYINT) and satype.display_width == 1:
                    column["type"] = sa.Boolean()
                elif column["name"] in declared and isinstance(declared[column["name"]].type, sa.JSON):
                    column["type"] = sa.JSON()
        for table, uniques in raw.uniques.items():
            names = {unique["name"] for unique in uniques}
            raw.indexes[table] = [i for i in raw.indexes.get(table, []) if not (i["unique"] and i["name"] in names)]
        return raw

    return read


#: Where SQLAlchemy's Inspector and the bulk readers are known to differ, and why the bulk readers are right.
KNOWN = {
    "sqlite: expression indexes": "SQLAlchemy skips them (with a warning); the bulk reader reads their elements",
    "sqlite, mysql: DESC index columns": "SQLAlchemy does not read the sort order; the bulk readers do",
    "mysql: TINYINT(1)": "SQLAlchemy reads TINYINT; MariaDB stores BOOLEAN so, and the bulk reader says boolean",
    "mysql: JSON": "MariaDB stores JSON as LONGTEXT with a json_valid check; SQLAlchemy reads LONGTEXT",
    "mysql: unique keys": "SQLAlchemy reports each both as a unique index and a unique constraint",
    "mysql: normalised": "compared after normalisation: defaults, FK rules and expressions are spelt differently",
}


def _compare(conn: sa.Connection, target: Built, schemas: list[str | None]) -> list[str]:
    bulk = dialect_of(conn).reflect(conn, schemas=schemas, reader=_bulk)
    inspector = dialect_of(conn).reflect(conn, schemas=schemas, reader=_inspector(target.metadata))
    if conn.dialect.name in ("mysql", "mariadb"):
        dialect = get_dialect("mysql")
        bulk, inspector = dialect.normalize(bulk), dialect.normalize(inspector)
    return _differences(bulk, inspector)


def _differences(bulk: Schema, inspector: Schema) -> list[str]:
    lines = []
    for key in sorted(set(bulk.tables) | set(inspector.tables)):
        left, right = bulk.tables.get(key), inspector.tables.get(key)
        if left is None or right is None:
            lines.append(f"{key}: only in {'the Inspector' if left is None else 'the bulk reader'}")
            continue
        for field in fields(Table):
            a, b = getattr(left, field.name), getattr(right, field.name)
            if field.name == "columns" and len(a) == len(b):
                a, b = zip(*[(x, y) for x, y in zip(a, b) if x != y]) if a != b else ((), ())
            if a != b:
                lines.append(f"{key}.{field.name}:\n  bulk:      {a}\n  inspector: {b}")
    if bulk.sequences != inspector.sequences:
        lines.append(f"sequences: {bulk.sequences} != {inspector.sequences}")
    return lines


def test_bulk_reader_reflects_as_the_inspector(backend: str, label: str, corpus: Corpus) -> None:
    target = corpus.built(backend)[label]
    if target.error:
        pytest.skip(target.error)
    with target.engine.connect() as conn:
        assert type(dialect_of(conn)).read_tables is not Dialect.read_tables  # a bulk reader of its own
        problems = _compare(conn, target, target.schemas)
        if backend == "postgresql" and len(target.schemas) == 1:  # the default schema: through the search path
            conn.exec_driver_sql(f'SET search_path TO "{target.schemas[0]}"')
            problems += _compare(conn, target, [None])
            conn.rollback()
    assert not problems, "\n".join(problems)


def _canonical(raw: RawSchema) -> dict[str, Any]:
    """`raw` comparable with ``==``: types by their repr, tables without an entry given SQLAlchemy's defaults."""
    defaults = {"primary_keys": {"name": None, "constrained_columns": []}, "comments": None}
    found: dict[str, Any] = {}
    for field in fields(RawSchema):
        mapping = getattr(raw, field.name)
        found[field.name] = {
            table: repr(_types_as_text(mapping.get(table, defaults.get(field.name, []))))
            for table in raw.columns
        }
    return found


def _types_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types_as_text(v) for v in value]
    if isinstance(value, sa.types.TypeEngine):
        return f"{type(value).__name__}:{value!r}"
    return value


def test_postgresql_reader_gives_sqlalchemys_shapes(backend: str, label: str, corpus: Corpus) -> None:
    """On PostgreSQL the reflected shapes themselves are SQLAlchemy's, every key of them."""
    target = corpus.built(backend)[label]
    if target.error:
        pytest.skip(target.error)
    with target.engine.connect() as conn:
        for schema in target.schemas:
            assert _canonical(get_dialect("postgresql").read_tables(conn, schema)) == _canonical(read_with_inspector(conn, schema))


@pytest.mark.parametrize(
    "create",
    [
        'CREATE TABLE t (\n\tid INTEGER NOT NULL, \n\tcode VARCHAR(10), \n\tCONSTRAINT uq_code UNIQUE (code)\n)',
        "CREATE TABLE t (id INTEGER, code TEXT UNIQUE, other TEXT, UNIQUE (other, id))",
        "CREATE TABLE t (\n id INTEGER,\n code TEXT NOT NULL UNIQUE,\n b TEXT unique\n)",
        'CREATE TABLE t (\n id INTEGER,\n code TEXT,\n CONSTRAINT "my uq"\n UNIQUE (code)\n)',
        "CREATE TABLE t (\n id INTEGER,\n code TEXT,\n CONSTRAINT\n uq_x UNIQUE (code)\n)",
        "CREATE TABLE t (\n id INTEGER,\n code TEXT,\n CONSTRAINT uq_x UNIQUE\n (code)\n)",
        "CREATE TABLE t (\n id INTEGER,\n code TEXT,\n CONSTRAINT uq_x\n\n UNIQUE (code)\n)",
        'CREATE TABLE t (\n "the id" INTEGER UNIQUE,\n [code] TEXT UNIQUE,\n `x` TEXT\n)',
        "CREATE TABLE t (\n id INTEGER,\n code TEXT, UNIQUE (code), CHECK (code <> 'UNIQUE')\n)",
    ],
)
def test_sqlite_unique_lines_parse_as_the_whole_table(create: str) -> None:
    """SQLAlchemy's unique-constraint parse finds the same in `_unique_lines` of a CREATE TABLE as in all of it."""
    engine = sa.create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(create)
            whole = sa.inspect(conn).get_unique_constraints("t")
            catalogue = reflect_sqlite._fetch(conn, "main")
            lines = {name: reflect_sqlite._unique_lines(sql) for name, sql in catalogue.table_sql.items()}
            stand_in = reflect_sqlite._Prefetched(conn.dialect, replace(catalogue, table_sql=lines))
            assert stand_in.get_unique_constraints(conn, "t", None) == whole
            assert whole or "UNIQUE" not in create.upper()
    finally:
        engine.dispose()
