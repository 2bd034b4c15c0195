"""The local, untracked cache of a project: a stat index of the migration files and replayed schema states.

It lives in ``.schemashift-cache/`` beside the configuration (a ``.gitignore``
there keeps it out of version control), one sub-folder per migrations folder.
Everything in it can be deleted at any time; it only saves work:

- the stat index remembers, per migration file, its size and mtime with the
  revision, parent, message and checksum found when it was last read, so an
  unchanged file need not be hashed or imported again (entries written less than
  `RACY_NS` after the file changed are re-hashed once, as git does);
- state files hold the schema after a revision, pickled, named by a hash of the
  chain up to that revision (ids, parents and checksums) and kept in a folder
  named by the schemashift version and the schema model's source, so a state is
  used only for exactly the migrations and code that produced it;
- ``code/pack`` holds the migration modules compiled (`schemashift.history.loader.load_migration`),
  each checked against its file's content before use, in one file written once when the
  process ends (`CodePack`: a first command on thousands of migrations creates one file,
  not thousands);
- compiled-script files (JSON, `store_compiled`) hold the offline SQL of each
  up-step under the same chain hashes, in a folder named by a hash of every
  schemashift source file and SQLAlchemy's version (`source_key`); their
  content is `schemashift.planning.offline`'s business.

A state lookup also starts from the committed head snapshot (`schemashift.head`,
`schemashift.history.snapshot`) that a `History` loaded with its manifest carries:
a checkpoint at its revision, so a clean checkout replays nothing up to there.

What one process learnt about a loaded chain (its chain keys and the states
replayed so far) is kept in the `ChainMemo` that each `History` holds in its
`memo` field; only this module reads and fills it.

This module imports only the standard library at start-up (the fast paths use
the index); the state functions import the schema model when called.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from schemashift.history.chain import History
    from schemashift.model.schema import Schema

CACHE_NAME = ".schemashift-cache"
INDEX_NAME = "index.json"
INDEX_FORMAT = 2
STATE_FORMAT = 2
#: Stat entries are trusted only for files last changed this long before the index was written.
RACY_NS = 3_000_000_000
#: A replay this long also leaves a state every `CHECKPOINT` revisions.
CHECKPOINT = 500
#: State files kept per migrations folder (oldest removed first).
MAX_STATES = 48


def folder_cache(root: Path | str, folder: Path | str) -> Path:
    """The cache sub-folder of migrations `folder` under project `root` (not created)."""
    key = hashlib.sha256(str(Path(folder).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(root) / CACHE_NAME / key


def code_folder(directory: Path | None) -> Path | None:
    """Where a migrations folder's compiled modules are kept (see `schemashift.history.loader`), in its cache folder."""
    if directory is None:
        return None
    try:
        _prepare(directory)  # the cache root's .gitignore, before anything is written below it
    except OSError:
        return None  # e.g. a read-only project: compile every time
    return directory / "code"


class CodePack:
    """The compiled modules of a ``code/`` folder (`code_folder`), by migration file name, in its file ``pack``.

    Read on first use; what this process adds is merged with the file as it is
    then and written once, atomically, when the interpreter exits (`save`); two
    processes saving at once only lose each other's additions (recompiled next time).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._entries: dict[str, bytes] | None = None
        self.added: dict[str, bytes] = {}

    def get(self, name: str) -> bytes | None:
        """The stored bytes of `name` (None: none)."""
        if self._entries is None:
            self._entries = self._read()
        return self.added.get(name, self._entries.get(name))

    def put(self, name: str, data: bytes) -> None:
        """Keep `data` for `name`; written by `save`, at exit at the latest."""
        if not self.added:
            import atexit

            atexit.register(self.save)
        self.added[name] = data

    def save(self) -> None:
        """Write what was added (best effort)."""
        if not self.added:
            return
        import marshal

        entries = {**self._read(), **self.added}
        self.added = {}
        try:
            _prepare(self.folder)
            write_atomic(self.folder / "pack", marshal.dumps(entries))
        except (OSError, ValueError):
            return  # a read-only project: compile next time
        self._entries = entries

    def entries_on_disk(self) -> dict[str, bytes]:
        """What the pack file holds now (empty when missing or unreadable)."""
        return self._read()

    def _read(self) -> dict[str, bytes]:
        import marshal

        try:
            entries = marshal.loads((self.folder / "pack").read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            return {}
        return entries if isinstance(entries, dict) else {}


@functools.cache
def code_pack(folder: Path) -> CodePack:
    """The one `CodePack` of `folder` in this process."""
    return CodePack(folder)


def _prepare(directory: Path) -> None:
    """Create `directory` and the cache root's ``.gitignore``; never the project folder the cache lives in (one
    deleted meanwhile, e.g. a test's temporary project before an exit hook saves, stays deleted: OSError)."""
    root = next((folder for folder in (directory, *directory.parents) if folder.name == CACHE_NAME), directory)
    if not root.parent.is_dir():
        raise FileNotFoundError(f"no project folder {root.parent}")
    directory.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# schemashift's local cache: safe to delete, never commit\n*\n", encoding="utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename (no fsync: a cache)."""
    import secrets

    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def load_pickled(path: Path) -> object | None:
    """The object saved at `path` by `store_pickled`; None when missing or damaged (a damaged file is removed)."""
    import pickle

    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        value: object = pickle.loads(data)  # our own cache beside the (executed) migration files
        return value
    except Exception:  # noqa: BLE001 - a damaged or foreign file is a cache miss
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return None


