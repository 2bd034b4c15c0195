"""Loading one migration file: `Migration` and `load_migration`, through the compiled-code cache.

A migration file is a Python module that names its `revision`, its `parent`, a
`message` and a list of `operations` (and, for a squashed file, the revisions it
`replaces`). `load_migration` runs it as a fresh module and checks those names;
a broken file is one `MigrationError` line naming the file and line. Compiling
is most of the cost of loading thousands of files, so with a code cache folder
(`schemashift.history.cache.code_folder`) the compiled module is kept as a
hash-checked ``.pyc`` image in the folder's pack (`schemashift.history.cache.CodePack`,
one file) and reused only for exactly the same bytes and path.

`Migration.lazy` stands for a file whose ids and checksum are already known
(from the stat index, or from the manifest for a file with the content it lists);
its module is imported only when its operations are read.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import marshal
import os
import re
import secrets
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any, TypeVar, overload

from schemashift.errors import MigrationError
from schemashift.history import cache
from schemashift.history.files import checksum_of
from schemashift.operations import Operation

_T = TypeVar("_T")
_U = TypeVar("_U")

class Migration:
    """One migration file: ids, path and checksum; `message` and `operations` may be loaded on first use.

    `Migration.lazy` makes one from what the manifest or the stat index already
    knows; its module is imported only when its message or operations are read,
    and must still have the expected revision, parent and checksum then.
    """

    __slots__ = ("_message", "_operations", "_path", "_replaces", "checksum", "code_cache", "parent", "revision")

    def __init__(self, revision: str, parent: str | None, message: str, operations: list[Operation],
                 path: Path | str, checksum: str, replaces: Sequence[str] = ()) -> None:
        self._replaces: tuple[str, ...] | None = tuple(replaces)
        self.revision = revision
        self.parent = parent
        self._path = path
        self.checksum = checksum
        self._message: str | None = message
        self._operations: list[Operation] | None = operations
        self.code_cache: Path | None = None  #: where `load_migration` keeps the compiled module, if anywhere

    @property
    def path(self) -> Path:
        """The file (made a `Path` on first use: loading thousands of migrations need not make one each)."""
        if isinstance(self._path, str):
            self._path = Path(self._path)
        return self._path

    @path.setter
    def path(self, value: Path) -> None:
        self._path = value

    @property
    def file_name(self) -> str:
        """The file's name (`path`'s, without making the `Path`)."""
        return os.path.basename(self._path) if isinstance(self._path, str) else self._path.name

    @classmethod
    def lazy(cls, revision: str, parent: str | None, path: Path | str, checksum: str, message: str | None = None,
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
    def known_message(self) -> str | None:
        """The message when it is in memory (None: reading it would import the file)."""
        return self._message

    @property
    def message(self) -> str:
        """What the migration does."""
        if self._message is None:
            return self._load().message
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self._message = value

    @property
    def operations(self) -> list[Operation]:
        """The migration's operations (its module is imported on first use)."""
        if self._operations is None:
            return self._load().operations
        return self._operations

    @operations.setter
    def operations(self, value: list[Operation]) -> None:
        self._operations = value

    @property
    def replaces(self) -> tuple[str, ...]:
        """The revisions this (squashed) migration stands for; empty for an ordinary migration."""
        if self._replaces is None:
            return self._load().replaces
        return self._replaces

    def _load(self) -> Migration:
        """Import the file now; the loaded (eager) migration, whose message, operations and replaces are kept."""
        loaded = load_migration(self.path, self.code_cache)
        if (loaded.revision, loaded.parent, loaded.checksum) != (self.revision, self.parent, self.checksum):
            if self.code_cache is not None:  # the cache may have trusted a file edited with its size and time kept
                cache.forget_index(self.code_cache.parent)
            raise MigrationError(f"{self.path.name} changed while schemashift was running; run the command again")
        self._message, self._operations, self._replaces = loaded.message, loaded.operations, loaded.replaces
        return loaded

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Migration):
            return NotImplemented
        return (self.revision, self.parent, self.path, self.checksum) == (other.revision, other.parent, other.path,
                                                                          other.checksum)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Migration {self.revision} {self.path.name}>"


# -- loading one file ----------------------------------------------------------


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
    operations: list[Any] | tuple[Any, ...] = _required(namespace, path, "operations", (list, tuple))
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
    """Run the file as a fresh module under a unique name and return its namespace.

    The module is a plain one with ``__name__`` and ``__file__`` (no import spec: working one out per file
    was a tenth of loading thousands of migrations); it is in `sys.modules` while it runs.
    """
    if path.suffix not in importlib.machinery.SOURCE_SUFFIXES:
        raise MigrationError(f"{path.name}: not a Python file")
    name = f"_schemashift_migration_{secrets.token_hex(8)}"
    module = ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        code = _compiled(path, data, code_cache)
        exec(code, module.__dict__)  # running the migration file is the point
    except SyntaxError as exc:
        where = f"{path.name}:{exc.lineno}" if exc.lineno else path.name
        raise MigrationError(f"{where}: syntax error: {one_line(exc.msg)}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of user code
        raise MigrationError(f"{_location(path, exc)}: {type(exc).__name__}: {one_line(str(exc))}") from None
    finally:
        sys.modules.pop(name, None)
    return module.__dict__


#: Flags of a hash-based ``.pyc`` checked against its source (PEP 552).
_CHECKED_HASH_PYC = 0b11


def _compiled(path: Path, data: bytes, code_cache: Path | None) -> CodeType:
    """`data` (the file's bytes) compiled, through the pack of `code_cache` when given (`cache.CodePack`).

    Compiling is most of loading thousands of migrations. An entry is a hash-based
    ``.pyc`` image (PEP 552 layout) under the file's name; it is used only when it
    holds this Python's magic number, the hash of exactly `data` and `path` as file
    name, so an edited, moved or copied file is compiled again and its entry replaced.
    """
    if code_cache is None:
        return compile(data, str(path), "exec", dont_inherit=True)
    pack = cache.code_pack(code_cache)
    header = importlib.util.MAGIC_NUMBER + _CHECKED_HASH_PYC.to_bytes(4, "little") + importlib.util.source_hash(data)
    stored = pack.get(path.name)
    if stored is not None and stored.startswith(header):
        try:
            code = marshal.loads(memoryview(stored)[len(header):])
        except (ValueError, EOFError, TypeError):
            code = None
        if isinstance(code, CodeType) and code.co_filename == str(path):
            return code
    code = compile(data, str(path), "exec", dont_inherit=True)
    pack.put(path.name, header + marshal.dumps(code))
    return code


def _location(path: Path, exc: BaseException) -> str:
    """``file:line`` of the deepest frame of `exc` inside the migration file."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    return f"{path.name}:{line}" if line else path.name


def one_line(text: str) -> str:
    """`text` on one line (runs of whitespace become one space); a placeholder when empty."""
    return " ".join(text.split()) or "(no message)"


@overload
def _required(namespace: dict[str, object], path: Path, name: str, types: type[_T]) -> _T: ...
@overload
def _required(namespace: dict[str, object], path: Path, name: str, types: tuple[type[_T], type[_U]]) -> _T | _U: ...
def _required(namespace: dict[str, object], path: Path, name: str, types: type | tuple[type, ...]) -> object:
    """The module-level `name` of the migration's namespace; MigrationError when missing or not of `types`."""
    if name not in namespace:
        raise MigrationError(f"{path.name}: missing `{name} = …` at module level")
    value = namespace[name]
    if not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise MigrationError(f"{path.name}: `{name}` must be {expected}, got {type(value).__name__}")
    return value
