"""Migration files on disk: loading one, the revision chain of a folder, writing new ones.

A migrations folder holds one Python module per revision, named
``0001_create_users.py``; each names its `revision` and its `parent`. `History`
checks that they form one straight line (no forks, no duplicates, one root) and
resolves targets such as ``head``, ``base``, ``-1`` or a revision prefix.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
import re
import secrets
import sys
import tempfile
import traceback
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator, Sequence

from .errors import MigrationError, RevisionError
from .ops import Operation
from .render import render_migration

#: Names of migration files: digits, an underscore, anything, ``.py``.
FILE_PATTERN = re.compile(r"^(\d+)_.*\.py$")
#: Shortest revision prefix accepted as a target.
MIN_PREFIX = 4
_SLUG_LENGTH = 40
_RELATIVE = re.compile(r"^([+-])(\d+)$")


@dataclass
class Migration:
    """One loaded migration file."""

    revision: str
    parent: str | None
    message: str
    operations: list[Operation]
    path: Path
    checksum: str

    def __repr__(self) -> str:
        return f"<Migration {self.revision} {self.path.name}>"


def checksum_of(data: bytes) -> str:
    """sha256 hex of `data` with line endings normalised to ``\\n``."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")).hexdigest()


# -- loading one file -----------------------------------------------------


def load_migration(path: Path | str) -> Migration:
    """Import the migration file at `path` (MigrationError when it is not usable)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MigrationError(f"{path.name}: cannot read: {exc.strerror or exc}") from None
    namespace = _execute(path, data)
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
    return Migration(revision, parent, message, list(operations), path, checksum_of(data))


def _execute(path: Path, data: bytes) -> dict[str, object]:
    """Run the file as a fresh module under a unique name and return its namespace."""
    name = f"_schemashift_migration_{secrets.token_hex(8)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise MigrationError(f"{path.name}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        code = compile(data, str(path), "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - running the migration file is the point
    except SyntaxError as exc:
        where = f"{path.name}:{exc.lineno}" if exc.lineno else path.name
        raise MigrationError(f"{where}: syntax error: {_one_line(exc.msg)}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of user code
        raise MigrationError(f"{_location(path, exc)}: {type(exc).__name__}: {_one_line(str(exc))}") from None
    finally:
        sys.modules.pop(name, None)
    return module.__dict__


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

    @classmethod
    def load(cls, folder: Path | str) -> History:
        """Load and check every migration file of `folder` (missing folder: empty history)."""
        folder = Path(folder)
        return cls.of([load_migration(path) for path in migration_files(folder)], folder)

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
        for migration in self.chain:
            if migration.revision == revision:
                return migration
        return None

    def __getitem__(self, revision: str) -> Migration:
        found = self.get(revision)
        if found is None:
            raise RevisionError(f"unknown revision {revision!r}")
        return found

    def __contains__(self, revision: object) -> bool:
        return any(migration.revision == revision for migration in self.chain)

    def __iter__(self) -> Iterator[Migration]:
        return iter(self.chain)

    def __len__(self) -> int:
        return len(self.chain)

    def index(self, revision: str | None) -> int:
        """Position of `revision` in the chain; base (None) is -1."""
        if revision is None:
            return -1
        for position, migration in enumerate(self.chain):
            if migration.revision == revision:
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


def _order(migrations: list[Migration]) -> list[Migration]:
    """Check duplicates, parents, roots and forks; return the chain base to head."""
    by_revision: dict[str, Migration] = {}
    for migration in migrations:
        other = by_revision.setdefault(migration.revision, migration)
        if other is not migration:
            raise MigrationError(
                f"{other.path.name} and {migration.path.name} both declare revision {migration.revision}; "
                "give one of them a new id"
            )
    children: dict[str | None, Migration] = {}
    for migration in migrations:
        if migration.parent is not None and migration.parent not in by_revision:
            raise MigrationError(
                f"{migration.path.name}: parent {migration.parent} does not exist in {migration.path.parent}"
            )
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


def next_filename(folder: Path | str, message: str) -> Path:
    """The path of the next migration file: next number (4+ digits) and a slug of `message`."""
    folder = Path(folder)
    numbers = [FILE_PATTERN.match(path.name).group(1) for path in migration_files(folder)]  # type: ignore[union-attr]
    width = max([4, *(len(number) for number in numbers)])
    number = max((int(n) for n in numbers), default=0) + 1
    return folder / f"{number:0{width}d}_{slugify(message)}.py"


def write_migration(
    folder: Path | str,
    message: str,
    operations: Sequence[Operation],
    parent: str | None,
    *,
    revision: str | None = None,
    created: datetime | None = None,
) -> Migration:
    """Render a new migration into `folder`, write it atomically and return it loaded."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    revision = revision or new_revision_id()
    source = render_migration(revision, parent, message, list(operations), created or datetime.now())
    path = _write_new(folder, message, source.encode("utf-8"))
    try:
        return load_migration(path)
    except MigrationError:
        path.unlink(missing_ok=True)
        raise


def _write_new(folder: Path, message: str, data: bytes) -> Path:
    """Write `data` to a temporary file, then move it to the next free migration name."""
    handle, temp_name = tempfile.mkstemp(dir=folder, prefix=".schemashift-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.chmod(temp_name, 0o644)
        for _attempt in range(100):
            path = next_filename(folder, message)
            try:
                os.link(temp_name, path)  # fails instead of overwriting a file written meanwhile
                return path
            except FileExistsError:
                continue
            except OSError:  # no hard links here: a plain rename
                if not path.exists():
                    os.replace(temp_name, path)
                    return path
        raise MigrationError(f"could not find a free migration file name in {folder}")
    finally:
        Path(temp_name).unlink(missing_ok=True)
