"""The committed head snapshot (`schemashift.head`): the schema at the end of the fresh prefix, as operations.

`schemashift.head` sits beside the manifest (`schemashift.sum`) and is committed
with the migrations. It lets a clean checkout (no ``.schemashift-cache/``, e.g.
a CI job) know the schema at a revision without importing and replaying every
migration: a fresh build (`schemashift.planning.fresh`), `generate` and any
other state lookup (`schemashift.history.cache`) start from it.

It is Python source like a migration file, but its name matches no migration
pattern (`schemashift.history.files.FILE_PATTERN`) and does not end in ``.py``, so
linters, type checkers and test runners leave it alone. Its header fields are
written with the migration renderer (`schemashift.operations.render`); its bulky
`messages` and `operations` are JSON lines in raw string literals, read by
`from_json` (`schemashift.operations.codec`), which `json` parses in C: many
times faster than compiling the same values as Python calls. Format 1 (every
value a call) is still read, and written when the operations cannot be written
as JSON exactly. It holds: `format`;
`code`, the `schemashift.history.cache.code_key` of the code that wrote it (a
snapshot of other code is not used); `manifest`, the manifest's ``h1:`` line it
stands for; `revision`, the end of the *fresh prefix* of the whole chain (the
migrations before the first that a fresh build cannot stand for: `fresh_prefix`);
`schema_names` through that revision; `messages` of every revision up to it; and
`operations` that create that schema from nothing (`diff(Schema(), state)`,
written only when replaying them gives exactly that state); and `compiled`, per
database the writer was told of, the SQL a fresh build runs for each operation
(JSON lines, decoded only for the database that runs), stamped `compiled_key`
with the `cache.source_key` of the code and SQLAlchemy that compiled it, so a
clean checkout's build compiles nothing (`sql_for`: ignored when schemashift or
SQLAlchemy differ). The last line is a sha256 of everything above it.

Reading is all or nothing: a snapshot that is missing, unreadable, malformed,
edited (checksum), from other code or for another manifest is None, silently,
and callers take the slow path, which is always right. `schemashift manifest`
writes it (`refresh`) and `generate` keeps it current (`advance`); every other
rewrite of the manifest rewrites or removes it. This module imports only the
standard library and the cache at start-up; the schema model, the operations
and the differ are imported by the functions that need them.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from schemashift.history import cache
from schemashift.history.files import checksum_of

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect
    from schemashift.history.chain import History
    from schemashift.history.loader import Migration
    from schemashift.model.schema import Schema
    from schemashift.operations import Operation

SNAPSHOT_NAME = "schemashift.head"
#: Bumped when the layout of the file changes: what `render` writes.
FORMAT = 2
#: The formats `parse` reads: 1 writes every value as Python calls (still written when the operations cannot be
#: written as JSON lines), 2 the messages and operations as JSON lines (`schemashift.operations.codec`).
FORMATS = (1, 2)
_CHECKSUM = re.compile(r"^# sha256: ([0-9a-f]{64})$")
_FIELD = r'^{name} = "([^"\\]*)"$'


# -- which migrations it can stand for -------------------------------------------


def buildable(operation: Operation) -> bool:
    """True when `operation` changes only the schema and is schemashift's own (a fresh build may stand for it)."""
    from schemashift.operations import is_extension

    return not operation.data_only and not is_extension(operation)


def fresh_prefix(path: Sequence[Migration]) -> list[Migration]:
    """The migrations of `path` before the first one a fresh build cannot stand for (a data migration or an
    extension's operation): they run as written."""
    prefix: list[Migration] = []
    for migration in path:
        if not all(buildable(operation) for operation in migration.operations):
            break
        prefix.append(migration)
    return prefix


# -- the file ----------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What `schemashift.head` holds (see the module docstring)."""

    code: str
    manifest: str
    revision: str
    schema_names: frozenset[str | None]
    messages: Mapping[str, str]
    operations: Sequence[Operation]
    #: The `cache.source_key` that compiled `compiled`.
    compiled_key: str | None = None
    #: Database name -> the statements of each operation, one JSON list of SQL texts per line (`sql_for`).
    compiled: Mapping[str, str] = field(default_factory=dict)

    def sql_for(self, name: str) -> list[list[str]] | None:
        """The SQL of each operation on database `name` (a `Dialect.registry_name`) when held and compiled by this
        code and SQLAlchemy (`cache.source_key`); else None: compile them."""
        from schemashift.operations.codec import from_json

        text = self.compiled.get(name)
        if text is None or self.compiled_key != cache.source_key():
            return None
        try:
            groups = from_json(text)
        except (ValueError, KeyError, TypeError):
            return None
        found: list[list[str]] = []
        for group in groups:
            if not isinstance(group, tuple) or not all(isinstance(sql, str) for sql in group):
                return None
            found.append(list(group))
        return found if len(found) == len(self.operations) else None

    @functools.cached_property
    def state(self) -> cache.State:
        """The schema after `revision` (its operations replayed from nothing) and its schema names."""
        from schemashift.model.schema import Schema
        from schemashift.operations import resolve_all

        return cache.State(resolve_all(list(self.operations), Schema())[1], self.schema_names)


