"""Questioners: how the differ asks the user about possible renames and values for existing rows."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from schemashift.errors import SchemashiftError
from schemashift.operations import Fill


class TerminalQuestioner:
    """Asks at a terminal: ``Did you rename users.name to users.full_name? [y/N]``."""

    def __init__(self, ask: Callable[[str], str] | None = None, stream: TextIO | None = None) -> None:
        self._ask = ask or input
        self._stream = stream or sys.stderr

    def ask_rename(self, kind: str, old: str, new: str) -> bool | None:
        """True for yes, False for no; None at end of input (no answer: `generate` stops, naming the options)."""
        while True:
            try:
                answer = self._ask(f"Did you rename {old} to {new}? [y/N] ").strip().lower()
            except EOFError:
                print(file=self._stream)
                return None
            if answer in ("y", "yes"):
                return True
            if answer in ("", "n", "no"):
                return False
            print("Please answer y or n.", file=self._stream)

    def ask_fill(self, column: str, type_text: str, convert: Callable[[str], Fill]) -> Fill | None:
        """A one-off value for the rows already in the table of `column`; None (refusal) on an empty answer or EOF.

        An answer that does not fit the column's type is asked again.
        """
        table = column.rpartition(".")[0]
        print(f"{column} is added NOT NULL without a default; rows already in {table} need a value "
              "(used once, not kept as a default).", file=self._stream)
        while True:
            try:
                answer = self._ask(f"Value for existing rows of {column} ({type_text}), empty to stop: ")
            except EOFError:
                return None
            if not answer.strip():
                return None
            try:
                return convert(answer.strip())
            except SchemashiftError as exc:
                print(f"{exc}.", file=self._stream)
