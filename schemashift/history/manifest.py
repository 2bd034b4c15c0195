"""The manifest of a migrations folder (`schemashift.sum`) and loading the chain without importing every file.

`schemashift.sum` sits beside the migrations and is committed with them, like a
lock file. Its first line is ``h1:<sha256 of the rest>``; then one line per
migration in chain order: ``<file name> <revision> <parent or -> <sha256 of the
file>``. Two branches that each add a migration both change the h1 line, so
merging them conflicts in version control, as intended; an edited or added file
no longer matches it.

`load_history` builds the `History` of a folder importing only the files that
are new or changed since the local stat index (`schemashift.history.cache`) saw them
and whose content is not the one the manifest lists (a clean checkout imports
none: the revision and parent come from the manifest, the message from the head
snapshot, `schemashift.history.snapshot`); the others load their operations when
first needed. `write_all` writes the manifest with the head snapshot. `verified_entries` checks
the manifest against the folder with the standard library alone, for the fast
`status` and `upgrade` paths. This module imports no migration code at start-up:
`schemashift.history.chain` and `schemashift.history.loader` (which import the
operations) are imported by the functions that build a `History`; neither of
them imports this module.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from schemashift.errors import MigrationError
from schemashift.history import cache, snapshot
from schemashift.history.files import FILE_PATTERN, checksum_of, listing

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect
    from schemashift.history.chain import History
    from schemashift.history.loader import Migration

MANIFEST_NAME = "schemashift.sum"

FRESH, STALE, MISSING, CREATED = "fresh", "stale", "missing", "created"
STALE_MESSAGE = "manifest out of date: run `schemashift manifest`"


class Entry(NamedTuple):
    """One line of the manifest."""

    name: str
    revision: str
    parent: str | None
    checksum: str

    def line(self) -> str:
        """The manifest line (without the newline)."""
        return f"{self.name} {self.revision} {self.parent or '-'} {self.checksum}"


def render(entries: Sequence[Entry]) -> str:
    """The manifest text of `entries` (chain order)."""
    body = "".join(entry.line() + "\n" for entry in entries)
    return f"h1:{hashlib.sha256(body.encode('utf-8')).hexdigest()}\n{body}"


def parse(text: str) -> list[Entry]:
    """The entries of a manifest text; ValueError saying what is wrong (bad h1, bad line, broken chain)."""
    first, _, body = text.partition("\n")
    if not first.startswith("h1:"):
        raise ValueError("the first line is not h1:<sha256>")
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != first[3:].strip():
        raise ValueError("its h1 line does not match its content (edited by hand or merged)")
    entries: list[Entry] = []
    previous: str | None = None
    match = FILE_PATTERN.match
    for number, line in enumerate(body.splitlines(), start=2):
        parts = line.rsplit(" ", 3)
        if len(parts) != 4 or len(parts[3]) != 64 or not match(parts[0]):
            raise ValueError(f"line {number} is not `<file> <revision> <parent> <sha256>`")
        name, revision, parent, checksum = parts
        if (None if parent == "-" else parent) != previous:
            raise ValueError(f"{name} does not follow the line before it")
        entries.append(Entry(name, revision, previous, checksum))
        previous = revision
    return entries


def read(folder: Path | str) -> list[Entry] | None:
    """The manifest of `folder`; None when there is none; ValueError when it is damaged or unreadable."""
    path = Path(folder) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read it: {exc}") from None
    return parse(text)


def write(folder: Path | str, entries: Sequence[Entry]) -> Path:
    """Write the manifest of `folder` atomically (OSError when the folder is not writable)."""
    path = Path(folder) / MANIFEST_NAME
    _write_text(path, render(entries))
    return path


def write_all(folder: Path | str, history: History,
              dialects: Sequence[Dialect] = ()) -> tuple[Path, snapshot.Snapshot | None]:
    """Write the manifest of the loaded `history` (the whole of `folder`) and its head snapshot
    (`schemashift.history.snapshot.refresh`: rewritten, with its statements on `dialects`, or removed when there is
    none); OSError as `write`."""
    entries = entries_of(history.chain)
    path = write(folder, entries)
    return path, snapshot.refresh(folder, history, first_line(entries), dialects)


def first_line(entries: Sequence[Entry]) -> str:
    """The ``h1:`` line of the manifest of `entries` (what a head snapshot names)."""
    return render(entries).partition("\n")[0]


def _write_text(path: Path, text: str) -> None:
    """Replace `path` atomically (keeping its permissions)."""
    import secrets

    temp = path.with_name(f".{MANIFEST_NAME}.{secrets.token_hex(4)}.tmp")
    try:
        temp.write_bytes(text.encode("utf-8"))
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o777)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def entries_of(migrations: Sequence[Migration]) -> list[Entry]:
    """Manifest entries of a chain of migrations."""
    return [Entry(m.file_name, m.revision, m.parent, m.checksum) for m in migrations]


# -- keeping it up to date -------------------------------------------------------


def record(folder: Path | str, migration: Migration, dialects: Sequence[Dialect] = ()) -> tuple[str, str] | None:
    """Add the newly written `migration` to the manifest of `folder`, when that folder has one; when the line was
    appended, the manifest's first line before and after (a head snapshot follows with `snapshot.advance`; one
    rebuilt here holds its statements on `dialects`).

    When the manifest is intact and its head is the new migration's parent, the
    line is appended and the fixed-width h1 line rewritten in place (one hash of
    the text, no parsing and no rewrite), so writing many migrations stays
    linear; a crash in between leaves a manifest whose h1 does not match, which
    readers treat as stale. Otherwise the manifest is rebuilt from a full load,
    and left as it is if the folder does not load.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        data = b""
    line = Entry(migration.path.name, migration.revision, migration.parent, migration.checksum).line().encode("utf-8")
    digest = _appendable(data, migration)
    if digest is None:
        rebuild(folder, dialects)
        return None
    digest.update(line + b"\n")
    new = digest.hexdigest().encode("ascii")
    with path.open("r+b") as handle:
        handle.seek(0, os.SEEK_END)
        handle.write(line + b"\n")
        handle.seek(3)
        handle.write(new)
    return data.partition(b"\n")[0].decode("ascii"), f"h1:{new.decode('ascii')}"


