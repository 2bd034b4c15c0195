"""Migration files by name: which files of a folder are migrations, their numbers and their checksums.

A migration file is named ``<digits>_<anything>.py`` (`FILE_PATTERN`); its
number orders the folder and its checksum (`checksum_of`, line endings
normalised) is what the manifest, the stat index and the version table record.
This module uses the standard library only: the fast paths (`manifest`) and
the loaders above it share these few rules without importing migration code.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

#: Names of migration files: digits, an underscore, anything, ``.py``.
FILE_PATTERN = re.compile(r"^(\d+)_.*\.py$")


def checksum_of(data: bytes) -> str:
    """sha256 hex of `data` with line endings normalised to ``\\n``."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")).hexdigest()


def file_number(path: Path) -> str:
    """The digits that start the name of the migration file `path` (AssertionError for another name)."""
    match = FILE_PATTERN.match(path.name)
    assert match is not None  # callers only pass migration files
    return match.group(1)


def file_numbers(folder: Path | str) -> list[str]:
    """The number part of every migration file name in `folder` (any order; names only, no stat per file)."""
    numbers: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                match = FILE_PATTERN.match(entry.name)
                if match and entry.is_file():
                    numbers.append(match.group(1))
    except (FileNotFoundError, NotADirectoryError):
        pass
    return numbers


def listing(folder: Path) -> Iterator[os.DirEntry[str]]:
    """Migration files of `folder` (directory entries, any order); none when it does not exist."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if FILE_PATTERN.match(entry.name) and entry.is_file():
                    yield entry
    except FileNotFoundError:
        return
    except NotADirectoryError:
        return


def migration_files(folder: Path) -> list[Path]:
    """Migration files of `folder` sorted by name (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if FILE_PATTERN.match(path.name) and path.is_file())
