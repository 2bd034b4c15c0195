"""`schemashift manifest`: write ``schemashift.sum`` for the migration files, or check it against them.

Needs no database and imports no SQLAlchemy of its own (only what loading the
migration files imports), so the command line calls it directly rather than
through `schemashift.api`. See `schemashift.history.manifest` for the format. It also writes the head snapshot
(`schemashift.head`, `schemashift.history.snapshot`); `--check` notes when that one is missing or stale
but exits by the manifest alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from schemashift.errors import ConfigError, SchemashiftError
from schemashift.history import manifest as manifest_file
from schemashift.history.snapshot import SNAPSHOT_NAME

if TYPE_CHECKING:
    from schemashift.config import Config

Output = Callable[[str], None]


def manifest(config: Config, *, check: bool = False, out: Output = print) -> bool:
    """Write the manifest of the configured migrations folder; with `check`, compare it and report (False: stale)."""
    from schemashift.dialects import run_time_dialects
    from schemashift.history.chain import History

    folder = config.migrations_dir
    history = History.load(folder)
    if check:
        problems = manifest_file.problems(folder, history)
        for problem in problems:
            out(f"PROBLEM: {problem}")
        if problems:
            out("run `schemashift manifest` to rewrite it")
        else:
            out(f"OK: {manifest_file.MANIFEST_NAME} matches the {len(history)} migration(s).")
        note = manifest_file.snapshot_problem(folder, history)
        if note:
            out(f"NOTE: {note}: a fresh build replays every migration; run `schemashift manifest` to rewrite it")
        return not problems
    if not folder.is_dir():
        raise ConfigError(f"the migrations folder {folder} does not exist")
    try:
        path, head = manifest_file.write_all(folder, history, run_time_dialects(config))
    except OSError as exc:
        raise SchemashiftError(f"cannot write {folder / manifest_file.MANIFEST_NAME}: {exc.strerror or exc}") from None
    out(f"wrote {path.name}: {len(history)} migration(s), head {history.head or 'base'}")
    if head is not None:
        out(f"wrote {SNAPSHOT_NAME}: the schema at {head.revision} "
            "(commit it with the migrations)")
    return True


__all__ = ["manifest"]