def _appendable(data: bytes, migration: Migration) -> Any:
    """The sha256 state (a `hashlib` object) of the manifest body when the manifest is intact, its head is
    `migration`'s parent and it lacks the new file; else None."""
    first, _, body = data.partition(b"\n")
    if len(first) != 67 or not first.startswith(b"h1:") or (body and not body.endswith(b"\n")):
        return None
    digest = hashlib.sha256(body)
    if digest.hexdigest().encode("ascii") != first[3:]:
        return None
    last = body[body.rstrip(b"\n").rfind(b"\n") + 1:].split(b" ") if body else []
    if body and len(last) < 4:
        return None
    head = last[-3].decode("utf-8", "replace") if body else None  # the revision of the last line
    if head != migration.parent:
        return None
    name = migration.path.name.encode("utf-8") + b" "
    if body.startswith(name) or b"\n" + name in body:
        return None
    return digest


def rebuild(folder: Path | str, dialects: Sequence[Dialect] = ()) -> Path | None:
    """Rewrite the manifest and the head snapshot (with its statements on `dialects`) from a full load of `folder`;
    None (nothing written) when the folder does not load (a snapshot left then names the old manifest: it is
    ignored until rewritten)."""
    from schemashift.history.chain import History

    try:
        history = History.load(folder)
    except MigrationError:
        return None
    return write_all(folder, history, dialects)[0]


