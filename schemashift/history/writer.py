"""Writing a new migration file: its number, its name and its bytes, atomically.

`write_migration` renders operations with `schemashift.operations.render`, gives
the file the next free number (at least four digits, as wide as the folder's
widest) and a slug of its message, and links it into place from a temporary
file, so two processes writing at once never overwrite each other's file and a
crash leaves no half-written migration. The file is loaded back (a file that
does not load is removed again) and added to the folder's manifest, when there
is one (`schemashift.history.manifest.record`), and the head snapshot beside it
kept current (`schemashift.history.snapshot.advance`: without importing the other
migrations when the old snapshot was valid; else written from scratch for a folder
of at most `SMALL` migrations, and otherwise left, ignored as stale, for
`schemashift manifest` to rewrite: a rewrite from scratch imports and replays every
migration, too slow for each `generate` on a long history). The number of the last file this
process wrote is remembered per folder, with the folder's mtime, so writing
thousands of migrations does not list the folder each time.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from schemashift.errors import MigrationError
from schemashift.history import manifest, snapshot
from schemashift.history.chain import History
from schemashift.history.files import file_number, file_numbers
from schemashift.history.loader import Migration, load_migration
from schemashift.model.schema import Schema
from schemashift.operations import Operation
from schemashift.operations.render import render_migration

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect

_SLUG_LENGTH = 40


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
        numbers = file_numbers(folder)
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
    digits = file_number(path)
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
    before: Schema | None = None,
    dialects: Sequence[Dialect] = (),
) -> Migration:
    """Render a new migration into `folder`, write it atomically and return it loaded.

    `replaces`: the revisions a squashed migration stands for; `path`: a file name to
    take (it must not exist) instead of the next free number; `before`: the schema at
    `parent` when the caller knows it (the head snapshot then moves on without a replay); `dialects`: the
    databases whose fresh-build statements the head snapshot holds (`schemashift.history.snapshot.compiled_for`).
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
    with contextlib.suppress(OSError):  # the manifest is then out of date, which `status` and `manifest --check` report
        appended = manifest.record(folder, migration, dialects)
        if appended is not None and not snapshot.advance(folder, *appended, migration, before, dialects):
            _snapshot_from_scratch(folder, appended[1], dialects)
    _remember_written(path)
    return migration


#: Up to this many migrations, a folder without a valid head snapshot gets one when a migration is written.
SMALL = 100


def _snapshot_from_scratch(folder: Path, manifest_line: str, dialects: Sequence[Dialect]) -> None:
    """Write the head snapshot of a small folder (`SMALL`: loading and replaying it is cheap) whose manifest, first
    line `manifest_line`, matches its files; larger ones are left for `schemashift manifest`."""
    if len(file_numbers(folder)) > SMALL:
        return
    try:
        history = History.load(folder)
    except MigrationError:
        return
    if manifest.first_line(manifest.entries_of(history.chain)) == manifest_line:
        snapshot.refresh(folder, history, manifest_line, dialects)


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
