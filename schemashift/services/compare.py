"""The live database against a schema: reflect, normalise both sides for the database, diff.

`compare` is the project-free counterpart of Alembic's ``compare_metadata``;
`compare_schemas` is the general form (which schemas, which tables left out,
what `exclude`/`include_object` leave out). `live_differences` is what `status`,
`diff`, `upgrade` and the stairway check use for a project, and
`remember_fingerprint` stores the catalogue fingerprint that lets the fast
`status` (`schemashift.runtime.fast`) skip all of this next time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift.autodetect.differ import RenameDecisions
from schemashift.autodetect.differ import diff as diff_schemas
from schemashift.dialects import dialect_of
from schemashift.dialects.objects import settle, with_live_objects
from schemashift.errors import SchemashiftError
from schemashift.history import cache
from schemashift.history.cache import schema_names_through
from schemashift.model.schema import Schema
from schemashift.sacompat import metadata_sequences
from schemashift.services.project import Project, schema_of
from schemashift.support.gcpause import paused

if TYPE_CHECKING:
    from schemashift.autodetect.filters import ObjectFilter
    from schemashift.operations import Operation
    from schemashift.runtime.versions import Recorder


@paused()
def compare(connection: sa.Connection, metadata: sa.MetaData | list[sa.MetaData]) -> list[Operation]:
    """Operations that turn the database behind `connection` into the models of `metadata`.

    The counterpart of Alembic's ``compare_metadata``, without a project or a
    configuration: ``[op.describe() for op in schemashift.api.compare(conn, Base.metadata)]``.
    Where the catalogue comes from a server (and the connection is not async),
    it is read on a worker thread while this one converts and normalises the
    models; the connection is used by one thread at a time.
    """
    metadatas = metadata if isinstance(metadata, list) else [metadata]
    dialect = dialect_of(connection)
    if not dialect.remote_catalogue or getattr(connection.dialect, "is_async", False):
        expected = schema_of(metadatas)
        return compare_schemas(connection, expected, schemas=schemas_to_compare(expected.schema_names))
    from concurrent.futures import ThreadPoolExecutor

    named = {t.schema for m in metadatas for t in m.tables.values()} | {s.schema for m in metadatas
                                                                         for s in metadata_sequences(m)}
    schemas = schemas_to_compare(named)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="schemashift-reflect") as worker:
        reading = worker.submit(reflect_live, connection, schemas)
        try:
            expected = schema_of(metadatas)
            canonical = dialect.normalize(expected)
        finally:
            live = reading.result()  # the worker is done with the connection before anything else uses it
    wanted = schemas_to_compare(expected.schema_names)
    if wanted != schemas:  # a schema only the conversion names
        live = reflect_live(connection, wanted)
    live, canonical = settle(dialect, connection, dialect.normalize(live), canonical)
    return diff_schemas(live, canonical, RenameDecisions(no_rename=True))


@paused()
def compare_schemas(connection: sa.Connection, expected: Schema, *, schemas: list[str | None] | None = None,
                    exclude: set[str] | frozenset[str] = frozenset(),
                    keep: ObjectFilter | None = None) -> list[Operation]:
    """Operations that turn the database behind `connection` into `expected` (renames never guessed).

    Reflects `schemas` (default: the default schema) leaving out `exclude`d tables
    and, on both sides, what `keep` leaves out; normalises both sides for the
    database and diffs them. Commits a transaction the reflection opened.
    """
    dialect = dialect_of(connection)
    live = reflect_live(connection, schemas or [None], exclude)
    if keep is not None:
        live, expected = (keep.apply(live, reflected=True, other=expected),
                          keep.apply(expected, reflected=False, other=live))
    live, expected = settle(dialect, connection, dialect.normalize(live), dialect.normalize(expected))
    return diff_schemas(live, expected, RenameDecisions(no_rename=True))


def reflect_live(connection: sa.Connection, schemas: list[str | None],
                 exclude: set[str] | frozenset[str] = frozenset()) -> Schema:
    """The live schema of `schemas`, committing the transaction the reflection opened."""
    live = dialect_of(connection).reflect(connection, schemas=schemas, exclude=exclude)
    live = with_live_objects(connection, live, schemas)
    if connection.in_transaction():
        connection.commit()
    return live


def schemas_to_compare(schema_names: set[str | None]) -> list[str | None]:
    """The default schema (None) first, then every named one, sorted."""
    return [None, *sorted(name for name in schema_names if name is not None)]


def live_schemas(project: Project, expected: Schema) -> list[str | None]:
    """The schemas to reflect: the default one (the env's `schema`, via search_path) and every other one
    the expected schema or any revision of the migrations puts tables or sequences in (so that what a
    removed schema still holds shows up)."""
    named = set(expected.schema_names)
    try:
        history = project.history()
        named |= schema_names_through(history, history.head)
    except SchemashiftError:
        pass  # unreadable migrations: the expected schema alone decides
    return [None, *sorted(name for name in named if name is not None and name != project.env.schema)]


def live_operations(project: Project, connection: sa.Connection, expected: Schema) -> list[Operation]:
    """Operations that would turn the live schema into `expected`, both normalised for this database."""
    schemas = live_schemas(project, expected)
    return compare_schemas(connection, expected, schemas=schemas, exclude=project.recorder(connection).own_tables,
                           keep=project.object_filter())


def live_differences(project: Project, connection: sa.Connection, expected: Schema) -> list[str]:
    """`live_operations` described, one line each (empty: the live schema is `expected`)."""
    return [op.describe() for op in live_operations(project, connection, expected)]


def remember_fingerprint(project: Project, connection: sa.Connection, revision: str, expected: Schema, *,
                         check: bool, taken: TakenFingerprint | None = None,
                         recorder: Recorder | None = None, defer: bool = False) -> None:
    """Store the live catalog fingerprint with `revision` when the live schema matches `expected`.

    With `check` the real drift check runs first (the caller has not), unless
    the fingerprint is one that check already passed for exactly these
    migrations (`clean_fingerprints`: a database built again the same way). The
    fast `status` (`schemashift.runtime.fast`) trusts a matching fingerprint
    instead of reflecting. `taken`: the fingerprint `take_fingerprint` read
    already (on another connection, after the last change to the schema);
    `recorder`: the caller's, on `connection`. With `defer` a fingerprint not known
    clean is not stored and no check runs: the next `status` checks (a fresh
    build, whose schema was just made from the migrations' own). Best effort:
    any failure only leaves the fast path unused.
    """
    if not fingerprinted(project):
        return
    recorder = recorder or project.recorder(connection)
    try:
        if not recorder.has_fingerprint_column():
            return
        if taken is None:
            if defer and not clean_fingerprints(project, connection, revision).values:
                return  # none could be judged clean: not read either
            taken = take_fingerprint(project, connection, revision, expected, check=check, differences=not defer)
        if taken.clean is None and defer:
            return
        if taken.clean is None:
            taken.clean = not live_differences(project, connection, expected)
        if not taken.clean:
            return
        taken.known.add(taken.value)
        length = getattr(recorder.version.c.fingerprint.type, "length", None)
        if isinstance(length, int) and len(taken.value) <= length:
            if connection.in_transaction():
                connection.commit()  # the drift check's reading
            with connection.begin():
                recorder.update(revision, fingerprint=taken.value)
    except Exception:  # noqa: BLE001 - broad on purpose: an optional speed-up must never fail the command
        if connection.in_transaction():
            connection.rollback()


def read_before_check(project: Project, connection: sa.Connection, revision: str,
                      expected: Schema) -> TakenFingerprint | None:
    """The catalogue fingerprint read ahead of a drift check whose result decides whether it is stored (a change
    made after the check then cannot be stored as clean); None when none would be stored or it cannot be read."""
    if not fingerprinted(project):
        return None
    try:
        if not project.recorder(connection).has_fingerprint_column():
            return None
        return take_fingerprint(project, connection, revision, expected, check=False)
    except Exception:  # noqa: BLE001 - an optional speed-up: the status goes on without it
        if connection.in_transaction():
            connection.rollback()
        return None


def fingerprinted(project: Project) -> bool:
    """False when the project's fingerprint is never stored: the fast `status` knows nothing of
    `exclude`/`include_object`, so a change to them must not go unseen."""
    return not (project.config.exclude or project.env.exclude or project.config.include_object)


@dataclass
class TakenFingerprint:
    """A live catalog fingerprint as stored (`value`), the ones known clean, and whether the live schema
    matches the migrations (`clean`; None: the drift check is still to run)."""

    value: str
    known: CleanFingerprints
    clean: bool | None


def take_fingerprint(project: Project, connection: sa.Connection, revision: str, expected: Schema, *,
                     check: bool, differences: bool = True) -> TakenFingerprint:
    """Read the live catalog fingerprint and judge it (see `remember_fingerprint`); only reads.

    Clean without a drift check when not `check` or when the fingerprint is known clean;
    else the drift check runs here, or with `differences` off is left to the caller.
    """
    from schemashift.runtime.fingerprint import FormatCursor, fingerprint, stored_value

    schemas = live_schemas(project, expected)
    own = sorted(project.recorder(connection).own_tables)
    if connection.in_transaction():
        connection.commit()
    with connection.begin():
        cursor = FormatCursor(connection.connection.dbapi_connection.cursor(),  # type: ignore[union-attr]
                              connection.dialect.paramstyle)
        try:
            digest = fingerprint(cursor, connection.dialect.name, schemas, own)
        finally:
            cursor.close()
    taken = TakenFingerprint(stored_value(digest, [name for name in schemas if name is not None]),
                             clean_fingerprints(project, connection, revision), None)
    if not check or taken.value in taken.known.values:
        taken.clean = True
    elif differences:
        taken.clean = not live_differences(project, connection, expected)
    return taken


@dataclass
class CleanFingerprints:
    """Catalog fingerprints the full drift check found matching the migrations up to one revision.

    Kept in the project's cache (`schemashift.history.cache.compiled_path`), named by
    the chain key of the revision (every revision, parent and checksum up to it),
    the database, its server version and the environment's schema, among the files
    of this schemashift and SQLAlchemy: equal catalog facts then mean the same answer.
    """

    path: Path | None
    values: list[str] = field(default_factory=list)

    def add(self, value: str) -> None:
        """Note `value` as clean (the newest `KEPT_CLEAN` are kept); best effort."""
        if self.path is None or value in self.values:
            return
        self.values = [*self.values, value][-KEPT_CLEAN:]
        cache.store_compiled(self.path, {"values": self.values})


#: Clean fingerprints kept per revision (a few databases built alike, e.g. by different server settings).
KEPT_CLEAN = 8


def clean_fingerprints(project: Project, connection: sa.Connection, revision: str) -> CleanFingerprints:
    """The fingerprints known clean at `revision` for this database (`CleanFingerprints`)."""
    from schemashift.runtime.fingerprint import portable

    history = project.history()
    if history.cache_dir is None or revision not in history or not portable(connection.dialect.name):
        return CleanFingerprints(None)  # no cache, or each database's fingerprint is its own
    chain = cache.chain_keys(history)[history.index(revision)]
    server = ".".join(str(part) for part in connection.dialect.server_version_info or ())
    scope = hashlib.sha256(json.dumps([chain, connection.dialect.name, server, project.env.schema]).encode())
    path = cache.compiled_path(Path(history.cache_dir), f"clean-{scope.hexdigest()[:24]}")
    data = cache.load_compiled(path)
    values = data.get("values") if data is not None else None
    kept = [value for value in values if isinstance(value, str)] if isinstance(values, list) else []
    return CleanFingerprints(path, kept)


__all__ = [
    "CleanFingerprints", "TakenFingerprint", "clean_fingerprints", "compare", "compare_schemas", "fingerprinted",
    "live_differences", "live_operations", "live_schemas", "read_before_check", "reflect_live", "remember_fingerprint",
    "schemas_to_compare", "take_fingerprint",
]