def render(snapshot: Snapshot, file_format: int = FORMAT) -> str:
    """The text of `snapshot`, its checksum line last (MigrationError when an operation cannot be written).

    Format 2 writes the messages and the operations as JSON lines (`schemashift.operations.codec`), which read
    back many times faster than Python calls; when they cannot be written so, exactly, or `file_format` is 1, every
    value is a Python call, as in a migration file (format 1)."""
    from schemashift.operations.render import render_value

    names = sorted(snapshot.schema_names, key=lambda name: (name is not None, name or ""))
    operations = _json_lines(list(snapshot.operations)) if file_format == FORMAT else None
    messages = _json_lines(list(snapshot.messages.items())) if operations is not None else None
    json_note = ("\nThe messages and the operations are JSON lines, one per revision and per operation (see\n"
                 "schemashift.operations.codec).\n") if messages is not None else ""
    compiled_note = ("\nThe compiled SQL of each operation per database is ignored (and compiled again) under another\n"
                     "schemashift or SQLAlchemy.\n") if snapshot.compiled else ""
    body = (
        f'"""The schema at revision {snapshot.revision}: a snapshot of the migrations up to it.\n\n'
        "Written by `schemashift manifest` and kept current by `schemashift generate`; do not edit it. Commit it\n"
        "with the migrations: a fresh database is built from it without importing or replaying them. It is ignored\n"
        "(and the migrations replayed) when it does not match schemashift.sum or this schemashift.\n"
        f'{json_note}{compiled_note}"""\n'
        "from schemashift.migration import *  # noqa: F401,F403\n\n"
        f"format = {FORMAT if messages is not None else 1}\n"
        f"code = {render_value(snapshot.code)}\n"
        f"manifest = {render_value(snapshot.manifest)}\n"
        f"revision = {render_value(snapshot.revision)}\n"
        f"schema_names = {render_value(names)}\n"
    )
    if messages is not None and operations is not None:
        body += (f'messages = dict(from_json(r"""\n{messages}\n"""))\n\n'
                 f'operations = from_json(r"""\n{operations}\n""")\n')
    else:
        body += (f"messages = {render_value(dict(snapshot.messages))}\n\n"
                 f"operations = {render_value(list(snapshot.operations))}\n")
    if snapshot.compiled:
        texts = "".join(f'    {render_value(name)}: r"""\n{text}\n""",\n'
                        for name, text in sorted(snapshot.compiled.items()))
        body += f"\ncompiled_key = {render_value(snapshot.compiled_key)}\ncompiled = {{\n{texts}}}\n"
    return body + f"# sha256: {checksum_of(body.encode('utf-8'))}\n"


def _json_lines(values: list[object]) -> str | None:
    """`values` as JSON lines (for a raw string literal) when they read back equal to them; else None."""
    from schemashift.operations.codec import from_json, to_json

    try:
        text = to_json(values)
        return text if '"""' not in text and from_json(text) == values else None
    except Exception:  # noqa: BLE001 - a value the codec cannot write (or read back): written as Python instead
        return None


def read(folder: Path | str, manifest_line: str) -> Snapshot | None:
    """The snapshot of `folder` when it is intact, from this code and stands for the manifest whose first line
    is `manifest_line`; else None (the caller replays the migrations)."""
    path = Path(folder) / SNAPSHOT_NAME
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return parse(text, manifest_line, path)


def parse(text: str, manifest_line: str, path: Path | str = SNAPSHOT_NAME) -> Snapshot | None:
    """The snapshot in `text` (see `read`); the header is checked before the file is run."""
    body = _sealed(text, manifest_line)
    if body is None:
        return None
    try:
        namespace: dict[str, object] = {"__name__": "_schemashift_head", "__file__": str(path)}
        exec(compile(body, str(path), "exec", dont_inherit=True), namespace)  # like a migration file
    except Exception:  # noqa: BLE001 - a broken snapshot is no snapshot
        return None
    return _checked(namespace, manifest_line)


