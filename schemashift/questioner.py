"""Questioners: how the differ asks the user about possible renames."""

from __future__ import annotations

import sys
from typing import Callable, TextIO


class TerminalQuestioner:
    """Asks at a terminal: ``Did you rename users.name to users.full_name? [y/N]``."""

    def __init__(self, ask: Callable[[str], str] | None = None, stream: TextIO | None = None) -> None:
        self._ask = ask or input
        self._stream = stream or sys.stderr

    def ask_rename(self, kind: str, old: str, new: str) -> bool | None:
        """True for yes, False for no (EOF counts as no)."""
        while True:
            try:
                answer = self._ask(f"Did you rename {old} to {new}? [y/N] ").strip().lower()
            except EOFError:
                return False
            if answer in ("y", "yes"):
                return True
            if answer in ("", "n", "no"):
                return False
            print("Please answer y or n.", file=self._stream)
