"""Forks and `rebase`: making a migrations folder that two branches extended one line again.

When two git branches each add migrations after the same parent, the merged
folder forks. `rebase` plans in memory (`_Planner`), deepest fork first, which
branch goes after which: the newer branch (by its first file's ``Created:``
header, then file number, then id) is re-parented onto the older branch's head
and its files renumbered to follow it. The plan is checked by replaying the
operations before anything is written, so conflicting branches are refused
naming the two migrations. The files are then changed with minimal byte edits:
`reparent_source` rewrites only the value of the module-level ``parent = …``
assignment and the docstring's ``Parent:`` header, found through the AST and
its offsets, keeping every other byte. Every write and rename is journaled; if
the rewritten folder does not load and replay as planned, the journal is undone
newest first and every file is back as it was. Then the manifest and the head
snapshot (`schemashift.history.snapshot`), which the merge left in conflict, are
written for the new line.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from schemashift.errors import MigrationError, SchemashiftError
from schemashift.history import manifest
from schemashift.history.chain import History, check_parent, load_all, unique_revisions
from schemashift.history.files import file_number
from schemashift.history.loader import Migration, one_line
from schemashift.model.schema import Schema
from schemashift.operations import resolve_all

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect

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


def rebase(folder: Path | str, *, out: Callable[[str], None] = print,
           dialects: Sequence[Dialect] = ()) -> list[Path]:
    """Put the newer branch of every fork of `folder` after the head of the older one; return the changed files.

    The newer branch is the one whose first file has the later ``Created:`` header
    (then the higher file number, then the higher revision id). Its first file gets
    the new parent (only the `parent = …` value and the ``Parent:`` header change)
    and its files are renumbered to follow the older branch. Nothing is written when
    the branches conflict (the moved operations no longer apply); if the rewritten
    folder does not load and replay, every file is restored. MigrationError then.
    The head snapshot is written anew, with its statements on `dialects`.
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
        written = _prove(folder, expected)
    except BaseException as exc:
        problems = _undo(journal)
        if problems:
            raise MigrationError(f"rebase failed ({one_line(str(exc))}) and could not restore every file "
                                 f"({'; '.join(problems)}); check the folder with `git status`") from None
        if isinstance(exc, SchemashiftError):
            raise MigrationError(f"the rebased history does not work ({exc}); every file was restored") from None
        if isinstance(exc, OSError):
            raise MigrationError(f"cannot rewrite the migration files: {exc}; every file was restored") from None
        raise
    if (folder / manifest.MANIFEST_NAME).exists():  # else a head snapshot there names no manifest: it is ignored
        try:
            # the edited files' checksums; the head snapshot
            manifest.write_all(folder, History.of(written, folder), dialects)
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
        self.by_revision = unique_revisions(migrations)
        for migration in migrations:
            check_parent(migration, self.by_revision)
        self.parent = {m.revision: m.parent for m in migrations}
        self.number = {m.revision: int(file_number(m.path)) for m in migrations}
        self.width = max([4, *(len(file_number(m.path)) for m in migrations)])
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
            raise MigrationError(f"the parents of {', '.join(sorted(stray))} form a cycle; "
                                 "each file must point to an older one")

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
            digits = file_number(migration.path)
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
            raise MigrationError(f"{failure[0].path.name} does not apply after rebasing: {failure[1]}; "
                                 "no file was changed")
        return edits, renames, chain


def _replay_failure(chain: Sequence[Migration]) -> tuple[Migration, SchemashiftError] | None:
    """The first migration of `chain` whose operations do not apply, with the error; None when all do."""
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
    matches = _HEADER_CREATED.findall(str(docstring.value)) if docstring else []
    try:
        created = datetime.fromisoformat(matches[-1].strip()) if matches else None
    except ValueError:
        return None
    if created is not None and created.tzinfo is not None:
        created = created.astimezone(UTC).replace(tzinfo=None)
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
        raise MigrationError(f"{name}: cannot rewrite a file that is not UTF-8 Python; "
                             f"set parent = {parent!r} by hand") from None
    starts = [0]
    for line in body.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def span(node: ast.expr) -> tuple[int, int]:
        end_line, end_column = node.end_lineno, node.end_col_offset
        assert end_line is not None and end_column is not None  # ast.parse sets every position
        return starts[node.lineno - 1] + node.col_offset, starts[end_line - 1] + end_column

    values = [node.value for node in tree.body if _assigns_parent(node)]
    value = values[0] if len(values) == 1 else None
    if not isinstance(value, ast.Constant) or not (value.value is None or isinstance(value.value, str)):
        raise MigrationError(f"{name}: no single plain `parent = \"…\"` line to rewrite; "
                             f"set parent = {parent!r} by hand")
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


def _assigns_parent(node: ast.stmt) -> TypeGuard[ast.Assign | ast.AnnAssign]:
    """True for a module-level ``parent = …`` or ``parent: … = …`` statement."""
    if isinstance(node, ast.Assign):
        return any(isinstance(target, ast.Name) and target.id == "parent" for target in node.targets)
    return isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "parent"


def _apply(edits: dict[Path, bytes], renames: dict[Path, Path], journal: list[Callable[[], None]]) -> None:
    """Write `edits`, then rename in two phases (so names may swap); each done step's undo goes to `journal`."""
    for path, data in edits.items():
        original = path.read_bytes()
        _replace_bytes(path, data)
        journal.append(functools.partial(_replace_bytes, path, original))
    token = secrets.token_hex(4)
    staged: list[tuple[Path, Path]] = []
    for number, (source, target) in enumerate(renames.items()):
        temp = source.with_name(f".schemashift-rebase-{token}-{number}.tmp")
        os.rename(source, temp)
        journal.append(functools.partial(os.rename, temp, source))
        staged.append((temp, target))
    for temp, target in staged:
        if target.exists():
            raise MigrationError(f"cannot rename a migration to {target.name}: that file already exists")
        os.rename(temp, target)
        journal.append(functools.partial(os.rename, target, temp))


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


def _prove(folder: Path, expected: Sequence[Migration]) -> list[Migration]:
    """Load `folder` as a History and replay it; its chain as written, MigrationError unless it is the `expected` one.

    A migration that does not apply raises its own error (SchemashiftError).
    """
    history = History.load(folder)
    found = [(m.revision, m.parent, m.path.name) for m in history.chain]
    if found != [(m.revision, m.parent, m.path.name) for m in expected]:
        raise MigrationError("the rewritten files do not give the planned order")
    failure = _replay_failure(history.chain)
    if failure is not None:
        raise failure[1]
    return list(history.chain)