def _sealed(text: str, manifest_line: str) -> str | None:
    """`text` above its checksum line when that matches and its `code` and `manifest` are this code's and
    `manifest_line` (read from the text, not run); else None. Line endings count as ``\n`` (a CRLF checkout)."""
    body, _, last = (text.replace("\r\n", "\n") if "\r" in text else text).rstrip("\n").rpartition("\n")
    body += "\n"
    found = _CHECKSUM.match(last.strip())
    if found is None or found.group(1) != checksum_of(body.encode("utf-8")):
        return None
    if _field(body, "code") != cache.code_key() or _field(body, "manifest") != manifest_line:
        return None
    return body


def _field(body: str, name: str) -> str | None:
    found = re.search(_FIELD.format(name=name), body, re.MULTILINE)
    return None if found is None else found.group(1)


def _checked(namespace: dict[str, object], manifest_line: str) -> Snapshot | None:
    """The `Snapshot` of a run file's namespace when every field has its type, else None."""
    from schemashift.operations import Operation

    revision, names, messages, operations = (namespace.get(key) for key in
                                             ("revision", "schema_names", "messages", "operations"))
    if (namespace.get("format") not in FORMATS or not isinstance(revision, str) or not isinstance(names, list)
            or not all(name is None or isinstance(name, str) for name in names)
            or not isinstance(messages, dict) or revision not in messages
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in messages.items())
            or not isinstance(operations, list) or not all(isinstance(op, Operation) for op in operations)):
        return None
    compiled_key, compiled = namespace.get("compiled_key"), namespace.get("compiled", {})
    if not isinstance(compiled, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in compiled.items()):
        return None
    return Snapshot(cache.code_key(), manifest_line, revision, frozenset(names), messages, operations,
                    compiled_key if isinstance(compiled_key, str) else None, compiled)


class Source:
    """The snapshot that should hold for a loaded chain: `folder`'s, for `manifest_line`; read once, on first use.

    `schemashift.history.manifest.load_history` sets one on a `History` whose chain is exactly its manifest's.
    """

    def __init__(self, folder: Path, manifest_line: str) -> None:
        self.folder = folder
        self.manifest_line = manifest_line
        self._text: str | None = None
        self._peeked: tuple[str | None] | None = None
        self._read = False
        self._snapshot: Snapshot | None = None

    def get(self) -> Snapshot | None:
        """The snapshot (None: none usable); the file is run once, on the first call."""
        if not self._read:
            text = self._file_text()
            self._snapshot, self._read = parse(text, self.manifest_line, self.folder / SNAPSHOT_NAME), True
            self._text = None
        return self._snapshot

    def revision(self) -> str | None:
        """The snapshot's revision, from its text alone when it has not been run yet (checksum, code and manifest
        checked): a caller that may find a nearer state elsewhere need not run the file. None: no snapshot."""
        if self._read:
            return self._snapshot.revision if self._snapshot is not None else None
        if self._peeked is None:
            body = _sealed(self._file_text(), self.manifest_line)
            self._peeked = (_field(body, "revision") if body is not None else None,)
        return self._peeked[0]

    def _file_text(self) -> str:
        if self._text is None:
            try:
                self._text = (self.folder / SNAPSHOT_NAME).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                self._text = ""
        return self._text


def usable(history: History) -> Snapshot | None:
    """The snapshot of `history` (set by `manifest.load_history`) when its revision is in the chain."""
    source = history.snapshot
    found = source.get() if source is not None else None
    return found if found is not None and found.revision in history else None


# -- writing -----------------------------------------------------------------------


def of_state(manifest_line: str, revision: str, state: cache.State, messages: Mapping[str, str],
             dialects: Sequence[Dialect] = ()) -> Snapshot | None:
    """The snapshot of `state` at `revision`, with its statements on `dialects` (`compiled_for`); None when the
    differ's operations do not replay to exactly it."""
    from schemashift.autodetect.differ import diff
    from schemashift.model.schema import Schema
    from schemashift.operations import resolve_all

    operations = diff(Schema(), state.schema)
    if resolve_all(operations, Schema())[1] != state.schema:
        return None
    found = Snapshot(cache.code_key(), manifest_line, revision, state.schema_names, dict(messages), operations)
    return compiled_for(found, dialects)


def compiled_for(snapshot: Snapshot, dialects: Sequence[Dialect]) -> Snapshot:
    """`snapshot` holding the statements of a fresh build from its operations on each of `dialects` (by
    `Dialect.registry_name`, stamped with `cache.source_key`): those of a database only when all of them are plain
    SQL that runs in a transaction there (where DDL is transactional), compiled as the build compiles them
    (`compile_in_order`)."""
    compiled = {dialect.registry_name: text for dialect in dialects
                if (text := _statement_lines(dialect, snapshot.operations)) is not None}
    return replace(snapshot, compiled_key=cache.source_key() if compiled else None, compiled=compiled)