def snapshot_problem(folder: Path | str, history: History) -> str | None:
    """What is wrong with the head snapshot of `folder` for the loaded `history` and the manifest as written
    (missing, stale, or there when there should be none), one line; None when it is right."""
    try:
        entries = read(folder)
    except ValueError:
        entries = None
    name = snapshot.SNAPSHOT_NAME
    prefix = snapshot.fresh_prefix(history.chain)
    exists = (Path(folder) / name).exists()
    if not prefix or entries is None:
        return f"{name} is left over (there should be none)" if exists and not prefix else None
    found = snapshot.read(folder, first_line(entries))
    if found is not None and found.revision == prefix[-1].revision:
        return None
    return f"{name} is {'stale' if exists else 'missing'}"


def problems(folder: Path | str, history: History) -> list[str]:
    """How the manifest of `folder` differs from `history` (the loaded folder), one line each."""
    try:
        entries = read(folder)
    except ValueError as exc:
        return [f"{MANIFEST_NAME} is damaged: {exc}"]
    if entries is None:
        return [f"{MANIFEST_NAME} is missing"]
    expected = entries_of(history.chain)
    found: list[str] = []
    listed = {entry.name: entry for entry in entries}
    present = {entry.name: entry for entry in expected}
    for entry in expected:
        old = listed.get(entry.name)
        if old is None:
            found.append(f"{entry.name} is not in {MANIFEST_NAME}")
        elif old.checksum != entry.checksum:
            found.append(f"{entry.name} was changed since {MANIFEST_NAME} was written")
        elif (old.revision, old.parent) != (entry.revision, entry.parent):
            found.append(f"{entry.name} has another revision or parent than {MANIFEST_NAME} says")
    found.extend(f"{entry.name} is in {MANIFEST_NAME} but not in the folder"
                 for entry in entries if entry.name not in present)
    if not found and [e.name for e in entries] != [e.name for e in expected]:
        found.append(f"the order of {MANIFEST_NAME} is not the chain's order")
    return found


# -- loading ----------------------------------------------------------------------


def load_history(folder: Path | str, cache_root: Path | str | None = None, *, create_manifest: bool = False) -> History:
    """The `History` of `folder`, importing only files that are new or changed since the stat index saw them.

    Errors are those of `History.load` for the files read (those taken from the manifest or the index show theirs
    when their operations are first needed). When the manifest matches, the result carries its head snapshot
    (`History.snapshot`, read on first use). With `cache_root` (the
    project root) the stat index and replayed states live in its cache folder.
    The result's `manifest_state` says whether `schemashift.sum` matched
    (fresh), did not (stale), was missing, or was created (`create_manifest`).
    """
    from schemashift.history import loader
    from schemashift.history.chain import History

    folder = Path(folder)
    directory = cache.folder_cache(cache_root, folder) if cache_root is not None else None
    index = cache.StatIndex.load(directory)
    code = cache.code_folder(directory)
    listed = _listed(folder)
    source = snapshot.Source(folder, first_line(listed)) if isinstance(listed, list) else None
    by_name = {entry.name: entry for entry in listed} if isinstance(listed, list) else {}
    migrations: list[loader.Migration] = []
    found = sorted(listing(folder), key=lambda entry: entry.name)
    for entry in found:
        stat = entry.stat()
        known = (index.trusted(entry.name, stat) or _rehashed(index, entry.name, entry.path, stat)
                 or _from_manifest(index, by_name.get(entry.name), entry.path, stat, source))
        if known is not None:
            migrations.append(
                loader.Migration.lazy(known.revision, known.parent, entry.path, known.checksum, known.message, code))
            continue
        migration = loader.load_migration(Path(entry.path), code)
        index.put(entry.name, cache.IndexEntry.of(stat, migration.checksum, migration.revision, migration.parent,
                                                  migration.message))
        migrations.append(migration)
    index.keep_only(entry.name for entry in found)
    history = History.of(migrations, folder)
    history.cache_dir = directory
    index.save()
    _learn_messages(index, [(entry.name, m) for entry, m in zip(found, migrations, strict=True)
                            if m.known_message is None])
    history.manifest_state = _manifest_state(folder, history, listed, create_manifest)
    if history.manifest_state == FRESH:
        history.snapshot = source
    return history