def store_pickled(path: Path, value: object) -> None:
    """Save `value` (pickled) at `path`, best effort."""
    import pickle

    try:
        _prepare(path.parent)
        write_atomic(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        return  # unwritable or unpicklable: work without the cache


# -- the stat index ------------------------------------------------------------


class IndexEntry(NamedTuple):
    """What was found in one migration file with the given size, mtime and ctime; `message` None: not known.

    The ctime (inode change time) cannot be set back by hand as the mtime can (``touch -r``): an edit that keeps
    a file's size and restores its mtime still changes it, so such a file is hashed again.
    """

    size: int
    mtime_ns: int
    checksum: str
    revision: str
    parent: str | None
    message: str | None
    ctime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result, checksum: str, revision: str, parent: str | None,
           message: str | None) -> IndexEntry:
        """The entry for a file with `stat` and what reading it found."""
        return cls(stat.st_size, stat.st_mtime_ns, checksum, revision, parent, message, stat.st_ctime_ns)

    @property
    def changed_ns(self) -> int:
        """When the file last changed, by either clock."""
        return max(self.mtime_ns, self.ctime_ns)


class StatIndex:
    """Migration file name -> `IndexEntry`, loaded from and saved to a cache folder."""

    def __init__(self, directory: Path | None, entries: dict[str, IndexEntry] | None = None,
                 written_ns: int = 0) -> None:
        self.directory = directory
        self.entries: dict[str, IndexEntry] = entries or {}
        self.written_ns = written_ns
        self.changed = False

    @classmethod
    def load(cls, directory: Path | None) -> StatIndex:
        """The index saved in `directory`; empty when there is none or it is unreadable."""
        if directory is None:
            return cls(None)
        try:
            data = json.loads((directory / INDEX_NAME).read_bytes())
            if data.get("format") != INDEX_FORMAT:
                return cls(directory)
            entries = {name: IndexEntry(*values) for name, values in data["entries"].items()}
            return cls(directory, entries, int(data["written_ns"]))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return cls(directory)

    def trusted(self, name: str, stat: os.stat_result) -> IndexEntry | None:
        """The entry of `name` when the file's size, mtime and ctime say it is unchanged (and not racily so)."""
        entry = self.entries.get(name)
        if entry is None or (entry.size, entry.mtime_ns, entry.ctime_ns) != (stat.st_size, stat.st_mtime_ns,
                                                                             stat.st_ctime_ns):
            return None
        if entry.changed_ns + RACY_NS > self.written_ns:
            return None
        return entry

    def put(self, name: str, entry: IndexEntry) -> None:
        """Record `entry` for `name`."""
        if self.entries.get(name) != entry:
            self.entries[name] = entry
            self.changed = True

    def keep_only(self, names: Iterable[str]) -> None:
        """Forget files that are gone."""
        wanted = set(names)
        for name in [name for name in self.entries if name not in wanted]:
            del self.entries[name]
            self.changed = True

    def save(self) -> None:
        """Write the index when it changed, or when saving now makes racy entries trusted.

        Callers verify every entry they use (by stat or by hash) before saving.
        """
        if self.directory is None:
            return
        now = now_ns()
        ripe = any(self.written_ns < entry.changed_ns + RACY_NS <= now for entry in self.entries.values())
        if not (self.changed or ripe):
            return
        data = {"format": INDEX_FORMAT, "written_ns": now,
                "entries": {name: [e.size, e.mtime_ns, e.checksum, e.revision, e.parent, e.message, e.ctime_ns]
                            for name, e in sorted(self.entries.items())}}
        try:
            _prepare(self.directory)
            write_atomic(self.directory / INDEX_NAME, json.dumps(data, separators=(",", ":")).encode("utf-8"))
        except OSError:
            return  # a read-only checkout: work without the cache
        self.written_ns = now
        self.changed = False


def forget_index(directory: Path) -> None:
    """Remove the stat index of `directory` (best effort): the next run hashes every file again."""
    with contextlib.suppress(OSError):
        (directory / INDEX_NAME).unlink(missing_ok=True)