def _statement_lines(dialect: Dialect, operations: Sequence[Operation]) -> str | None:
    """The SQL of each of `operations` on `dialect`, one JSON list a line; None when one cannot be stored."""
    from schemashift.dialects.compiling import compile_in_order
    from schemashift.operations.codec import to_json
    from schemashift.operations.statement import Statement

    groups: list[tuple[str, ...]] = []
    try:
        for operation, statements in compile_in_order(dialect, operations):
            if not all(one == Statement(operation, sql=one.sql) and one.sql is not None for one in statements):
                return None  # a safe-mode form, a callable, ...: the run compiles it
            groups.append(tuple(one.sql for one in statements if one.sql is not None))
        text = to_json(groups)
    except Exception:  # noqa: BLE001 - anything that does not compile here (or outside a transaction): the run compiles
        return None
    return text if '"""' not in text else None


def build(history: History, manifest_line: str, dialects: Sequence[Dialect] = ()) -> Snapshot | None:
    """The snapshot of a loaded chain (imports every migration of its fresh prefix; replays through the cache),
    with its statements on `dialects`; None when its first migration is not buildable (or it is empty) or the
    differ cannot say the state."""
    prefix = fresh_prefix(history.chain)
    if not prefix:
        return None
    revision = prefix[-1].revision
    state = cache.State(cache.state_at(history, revision), cache.schema_names_through(history, revision))
    return of_state(manifest_line, revision, state, {m.revision: m.message for m in prefix}, dialects)


def write(folder: Path | str, snapshot: Snapshot | None) -> Path | None:
    """Write `snapshot` into `folder` atomically, or remove the file when None (or when it cannot be rendered)."""
    from schemashift.errors import MigrationError

    path = Path(folder) / SNAPSHOT_NAME
    try:
        text = render(snapshot) if snapshot is not None else None
    except MigrationError:
        text = None
    if text is None:
        remove(folder)
        return None
    cache.write_atomic(path, text.encode("utf-8"))
    return path


def remove(folder: Path | str) -> None:
    """Remove the snapshot of `folder` (best effort)."""
    with contextlib.suppress(OSError):
        (Path(folder) / SNAPSHOT_NAME).unlink(missing_ok=True)


def refresh(folder: Path | str, history: History, manifest_line: str,
            dialects: Sequence[Dialect] = ()) -> Snapshot | None:
    """Write the snapshot of `history` (the whole folder, loaded) for the manifest whose first line is
    `manifest_line`, with its statements on `dialects`, or remove it when there is none; the snapshot written,
    None when removed."""
    found = build(history, manifest_line, dialects)
    return found if write(folder, found) is not None else None


def advance(folder: Path | str, old_line: str, new_line: str, migration: Migration,
            before: Schema | None = None, dialects: Sequence[Dialect] = ()) -> bool:
    """Keep the snapshot current after `migration` was appended to the manifest (first line `old_line`, now
    `new_line`), without loading the other migrations.

    When the old snapshot was valid and stood at `migration`'s parent (the old head) the new one stands at
    `migration` if it is buildable (its state: `before`, the schema at the parent when the caller knows it,
    else the old snapshot's, plus its operations); a non-buildable migration, or an old snapshot before the old
    head, leaves it at the old revision with the new manifest line. False when there was no valid old snapshot:
    the file is left as it is, ignored (it names another manifest) until rewritten (`refresh`). The new
    snapshot holds its statements on `dialects`, compiled anew.
    """
    from schemashift.operations import resolve_all

    old = read(folder, old_line)
    if old is None:
        return False
    if old.revision != migration.parent or not all(buildable(op) for op in migration.operations):
        write(folder, compiled_for(replace(old, manifest=new_line), dialects))
        return True
    start = cache.State(before, old.schema_names) if before is not None else old.state
    schema = resolve_all(list(migration.operations), start.schema)[1]
    state = cache.State(schema, cache.names_after(start, schema))
    messages = {**old.messages, migration.revision: migration.message}
    write(folder, of_state(new_line, migration.revision, state, messages, dialects))
    return True


__all__ = ["FORMAT", "FORMATS", "SNAPSHOT_NAME", "Snapshot", "Source", "advance", "build", "buildable", "compiled_for",
           "fresh_prefix", "of_state", "parse", "read", "refresh", "remove", "render", "usable", "write"]
