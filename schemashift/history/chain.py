"""The revision chain of a migrations folder: `History`.

Each migration names its parent; `History` checks that the migrations of a
folder form one straight line (no forks, no duplicate ids, one root, no cycle)
and orders them base to head. It resolves targets (``head``, ``base``, ``-1``,
``+2``, an id or a unique prefix of at least `MIN_PREFIX` characters, with the
nearest ids suggested on a miss) and gives the paths of an upgrade or a
downgrade. A forked folder is refused here with a hint; `schemashift.history.rebase`
makes it linear. `History.load` imports every file; the lazy, cached load of a
project folder is `schemashift.history.manifest.load_history`, which also sets
`cache_dir` and, when the chain is exactly the manifest's, the committed head
snapshot (`snapshot`). The replayed schema states along the chain live in `memo`, which
only `schemashift.history.cache` reads and fills.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from schemashift.errors import MigrationError, RevisionError
from schemashift.history.cache import ChainMemo
from schemashift.history.files import migration_files
from schemashift.history.loader import Migration, load_migration

if TYPE_CHECKING:
    from schemashift.history.snapshot import Source

#: Shortest revision prefix accepted as a target.
MIN_PREFIX = 4
_RELATIVE = re.compile(r"^([+-])(\d+)$")


@dataclass
class History:
    """The migrations of a folder in order, base to head (one straight line)."""

    folder: Path
    chain: list[Migration] = field(default_factory=list)
    _positions: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: Where replayed states are cached (`schemashift.history.cache`); None: not cached on disk.
    cache_dir: Path | None = field(default=None, init=False, repr=False, compare=False)
    #: What this process learnt about the chain (its keys, replayed states); kept by `schemashift.history.cache`.
    memo: ChainMemo = field(default_factory=ChainMemo, init=False, repr=False, compare=False)
    #: How `schemashift.sum` compared when loaded through `manifest.load_history` (fresh, stale, missing, created).
    manifest_state: str | None = field(default=None, init=False, repr=False, compare=False)
    #: The committed head snapshot for exactly this chain (`schemashift.history.snapshot`), read on first use; set by
    #: `manifest.load_history` when the chain is the manifest's, else None (state lookups replay the migrations).
    snapshot: Source | None = field(default=None, init=False, repr=False, compare=False)

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


def load_all(folder: Path | str) -> list[Migration]:
    """Every migration file of `folder` in file-name order, loaded without checking the chain."""
    return [load_migration(path) for path in migration_files(Path(folder))]


def unique_revisions(migrations: Sequence[Migration]) -> dict[str, Migration]:
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


def check_parent(migration: Migration, by_revision: dict[str, Migration]) -> None:
    """MigrationError when the parent of `migration` is not among `by_revision`."""
    if migration.parent is not None and migration.parent not in by_revision:
        raise MigrationError(
            f"{migration.path.name}: parent {migration.parent} does not exist in {migration.path.parent}")


def _order(migrations: list[Migration]) -> list[Migration]:
    """Check duplicates, parents, roots and forks; return the chain base to head."""
    by_revision = unique_revisions(migrations)
    children: dict[str | None, Migration] = {}
    for migration in migrations:
        check_parent(migration, by_revision)
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