def now_ns() -> int:
    """The wall clock in nanoseconds (comparable with file mtimes)."""
    import time

    return time.time_ns()



def read_mark(directory: Path, name: str) -> str | None:
    """The short text saved under `name` in `directory` (None when absent)."""
    try:
        return (directory / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_mark(directory: Path, name: str, text: str) -> None:
    """Save a short text under `name` in `directory` (best effort)."""
    try:
        _prepare(directory)
        write_atomic(directory / name, text.encode("utf-8"))
    except OSError:
        pass


# -- replayed states -----------------------------------------------------------

@functools.cache
def code_key() -> str:
    """A short hash of the schemashift version and of the source of the schema model and the operations
    (every module of both packages: what a replay runs): states that other code produced are not used."""
    from schemashift.version import __version__

    package = Path(__file__).resolve().parents[1]  # schemashift/, this module being in schemashift/history/
    digest = hashlib.sha256(f"{__version__}/{STATE_FORMAT}".encode())
    for path in sorted([*(package / "model").rglob("*.py"), *(package / "operations").rglob("*.py")]):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def chain_keys(history: History) -> list[str]:
    """For each position of the chain, a hash of every revision, parent and checksum up to it."""
    cached = history.memo.keys
    if cached is not None and len(cached) == len(history.chain):
        return cached
    keys = chain_keys_of((m.revision, m.parent, m.checksum) for m in history.chain)
    history.memo.keys = keys
    return keys


def chain_keys_of(links: Iterable[tuple[str, str | None, str]]) -> list[str]:
    """`chain_keys` of ``(revision, parent, checksum)`` triples in chain order (e.g. manifest entries)."""
    keys: list[str] = []
    previous = b""
    for revision, parent, checksum in links:
        line = f"{revision} {parent or '-'} {checksum}\n".encode()
        previous = hashlib.sha256(previous + line).digest()
        keys.append(previous.hex()[:40])
    return keys


@dataclass(frozen=True)
class State:
    """The schema after a revision and every database schema name used up to it."""

    schema: Schema
    schema_names: frozenset[str | None]


@dataclass
class ChainMemo:
    """What this process learnt about one loaded chain; each `History` holds one (`History.memo`).

    Only this module reads and fills it: `keys` are the `chain_keys` (recomputed
    when the chain's length changed), `states` the states after chain positions
    replayed or loaded so far, `names` the schema names up to positions whose
    state was not needed (`note_schema_names`).
    """

    keys: list[str] | None = None
    states: dict[int, State] = field(default_factory=dict)
    names: dict[int, frozenset[str | None]] = field(default_factory=dict)


def state_at(history: History, revision: str | None, *, store: bool = True) -> Schema:
    """The schema the migrations produce up to `revision` (None: the empty base).

    `store` False keeps a state that had to be replayed in this process only.
    """
    return _state(history, history.index(revision), store=store).schema


def schema_names_through(history: History, revision: str | None) -> frozenset[str | None]:
    """Every database schema (None: the default one) that a revision up to `revision` put something in."""
    position = history.index(revision)
    known = history.memo.names.get(position)
    return known if known is not None else _state(history, position, store=True).schema_names


def note_schema_names(history: History, revision: str, names: frozenset[str | None]) -> None:
    """Note `names` as `schema_names_through` `revision`, known from a file kept with them (a fresh build's),
    so that asking for them loads no state."""
    history.memo.names[history.index(revision)] = names


def advance(history: History, revision: str, schema: Schema) -> None:
    """Note `schema` as the state after `revision` when a caller replayed it from the known state of its parent."""
    position = history.index(revision)
    memo = _memo(history)
    previous = memo.get(position - 1) if position > 0 else _base()
    if previous is not None and position not in memo:
        memo[position] = State(schema, names_after(previous, schema))


def persist(history: History, revision: str | None) -> None:
    """Store the state after `revision` in the cache folder when this process knows it."""
    position = history.index(revision)
    state = _memo(history).get(position)
    if state is not None and position >= 0:
        _store(history, chain_keys(history)[position], state)


def _memo(history: History) -> dict[int, State]:
    return history.memo.states


@functools.cache
def _base() -> State:
    """The state before any migration (one shared instance)."""
    from schemashift.model.schema import Schema

    return State(Schema(), frozenset())


def _state(history: History, position: int, *, store: bool) -> State:
    """The state after chain position `position` (-1: base): memo, then the nearest stored state or the committed
    head snapshot (`_checkpoint`) at or before it, then replay from there."""
    from schemashift.operations import resolve_all

    memo = _memo(history)
    if position in memo:
        return memo[position]
    if position < 0:
        return _base()
    keys = chain_keys(history)
    directory = _states_dir(history)
    stored = set(os.listdir(directory)) if directory is not None and directory.is_dir() else set()
    start, state = -1, _base()
    checkpoint = _checkpoint(history)
    for candidate in range(position, -1, -1):
        if candidate in memo:
            start, state = candidate, memo[candidate]
            break
        loaded = None
        if f"{keys[candidate]}.pickle" in stored:
            loaded = _load(directory / f"{keys[candidate]}.pickle")  # type: ignore[operator]
        if loaded is None and candidate == checkpoint:
            loaded = _checkpoint_state(history)
        if loaded is not None:
            start, state = candidate, loaded
            memo[candidate] = loaded
            break
    for offset in range(start + 1, position + 1):
        migration = history.chain[offset]
        _, schema = resolve_all(migration.operations, state.schema)
        state = State(schema, names_after(state, schema))
        if store and offset != position and (offset + 1) % CHECKPOINT == 0:
            memo[offset] = state
            _store(history, keys[offset], state)
    memo[position] = state
    if store and position > start:
        _store(history, keys[position], state)
    return state


def _checkpoint(history: History) -> int | None:
    """The position of the committed head snapshot of `history` (`History.snapshot`, set by
    `manifest.load_history` only when the chain is exactly the manifest's), or None; its file is not run yet."""
    source = history.snapshot
    revision = source.revision() if source is not None else None
    return history.index(revision) if revision is not None and revision in history else None


def _checkpoint_state(history: History) -> State | None:
    """The state of the committed head snapshot of `history` (its file run now); None when it is not usable."""
    source = history.snapshot
    found = source.get() if source is not None else None
    return found.state if found is not None else None


def names_after(previous: State, schema: Schema) -> frozenset[str | None]:
    """The schema names after `previous` moved to `schema`: those of `previous` and of what `schema` added (a key
    holds its schema: only new keys matter)."""
    before = previous.schema
    added = [schema.tables[key].schema for key in schema.tables.keys() - before.tables.keys()]
    added += [schema.sequences[key].schema for key in schema.sequences.keys() - before.sequences.keys()]
    new = set(added) - previous.schema_names
    return previous.schema_names | new if new else previous.schema_names


def _states_dir(history: History) -> Path | None:
    directory = history.cache_dir
    return None if directory is None else Path(directory) / f"states-{code_key()}"


def _load(path: Path) -> State | None:
    state = load_pickled(path)
    return state if isinstance(state, State) else None


def _store(history: History, key: str, state: State) -> None:
    directory = _states_dir(history)
    if directory is None:
        return
    store_pickled(directory / f"{key}.pickle", state)
    with contextlib.suppress(OSError):
        _prune(directory)


def _prune(directory: Path) -> None:
    files = [entry for entry in os.scandir(directory) if entry.name.endswith(".pickle")]
    if len(files) <= MAX_STATES:
        return
    files.sort(key=lambda entry: entry.stat().st_mtime_ns)
    for entry in files[: len(files) - MAX_STATES]:
        Path(entry.path).unlink(missing_ok=True)


# -- compiled offline scripts ----------------------------------------------------

#: Bumped when the layout of compiled-script files changes.
COMPILED_FORMAT = 1

@functools.cache
def source_key() -> str:
    """A short hash of every schemashift source file and of SQLAlchemy's version (what compiled SQL depends on).

    Reads the files without importing them: the cached `--sql` path imports no SQLAlchemy.
    """
    from importlib.util import find_spec

    package = Path(__file__).resolve().parents[1]  # schemashift/, this module being in schemashift/history/
    digest = hashlib.sha256(f"compiled/{COMPILED_FORMAT}".encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    spec = find_spec("sqlalchemy")
    if spec is not None and spec.origin:
        digest.update(Path(spec.origin).read_bytes())  # holds __version__
    return digest.hexdigest()[:12]


def compiled_path(directory: Path, name: str, suffix: str = "json") -> Path:
    """The compiled-script file `name` of the cache folder `directory` (for this code; see `source_key`)."""
    return directory / f"compiled-{source_key()}" / f"{name}.{suffix}"


def load_compiled(path: Path) -> dict[str, object] | None:
    """The data saved at `path` by `store_compiled`; None when missing, damaged or of another format."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != COMPILED_FORMAT:
        return None
    return data


def store_compiled(path: Path, data: dict[str, object]) -> None:
    """Save `data` (JSON) at `path`, removing compiled scripts of other code versions (best effort)."""
    import shutil

    try:
        _prepare(path.parent)
        write_atomic(path, json.dumps({**data, "format": COMPILED_FORMAT}, separators=(",", ":")).encode("utf-8"))
        for entry in os.scandir(path.parent.parent):
            if entry.name.startswith("compiled-") and entry.path != str(path.parent) and entry.is_dir():
                shutil.rmtree(entry.path, ignore_errors=True)
    except (OSError, TypeError, ValueError):
        return  # unwritable: work without the cache

