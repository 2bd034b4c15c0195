"""Migration files on disk: loading one, the revision chain of a folder, writing new ones.

A migrations folder holds one Python module per revision, named
``0001_create_users.py``; each names its `revision` and its `parent`. `History`
checks that they form one straight line (no forks, no duplicates, one root) and
resolves targets such as ``head``, ``base``, ``-1`` or a revision prefix.
`rebase` turns a forked folder (two branches merged in git) back into one line.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib.util
import marshal
import os
import re
import secrets
import shutil
import sys
import tempfile
import traceback
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import CodeType
from typing import Callable, Iterator, Sequence

from schemashift.history import cache
from schemashift.history import manifest
from schemashift.errors import MigrationError, RevisionError, SchemashiftError
from schemashift.history.manifest import FILE_PATTERN, checksum_of
from schemashift.operations import Operation, resolve_all
from schemashift.operations.render import render_migration
#: Shortest revision prefix accepted as a target.
MIN_PREFIX = 4
_SLUG_LENGTH = 40
_RELATIVE = re.compile(r"^([+-])(\d+)$")


class Migration:
    """One migration file: ids, path and checksum; `message` and `operations` may be loaded on first use.

    `Migration.lazy` makes one from what the manifest or the stat index already
    knows; its module is imported only when its message or operations are read,
    and must still have the expected revision, parent and checksum then.
    """

    __slots__ = ("revision", "parent", "path", "checksum", "_message", "_operations", "code_cache", "_replaces")

    def __init__(self, revision: str, parent: str | None, message: str, operations: list[Operation], path: Path,
                 checksum: str, replaces: Sequence[str] = ()) -> None:
        self._replaces: tuple[str, ...] | None = tuple(replaces)
        self.revision = revision
        self.parent = parent
        self.path = path
        self.checksum = checksum
        self._message: str | None = message
        self._operations: list[Operation] | None = operations
        self.code_cache: Path | None = None  #: where `load_migration` keeps the compiled module, if anywhere

    @classmethod
    def lazy(cls, revision: str, parent: str | None, path: Path, checksum: str, message: str | None = None,
             code_cache: Path | None = None) -> Migration:
        """A migration whose module is imported when its operations (or unknown message) are first needed."""
        migration = cls(revision, parent, "", [], path, checksum)
        migration._message, migration._operations, migration.code_cache = message, None, code_cache
        migration._replaces = None
        return migration

    @property
    def loaded(self) -> bool:
        """True once the operations are in memory."""
        return self._operations is not None

    @property
    def message(self) -> str:
        """What the migration does."""
        if self._message is None:
            self._load()
        return self._message  # type: ignore[return-value]

    @message.setter
    def message(self, value: str) -> None:
        self._message = value

    @property
    def operations(self) -> list[Operation]:
        """The migration's operations (its module is imported on first use)."""
        if self._operations is None:
            self._load()
        return self._operations  # type: ignore[return-value]

    @operations.setter
    def operations(self, value: list[Operation]) -> None:
        self._operations = value

    @property
    def replaces(self) -> tuple[str, ...]:
        """The revisions this (squashed) migration stands for; empty for an ordinary migration."""
        if self._replaces is None:
            self._load()
        return self._replaces  # type: ignore[return-value]

    def _load(self) -> None:
        loaded = load_migration(self.path, self.code_cache)
        if (loaded.revision, loaded.parent, loaded.checksum) != (self.revision, self.parent, self.checksum):
            raise MigrationError(f"{self.path.name} changed while schemashift was running; run the command again")
        self._message, self._operations, self._replaces = loaded.message, loaded.operations, loaded.replaces

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Migration):
            return NotImplemented
        return (self.revision, self.parent, self.path, self.checksum) == (other.revision, other.parent, other.path,
                                                                          other.checksum)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Migration {self.revision} {self.path.name}>"


# -- loading one file -----------------------------------------------------