def _listed(folder: Path) -> list[Entry] | ValueError | None:
    """The manifest of `folder` (`read`); the ValueError instead of raising it when it is damaged."""
    try:
        return read(folder)
    except ValueError as exc:
        return exc


def _from_manifest(index: cache.StatIndex, listed: Entry | None, path: str, stat: os.stat_result,
                   source: snapshot.Source | None) -> cache.IndexEntry | None:
    """The index entry of a file the index does not trust whose content is the one `listed` in the manifest
    (revision and parent from there, no import; its message from a valid head snapshot), now in the index."""
    if listed is None or not _holds(path, listed.checksum):
        return None
    found = source.get() if source is not None else None
    message = found.messages.get(listed.revision) if found is not None else None
    entry = cache.IndexEntry.of(stat, listed.checksum, listed.revision, listed.parent, message)
    index.put(listed.name, entry)
    return entry


#: Per cache folder, the stat index and the migrations whose messages it lacks (`_learn_messages`).
_unknown_messages: dict[Path, tuple[cache.StatIndex, list[tuple[str, Migration]]]] = {}


def _learn_messages(index: cache.StatIndex, unknown: list[tuple[str, Migration]]) -> None:
    """At exit, note in `index` the messages of `unknown` migrations this process read (their files imported and
    checked then), so that a later run need not import them for their messages (e.g. a fresh build's rows).

    The index trusted from the manifest (`verified_entries`) knows ids and checksums, not messages. Only the
    latest history loaded per cache folder is kept (one pending list, one exit hook per folder).
    """
    if index.directory is None or not unknown:
        return
    if index.directory not in _unknown_messages:
        import atexit

        atexit.register(_save_messages, index.directory)
    _unknown_messages[index.directory] = (index, unknown)


def _save_messages(directory: Path) -> None:
    index, unknown = _unknown_messages.pop(directory, (None, []))
    if index is None:
        return
    for name, migration in unknown:
        entry = index.entries.get(name)
        message = migration.known_message
        if entry is not None and message is not None and entry.message is None and entry.checksum == migration.checksum:
            index.put(name, entry._replace(message=message))
    index.save()


def _rehashed(index: cache.StatIndex, name: str, path: str, stat: os.stat_result) -> cache.IndexEntry | None:
    """The index entry of `name` when the file has the same size and content (it was only touched)."""
    entry = index.entries.get(name)
    if entry is None or entry.size != stat.st_size or not _holds(path, entry.checksum):
        return None
    fresh = cache.IndexEntry.of(stat, entry.checksum, entry.revision, entry.parent, entry.message)
    index.put(name, fresh)
    return fresh


def _holds(path: str, checksum: str) -> bool:
    """True when the file at `path` can be read and its content has `checksum` (read without `pathlib`: a cold
    load of thousands of files pays its overhead per file)."""
    try:
        with open(path, "rb") as file:
            return checksum_of(file.read()) == checksum
    except OSError:
        return False


def _manifest_state(folder: Path, history: History, entries: list[Entry] | ValueError | None,
                    create: bool) -> str:
    if isinstance(entries, ValueError):
        return STALE
    if entries is None:
        if create and folder.is_dir():
            try:  # a head snapshot left there names the manifest it was written with: used only if it is this one
                write(folder, entries_of(history.chain))
            except OSError:
                return MISSING
            return CREATED
        return MISSING
    return FRESH if entries == entries_of(history.chain) else STALE


@dataclass(frozen=True)
class Summary:
    """What the fast paths need of a verified folder: how many migrations, the head, `pairs_digest` of them."""

    count: int
    head: str | None
    pairs: str