def load_migration(path: Path | str, code_cache: Path | None = None) -> Migration:
    """Import the migration file at `path` (MigrationError when it is not usable).

    With `code_cache` (a folder of the project cache) the compiled module is kept
    there for the next time (see `_compiled`).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MigrationError(f"{path.name}: cannot read: {exc.strerror or exc}") from None
    namespace = _execute(path, data, code_cache)
    revision = _required(namespace, path, "revision", str)
    if not revision.strip() or not re.fullmatch(r"[\w.-]+", revision):
        raise MigrationError(f"{path.name}: `revision` must be a non-empty id of letters and digits, got {revision!r}")
    parent = _required(namespace, path, "parent", (str, type(None)))
    message = namespace.get("message", "")
    if not isinstance(message, str):
        raise MigrationError(f"{path.name}: `message` must be a string, got {type(message).__name__}")
    operations = _required(namespace, path, "operations", (list, tuple))
    for number, operation in enumerate(operations, start=1):
        if not isinstance(operation, Operation):
            raise MigrationError(
                f"{path.name}: operation {number} is a {type(operation).__name__}, not an operation "
                "(CreateTable, AddColumn, RunPython, …)"
            )
    replaces = namespace.get("replaces", ())
    if not isinstance(replaces, (list, tuple)) or not all(isinstance(r, str) and r for r in replaces):
        raise MigrationError(f"{path.name}: `replaces` must be a list of revision ids")
    return Migration(revision, parent, message, list(operations), path, checksum_of(data), replaces)


def _execute(path: Path, data: bytes, code_cache: Path | None = None) -> dict[str, object]:
    """Run the file as a fresh module under a unique name and return its namespace."""
    name = f"_schemashift_migration_{secrets.token_hex(8)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise MigrationError(f"{path.name}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        code = _compiled(path, data, code_cache)
        exec(code, module.__dict__)  # noqa: S102 - running the migration file is the point
    except SyntaxError as exc:
        where = f"{path.name}:{exc.lineno}" if exc.lineno else path.name
        raise MigrationError(f"{where}: syntax error: {_one_line(exc.msg)}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of user code
        raise MigrationError(f"{_location(path, exc)}: {type(exc).__name__}: {_one_line(str(exc))}") from None
    finally:
        sys.modules.pop(name, None)
    return module.__dict__


#: Flags of a hash-based ``.pyc`` checked against its source (PEP 552).
_CHECKED_HASH_PYC = 0b11


def _compiled(path: Path, data: bytes, code_cache: Path | None) -> CodeType:
    """`data` (the file's bytes) compiled, through an entry in `code_cache` when given.

    Compiling is most of loading thousands of migrations. An entry is a hash-based
    ``.pyc`` (PEP 552 layout) named after the file; it is used only when it holds
    this Python's magic number, the hash of exactly `data` and `path` as file name,
    so an edited, moved or copied file is compiled again and its entry replaced.
    Writing is best effort and atomic (concurrent processes each rename a whole file).
    """
    if code_cache is None:
        return compile(data, str(path), "exec", dont_inherit=True)
    entry = code_cache / f"{path.name}c"
    header = importlib.util.MAGIC_NUMBER + _CHECKED_HASH_PYC.to_bytes(4, "little") + importlib.util.source_hash(data)
    try:
        stored = entry.read_bytes()
        if stored.startswith(header):
            code = marshal.loads(memoryview(stored)[len(header):])
            if isinstance(code, CodeType) and code.co_filename == str(path):
                return code
    except (OSError, ValueError, EOFError, TypeError):
        pass  # no usable entry: compile
    code = compile(data, str(path), "exec", dont_inherit=True)
    with contextlib.suppress(OSError):  # a cache only
        entry.parent.mkdir(parents=True, exist_ok=True)
        cache.write_atomic(entry, header + marshal.dumps(code))
    return code


def _location(path: Path, exc: BaseException) -> str:
    """``file:line`` of the deepest frame of `exc` inside the migration file."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    return f"{path.name}:{line}" if line else path.name


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"


def _required(namespace: dict[str, object], path: Path, name: str, types: type | tuple[type, ...]) -> object:
    if name not in namespace:
        raise MigrationError(f"{path.name}: missing `{name} = …` at module level")
    value = namespace[name]
    if not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise MigrationError(f"{path.name}: `{name}` must be {expected}, got {type(value).__name__}")
    return value


# -- the chain ------------------------------------------------------------


@dataclass
class History:
    """The migrations of a folder in order, base to head (one straight line)."""

    folder: Path
    chain: list[Migration] = field(default_factory=list)
    _positions: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: Where replayed states are cached (`schemashift.history.cache`); None: not cached on disk.
    cache_dir: Path | None = field(default=None, init=False, repr=False, compare=False)
    #: How `schemashift.sum` compared when loaded through `manifest.load_history` (fresh, stale, missing, created).
    manifest_state: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._positions = {migration.revision: position for position, migration in enumerate(self.chain)}

    @classmethod
    def load(cls, folder: Path | str) -> History:
        """Load and check every migration file of `folder` (missing folder: empty history)."""
        return cls.of(load_all(folder), folder)

    @classmethod
    def of(cls, migrations: Sequence[Migration], folder: Path | str = ".") -> History:
        """Check that `migrations` form one line and order them from base to head."""
        return cls(Path(folder), _order(list(migrations)))

    # -- lookups

    @property
    def head(self) -> str | None:
        """The newest revision, None when there is none."""
        return self.chain[-1].revision if self.chain else None

    @property
    def revisions(self) -> list[str]:
        """Revision ids from base to head."""
        return [migration.revision for migration in self.chain]

    def get(self, revision: str) -> Migration | None:
        """The migration with the full id `revision`, or None."""
        position = self._positions.get(revision)
        return None if position is None else self.chain[position]

    def __getitem__(self, revision: str) -> Migration:
        found = self.get(revision)
        if found is None:
            raise RevisionError(f"unknown revision {revision!r}")
        return found

    def __contains__(self, revision: object) -> bool:
        return revision in self._positions

    def __iter__(self) -> Iterator[Migration]:
        return iter(self.chain)

    def __len__(self) -> int:
        return len(self.chain)

    def index(self, revision: str | None) -> int:
        """Position of `revision` in the chain; base (None) is -1."""
        if revision is None:
            return -1
        position = self._positions.get(revision)
        if position is not None:
            return position
        raise RevisionError(
            f"revision {revision!r} is not in the migrations folder {self.folder}",
            hint="was its file deleted or renamed, or is the database ahead of this code?",
        )

    # -- targets

    def resolve(self, target: str, current: str | None = None) -> str | None:
        """The revision id `target` names: head, base (None), -N / +N from `current`, an id or a prefix."""
        target = target.strip()
        if target == "head":
            return self.head
        if target == "base":
            return None
        relative = _RELATIVE.match(target)
        if relative:
            return self._relative(current, int(relative.group(2)) * (1 if relative.group(1) == "+" else -1), target)
        if target in self:
            return target
        if len(target) < MIN_PREFIX:
            raise RevisionError(
                f"unknown revision {target!r}; give at least {MIN_PREFIX} characters of an id, "
                f"or head, base, -N, +N{self._nearest(target)}"
            )
        matches = [revision for revision in self.revisions if revision.startswith(target)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise RevisionError(f"ambiguous revision {target!r}: matches {', '.join(self._labels(matches))}")
        raise RevisionError(f"unknown revision {target!r}{self._nearest(target)}")

    def _relative(self, current: str | None, steps: int, target: str) -> str | None:
        position = self.index(current) + steps
        if position < -1 or position >= len(self.chain):
            here = "base" if current is None else current
            raise RevisionError(
                f"{target} from {here} is out of range: "
                f"{self.index(current) + 1} migration(s) applied, {len(self.chain) - self.index(current) - 1} pending"
            )
        return None if position == -1 else self.chain[position].revision

    def _labels(self, revisions: Sequence[str]) -> list[str]:
        names = {migration.revision: migration.path.name for migration in self.chain}
        return [f"{revision} ({names[revision]})" for revision in revisions]

    def _nearest(self, target: str) -> str:
        close = difflib.get_close_matches(target, self.revisions, n=3, cutoff=0.3)
        if not close:
            close = list(reversed(self.revisions[-3:]))
        options = ["head", "base", *self._labels(close)] if self.chain else ["base (no migrations yet)"]
        return "; options: " + ", ".join(options)

    # -- paths

    def upgrade_path(self, current: str | None, target: str | None) -> list[Migration]:
        """Migrations to apply, in order, to go from `current` up to `target`."""
        start, end = self.index(current), self.index(target)
        if end < start:
            raise RevisionError(f"{_name(target)} is behind the current revision {_name(current)}; use downgrade")
        return self.chain[start + 1 : end + 1]

    def downgrade_path(self, current: str | None, target: str | None) -> list[Migration]:
        """Migrations to revert, in order, to go from `current` down to `target`."""
        start, end = self.index(current), self.index(target)
        if end > start:
            raise RevisionError(f"{_name(target)} is ahead of the current revision {_name(current)}; use upgrade")
        return list(reversed(self.chain[end + 1 : start + 1]))


def _name(revision: str | None) -> str:
    return revision if revision is not None else "base"


def migration_files(folder: Path) -> list[Path]:
    """Migration files of `folder` sorted by name (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if FILE_PATTERN.match(path.name) and path.is_file())


def load_all(folder: Path | str) -> list[Migration]:
    """Every migration file of `folder` in file-name order, loaded without checking the chain."""
    return [load_migration(path) for path in migration_files(Path(folder))]


def _unique(migrations: Sequence[Migration]) -> dict[str, Migration]:
    """Migrations by revision; MigrationError when two declare the same one."""
    by_revision: dict[str, Migration] = {}
    for migration in migrations:
        other = by_revision.setdefault(migration.revision, migration)
        if other is not migration:
            raise MigrationError(
                f"{other.path.name} and {migration.path.name} both declare revision {migration.revision}; "
                "give one of them a new id"
            )
    return by_revision


def _check_parent(migration: Migration, by_revision: dict[str, Migration]) -> None:
    if migration.parent is not None and migration.parent not in by_revision:
        raise MigrationError(f"{migration.path.name}: parent {migration.parent} does not exist in {migration.path.parent}")


def _order(migrations: list[Migration]) -> list[Migration]:
    """Check duplicates, parents, roots and forks; return the chain base to head."""
    by_revision = _unique(migrations)
    children: dict[str | None, Migration] = {}
    for migration in migrations:
        _check_parent(migration, by_revision)
        other = children.setdefault(migration.parent, migration)
        if other is not migration:
            raise MigrationError(_fork_message(other, migration))
    chain: list[Migration] = []
    node = children.get(None)
    while node is not None:
        chain.append(node)
        node = children.get(node.revision)
    if len(chain) != len(migrations):
        stray = sorted(m.path.name for m in migrations if m not in chain)
        raise MigrationError(f"the parents of {', '.join(stray)} form a cycle; each file must point to an older one")
    return chain


def _fork_message(first: Migration, second: Migration) -> str:
    if first.parent is None:
        return (
            f"{first.path.name} and {second.path.name} are both first migrations (parent None); "
            "set the parent of the newer one to the head of the other line (`schemashift rebase`)"
        )
    return (
        f"{first.path.name} and {second.path.name} both follow {first.parent} (the history forks); "
        "run `schemashift rebase` to put one after the other"
    )


# -- writing --------------------------------------------------------------


def new_revision_id() -> str:
    """12 random hex characters."""
    return secrets.token_hex(6)


def slugify(message: str) -> str:
    """Lowercase ascii words of `message` joined with ``_``, at most 40 characters."""
    ascii_text = unicodedata.normalize("NFKD", message).encode("ascii", "ignore").decode("ascii")
    slug = ""
    for word in re.findall(r"[a-z0-9]+", ascii_text.lower()):
        candidate = f"{slug}_{word}" if slug else word
        if len(candidate) > _SLUG_LENGTH:
            if not slug:
                slug = word[:_SLUG_LENGTH]
            break
        slug = candidate
    return slug or "migration"


#: Per folder, after this process wrote a migration there: (folder mtime, highest file number, number width).
_last_written: dict[Path, tuple[int, int, int]] = {}


def next_filename(folder: Path | str, message: str) -> Path:
    """The path of the next migration file: next number (4+ digits) and a slug of `message`.

    The folder is listed unless this process wrote its last file and nothing
    changed since (same folder mtime), so writing many migrations stays linear.
    """
    folder = Path(folder)
    known = _last_written.get(folder)
    if known is not None and _mtime(folder) == known[0]:
        number, width = known[1] + 1, known[2]
    else:
        numbers = manifest.file_numbers(folder)
        width = max([4, *(len(number) for number in numbers)])
        number = max((int(n) for n in numbers), default=0) + 1
    return folder / f"{number:0{width}d}_{slugify(message)}.py"


def _mtime(folder: Path) -> int | None:
    try:
        return folder.stat().st_mtime_ns
    except OSError:
        return None


def _remember_written(path: Path) -> None:
    """Note the number of the file this process just wrote, with the folder's mtime after writing it."""
    digits = _file_number(path)
    known = _last_written.get(path.parent)
    width = max(len(digits), known[2] if known else 4)
    mtime = _mtime(path.parent)
    if mtime is not None:
        _last_written[path.parent] = (mtime, int(digits), width)


def write_migration(
    folder: Path | str,
    message: str,
    operations: Sequence[Operation],
    parent: str | None,
    *,
    revision: str | None = None,
    created: datetime | None = None,
    replaces: Sequence[str] = (),
    path: Path | None = None,
) -> Migration:
    """Render a new migration into `folder`, write it atomically and return it loaded.

    `replaces`: the revisions a squashed migration stands for; `path`: a file name to
    take (it must not exist) instead of the next free number.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    revision = revision or new_revision_id()
    source = render_migration(revision, parent, message, list(operations), created or datetime.now(), replaces)
    if path is None:
        path = _write_new(folder, message, source.encode("utf-8"))
    else:
        with open(path, "xb") as handle:
            handle.write(source.encode("utf-8"))
    try:
        migration = load_migration(path)
    except MigrationError:
        path.unlink(missing_ok=True)
        raise
    try:
        manifest.record(folder, migration)
    except OSError:
        pass  # the manifest is then out of date, which `status` and `manifest --check` report
    _remember_written(path)
    return migration


def _write_new(folder: Path, message: str, data: bytes) -> Path:
    """Write `data` to a temporary file, then move it to the next free migration name."""
    path = next_filename(folder, message)  # before the temporary file changes the folder's mtime
    handle, temp_name = tempfile.mkstemp(dir=folder, prefix=".schemashift-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.chmod(temp_name, 0o644)
        for _attempt in range(100):
            try:
                os.link(temp_name, path)  # fails instead of overwriting a file written meanwhile
                return path
            except FileExistsError:
                pass
            except OSError:  # no hard links here: a plain rename
                if not path.exists():
                    os.replace(temp_name, path)
                    return path
            path = next_filename(folder, message)
        raise MigrationError(f"could not find a free migration file name in {folder}")
    finally:
        Path(temp_name).unlink(missing_ok=True)


# -- forks and rebase -----------------------------------------------------

_HEADER_PARENT = re.compile(rb"(?m)^([ \t]*Parent:[ \t]*)([^\r\n]*)")
_HEADER_CREATED = re.compile(r"(?m)^[ \t]*Created:[ \t]*(\S[^\r\n]*)")
_BOM = b"\xef\xbb\xbf"

Fork = tuple[str | None, list[Migration]]


def find_forks(migrations: Sequence[Migration]) -> list[Fork]:
    """Each revision (None: base) that two or more migrations follow, with those branch roots in file order."""
    names = {migration.revision: migration.path.name for migration in migrations}
    children: dict[str | None, list[Migration]] = {}
    for migration in sorted(migrations, key=lambda m: m.path.name):
        children.setdefault(migration.parent, []).append(migration)
    forks = [(parent, roots) for parent, roots in children.items() if len(roots) > 1]
    return sorted(forks, key=lambda fork: "" if fork[0] is None else names.get(fork[0], fork[0]))


def rebase(folder: Path | str, *, out: Callable[[str], None] = print) -> list[Path]:
    """Put the newer branch of every fork of `folder` after the head of the older one; return the changed files.

    The newer branch is the one whose first file has the later ``Created:`` header
    (then the higher file number, then the higher revision id). Its first file gets
    the new parent (only the `parent = …` value and the ``Parent:`` header change)
    and its files are renumbered to follow the older branch. Nothing is written when
    the branches conflict (the moved operations no longer apply); if the rewritten
    folder does not load and replay, every file is restored. MigrationError then.
    """
    folder = Path(folder)
    migrations = load_all(folder)
    planner = _Planner(migrations)
    planner.run()
    if not planner.moves:
        out("Nothing to rebase: the migration history has no forks.")
        return []
    edits, renames, expected = planner.changes()
    journal: list[Callable[[], None]] = []
    try:
        _apply(edits, renames, journal)
        _prove(folder, expected)
    except BaseException as exc:
        problems = _undo(journal)
        if problems:
            raise MigrationError(f"rebase failed ({_one_line(str(exc))}) and could not restore every file "
                                 f"({'; '.join(problems)}); check the folder with `git status`") from None
        if isinstance(exc, SchemashiftError):
            raise MigrationError(f"the rebased history does not work ({exc}); every file was restored") from None
        if isinstance(exc, OSError):
            raise MigrationError(f"cannot rewrite the migration files: {exc}; every file was restored") from None
        raise
    if (folder / manifest.MANIFEST_NAME).exists():
        try:
            manifest.write(folder, manifest.entries_of(expected))
        except OSError as exc:
            out(f"could not update {manifest.MANIFEST_NAME} ({exc}); run `schemashift manifest`")
    for line in planner.lines:
        out(line)
    out(f"The history is one line again: {len(expected)} migration(s), head {expected[-1].path.name}.")
    original = {migration.revision: migration.path for migration in migrations}
    return [m.path for m in expected if original[m.revision] in edits or original[m.revision] in renames]


class _Planner:
    """Works out, in memory, the parents and numbers that make a forked folder linear."""

    def __init__(self, migrations: Sequence[Migration]) -> None:
        self.by_revision = _unique(migrations)
        for migration in migrations:
            _check_parent(migration, self.by_revision)
        self.parent = {m.revision: m.parent for m in migrations}
        self.number = {m.revision: int(_file_number(m.path)) for m in migrations}
        self.width = max([4, *(len(_file_number(m.path)) for m in migrations)])
        self.moves: list[tuple[str, str]] = []  # (moved root, its new parent)
        self.lines: list[str] = []
        self._check_cycles()

    def _check_cycles(self) -> None:
        stray = []
        for revision in self.parent:
            node: str | None = revision
            for _step in range(len(self.parent) + 1):
                node = self.parent[node] if node is not None else None
            if node is not None:
                stray.append(self.by_revision[revision].path.name)
        if stray:
            raise MigrationError(f"the parents of {', '.join(sorted(stray))} form a cycle; each file must point to an older one")

    def _name(self, revision: str | None) -> str:
        return "base" if revision is None else f"{self.by_revision[revision].path.name} ({revision})"

    def children(self, parent: str | None) -> list[str]:
        """Revisions whose parent is `parent`, in file order."""
        kids = [revision for revision, up in self.parent.items() if up == parent]
        return sorted(kids, key=lambda revision: self.by_revision[revision].path.name)

    def branch(self, root: str) -> list[str] | None:
        """The straight line starting at `root`, or None when it forks further down."""
        line = [root]
        while True:
            kids = self.children(line[-1])
            if len(kids) > 1:
                return None
            if not kids:
                return line
            line.append(kids[0])

    def ancestors(self, revision: str | None) -> list[Migration]:
        """The migrations from the base up to `revision` included."""
        chain: list[Migration] = []
        while revision is not None:
            chain.append(self.by_revision[revision])
            revision = self.parent[revision]
        return list(reversed(chain))

    def run(self) -> None:
        """Join forks, deepest first, until the folder is one line."""
        while True:
            forks = [(parent, kids) for parent in [None, *self.parent] if len(kids := self.children(parent)) > 1]
            if not forks:
                return
            for parent, roots in forks:
                branches = [self.branch(root) for root in roots]
                if all(branches):
                    self._join(parent, [b for b in branches if b])
                    break

    def _age(self, root: str) -> tuple[datetime, int, str]:
        return (_created(self.by_revision[root].path) or datetime.min, self.number[root], root)

    def _join(self, parent: str | None, branches: list[list[str]]) -> None:
        branches.sort(key=lambda line: self._age(line[0]))
        self.lines.append(f"Fork after {self._name(parent)}: "
                          + ", ".join(self.by_revision[line[0]].path.name for line in branches))
        line = list(branches[0])
        for newer in branches[1:]:
            self._check_conflict(parent, line, newer)
            head = line[-1]
            self.parent[newer[0]] = head
            for offset, revision in enumerate(newer, start=1):
                self.number[revision] = self.number[head] + offset
            self.moves.append((newer[0], head))
            self.lines.append(f"  {self.by_revision[newer[0]].path.name} now follows {self._name(head)}")
            line.extend(newer)

    def _check_conflict(self, parent: str | None, line: list[str], newer: list[str]) -> None:
        """MigrationError naming the two migrations when `newer` no longer applies after `line`."""
        prefix = self.ancestors(parent)
        older = [self.by_revision[revision] for revision in line]
        moved = [self.by_revision[revision] for revision in newer]
        failure = _replay_failure(prefix + older + moved)
        if failure is None:
            return
        culprit, error = failure
        if culprit not in moved:
            raise MigrationError(f"{culprit.path.name} does not apply even before rebasing: {error}")
        for count in range(len(older) + 1):
            if _replay_failure(prefix + older[:count] + moved) is not None:
                break
        if count == 0:
            raise MigrationError(f"{culprit.path.name} does not apply even before rebasing: {error}")
        rival = older[count - 1]
        raise MigrationError(
            f"cannot rebase: {culprit.path.name} (newer branch) conflicts with {rival.path.name} (older branch): "
            f"{error}; both change the same thing, so merge them by hand (edit or delete one) and run "
            "`schemashift rebase` again; no file was changed"
        )

    def changes(self) -> tuple[dict[Path, bytes], dict[Path, Path], list[Migration]]:
        """New contents of the re-parented files, renames old -> new path, and the expected chain."""
        edits: dict[Path, bytes] = {}
        for root, new_parent in self.moves:
            path = self.by_revision[root].path
            edits[path] = reparent_source(path.read_bytes(), new_parent, path.name)
        renames: dict[Path, Path] = {}
        expected: list[Migration] = []
        for revision in self.parent:
            migration = self.by_revision[revision]
            digits = _file_number(migration.path)
            path = migration.path
            if self.number[revision] != int(digits):
                path = path.with_name(f"{self.number[revision]:0{self.width}d}{path.name[len(digits):]}")
                renames[migration.path] = path
                self.lines.append(f"  renamed {migration.path.name} -> {path.name}")
            expected.append(Migration(revision, self.parent[revision], migration.message, migration.operations,
                                      path, migration.checksum, migration.replaces))
        for target in renames.values():
            if target.exists() and target not in renames:
                raise MigrationError(f"cannot rename a migration to {target.name}: that file already exists")
        chain = History.of(expected, expected[0].path.parent if expected else ".").chain
        failure = _replay_failure(chain)
        if failure is not None:
            raise MigrationError(f"{failure[0].path.name} does not apply after rebasing: {failure[1]}; no file was changed")
        return edits, renames, chain


def _file_number(path: Path) -> str:
    match = FILE_PATTERN.match(path.name)
    assert match is not None  # migration_files only yields matching names
    return match.group(1)


def _replay_failure(chain: Sequence[Migration]) -> tuple[Migration, SchemashiftError] | None:
    """The first migration of `chain` whose operations do not apply, with the error; None when all do."""
    from schemashift.model.schema import Schema

    state = Schema()
    for migration in chain:
        try:
            _, state = resolve_all(migration.operations, state)
        except SchemashiftError as exc:
            return migration, exc
    return None


def _module_docstring(tree: ast.Module) -> ast.Constant | None:
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.value
    return None


def _created(path: Path) -> datetime | None:
    """The ``Created:`` time of the migration file's docstring, None when absent or unreadable."""
    try:
        docstring = _module_docstring(ast.parse(path.read_bytes()))
    except (OSError, SyntaxError, ValueError):
        return None
    matches = _HEADER_CREATED.findall(docstring.value) if docstring else []
    try:
        created = datetime.fromisoformat(matches[-1].strip()) if matches else None
    except ValueError:
        return None
    if created is not None and created.tzinfo is not None:
        created = created.astimezone(timezone.utc).replace(tzinfo=None)
    return created


def reparent_source(data: bytes, parent: str, name: str = "migration") -> bytes:
    """`data` with the module-level `parent = …` value and the docstring's ``Parent:`` header set to `parent`.

    Every other byte stays as it was. MigrationError when there is no single plain
    ``parent = "…"`` (or ``None``) assignment at module level to rewrite.
    """
    bom = _BOM if data.startswith(_BOM) else b""
    body = data[len(bom):]
    try:
        tree = ast.parse(body)
        body.decode("utf-8")
    except (SyntaxError, ValueError, UnicodeDecodeError):
        raise MigrationError(f"{name}: cannot rewrite a file that is not UTF-8 Python; set parent = {parent!r} by hand") from None
    starts = [0]
    for line in body.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def span(node: ast.expr) -> tuple[int, int]:
        return starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]

    values = [node.value for node in tree.body if _assigns_parent(node)]
    value = values[0] if len(values) == 1 else None
    if not isinstance(value, ast.Constant) or not (value.value is None or isinstance(value.value, str)):
        raise MigrationError(f"{name}: no single plain `parent = \"…\"` line to rewrite; set parent = {parent!r} by hand")
    begin, end = span(value)
    quote = b"'" if body[begin:end].startswith(b"'") else b'"'
    edits = [(begin, end, quote + parent.encode("utf-8") + quote)]
    docstring = _module_docstring(tree)
    if docstring is not None:
        doc_begin, doc_end = span(docstring)
        headers = list(_HEADER_PARENT.finditer(body, doc_begin, doc_end))
        if headers:
            edits.append((headers[-1].start(2), headers[-1].end(2), parent.encode("utf-8")))
    for begin, end, text in sorted(edits, reverse=True):
        body = body[:begin] + text + body[end:]
    return bom + body


def _assigns_parent(node: ast.stmt) -> bool:
    if isinstance(node, ast.Assign):
        return any(isinstance(target, ast.Name) and target.id == "parent" for target in node.targets)
    return isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "parent"


def _apply(edits: dict[Path, bytes], renames: dict[Path, Path], journal: list[Callable[[], None]]) -> None:
    """Write `edits`, then rename in two phases (so names may swap); each done step's undo goes to `journal`."""
    for path, data in edits.items():
        original = path.read_bytes()
        _replace_bytes(path, data)
        journal.append(lambda path=path, original=original: _replace_bytes(path, original))
    token = secrets.token_hex(4)
    staged: list[tuple[Path, Path]] = []
    for number, (source, target) in enumerate(renames.items()):
        temp = source.with_name(f".schemashift-rebase-{token}-{number}.tmp")
        os.rename(source, temp)
        journal.append(lambda source=source, temp=temp: os.rename(temp, source))
        staged.append((temp, target))
    for temp, target in staged:
        if target.exists():
            raise MigrationError(f"cannot rename a migration to {target.name}: that file already exists")
        os.rename(temp, target)
        journal.append(lambda temp=temp, target=target: os.rename(target, temp))


def _undo(journal: list[Callable[[], None]]) -> list[str]:
    """Run the undo steps newest first; the errors of those that failed."""
    problems: list[str] = []
    for action in reversed(journal):
        try:
            action()
        except OSError as exc:
            problems.append(str(exc))
    return problems


def _replace_bytes(path: Path, data: bytes) -> None:
    """Atomically replace the contents of `path`, keeping its permissions."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".schemashift-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        shutil.copymode(path, temp_name)
        os.replace(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def _prove(folder: Path, expected: Sequence[Migration]) -> None:
    """Load `folder` as a History and replay it; MigrationError unless it is the `expected` chain."""
    from schemashift.planning.plan import states_along

    history = History.load(folder)
    found = [(m.revision, m.parent, m.path.name) for m in history.chain]
    if found != [(m.revision, m.parent, m.path.name) for m in expected]:
        raise MigrationError("the rewritten files do not give the planned order")
    states_along(history)