def pairs_digest(pairs: Iterable[str]) -> str:
    """md5 hex of the sorted ``revision checksum`` strings joined by commas (a database computes the same)."""
    return hashlib.md5(",".join(sorted(pairs)).encode("utf-8"), usedforsecurity=False).hexdigest()


def summarize(entries: Sequence[Entry]) -> Summary:
    """The `Summary` of manifest entries."""
    return Summary(len(entries), entries[-1].revision if entries else None,
                   pairs_digest(f"{entry.revision} {entry.checksum}" for entry in entries))


def verified_summary(folder: Path | str, cache_root: Path | str | None = None) -> Summary | None:
    """The `Summary` of the manifest when it matches the folder exactly (names, contents, one chain); else None.

    Uses the standard library only. When the manifest and the files' names,
    sizes and mtimes are those of the last successful check (and old enough not
    to be racy), the summary saved then is used: only the folder is listed and
    stat'ed. Otherwise the manifest is parsed, unchanged files are recognised by
    the stat index and the others hashed.
    """
    folder = Path(folder)
    checked = _check_folder(folder, cache_root)
    if checked is None:
        return None
    summary, _entries = checked
    return summary


def verified_entries(folder: Path | str, cache_root: Path | str | None = None) -> list[Entry] | None:
    """The manifest's entries when it matches the folder exactly (see `verified_summary`); else None."""
    checked = _check_folder(Path(folder), cache_root, entries_needed=True)
    return None if checked is None else checked[1]


def _check_folder(folder: Path, cache_root: Path | str | None, *,
                  entries_needed: bool = False) -> tuple[Summary, list[Entry]] | None:
    try:
        text = (folder / MANIFEST_NAME).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    files = {entry.name: entry for entry in listing(folder)}
    stats = {name: entry.stat() for name, entry in files.items()}
    directory = cache.folder_cache(cache_root, folder) if cache_root is not None else None
    signature = _signature(text, stats)
    mark = cache.read_mark(directory, "verified") if directory is not None and not entries_needed else None
    if mark is not None:
        saved, _, rest = mark.partition("\n")
        parts = rest.split(" ")
        if saved == signature and len(parts) == 3:
            return Summary(int(parts[0]), None if parts[1] == "-" else parts[1], parts[2]), []
    try:
        entries = parse(text)
    except ValueError:
        return None
    if len(files) != len(entries) or any(entry.name not in files for entry in entries):
        return None
    if not _verify_files(entries, files, stats, directory):
        return None
    summary = summarize(entries)
    newest = max((max(stat.st_mtime_ns, stat.st_ctime_ns) for stat in stats.values()), default=0)
    if directory is not None and newest + cache.RACY_NS <= cache.now_ns():
        cache.write_mark(directory, "verified", f"{signature}\n{summary.count} {summary.head or '-'} {summary.pairs}")
    return summary, entries


def _signature(text: str, stats: dict[str, os.stat_result]) -> str:
    """A hash of the manifest and of every file's name, size, mtime and ctime."""
    digest = hashlib.sha256(text.encode("utf-8"))
    digest.update("".join(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}\n"
                          for name, stat in sorted(stats.items()))
                  .encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _verify_files(entries: list[Entry], files: dict[str, os.DirEntry[str]], stats: dict[str, os.stat_result],
                  directory: Path | None) -> bool:
    """True when every file has the manifest's checksum (by the stat index, else by hashing it)."""
    index = cache.StatIndex.load(directory)
    for entry in entries:
        stat = stats[entry.name]
        known = index.trusted(entry.name, stat)
        if known is not None and known.checksum == entry.checksum and known.revision == entry.revision:
            continue
        try:
            checksum = checksum_of(Path(files[entry.name].path).read_bytes())
        except OSError:
            return False
        if checksum != entry.checksum:
            return False
        old = index.entries.get(entry.name)
        message = old.message if old is not None and old.checksum == checksum else None
        index.put(entry.name, cache.IndexEntry.of(stat, checksum, entry.revision, entry.parent, message))
    index.save()
    return True
