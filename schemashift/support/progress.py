"""What a run shows while it goes: plain lines, a live display at a terminal (rich), or only the result.

The executor calls a `Reporter` at the start of each migration, the start of each
statement and the end of each migration; every other line of a command goes
through `Reporter.line`. `rich` is imported only by `RichReporter`, when it is used.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

Output = Callable[[str], None]


def first_line(text: str) -> str:
    """The first non-blank line of `text`, stripped."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


class Reporter:
    """Plain lines, as before progress existed: one line per finished migration (through `out`)."""

    def __init__(self, out: Output | None = None) -> None:
        self.out: Output = out or _print
        self._batch_step = -1  # the last tenth of a backfill shown (see `batch_done`)

    def line(self, text: str) -> None:
        """A line of the command's output."""
        self.out(text)

    def migration_started(self, label: str, number: int, total: int, statements: int) -> None:
        """Migration `label` (`number` of `total`, counting from 1) starts."""

    def statement_started(self, text: str) -> None:
        """A statement (SQL, or a Python step's description) starts running."""

    def migration_finished(self, verb: str, label: str, elapsed_ms: float) -> None:
        """Migration `label` was `verb` (applied, reverted) in `elapsed_ms`."""
        self.line(f"{verb} {label} in {elapsed_ms:.0f} ms")

    def batch_done(self, what: str, batches: int, rows: int, fraction: float | None) -> None:
        """A batched statement (`Backfill`) `what` finished its batch number `batches` (`rows` rows changed so
        far, `fraction` of its key range when known). Plain lines: one per tenth of the range (or per 100
        batches when the keys are not numbers), and the last."""
        step = int(fraction * 10) if fraction is not None else batches // 100
        if step > self._batch_step or fraction == 1.0:
            self._batch_step = -1 if fraction == 1.0 else step
            self.line(batch_line(what, batches, rows, fraction))

    def finished(self) -> None:
        """The executor ran its last migration (or failed): what follows is plain output again."""

    def close(self) -> None:
        """The command is over (also after a failure)."""
        self.finished()

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def batch_line(what: str, batches: int, rows: int, fraction: float | None) -> str:
    """``backfill users: 12 batches, 12000 rows (40%)``."""
    share = "" if fraction is None else f" ({fraction:.0%})"
    return f"  {what}: {batches} batch{'es' if batches != 1 else ''}, {rows} rows{share}"


def _print(text: str) -> None:
    print(text, flush=True)


class QuietReporter(Reporter):
    """Only the command's last line, printed when the run ends well (errors go to stderr as ever)."""

    def __init__(self, out: Output | None = None) -> None:
        super().__init__(out)
        self.last: str | None = None

    def line(self, text: str) -> None:
        self.last = text

    def migration_finished(self, verb: str, label: str, elapsed_ms: float) -> None:
        pass

    def batch_done(self, what: str, batches: int, rows: int, fraction: float | None) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        if (not exc or exc[0] is None) and self.last is not None:
            self.out(self.last)


class RichReporter(Reporter):
    """A live display at a terminal: migration n of N, the statement running now, elapsed times."""

    def __init__(self) -> None:
        super().__init__()
        self.progress: Any = None  # rich is imported at the first migration: a run with none stays fast
        self.overall: Any = None
        self.current: Any = None
        self.started = False
        self.broken = False  # rich could not be imported: plain lines
        self.statements_done = 0

    @property
    def console(self) -> Any:
        if self.progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(highlight=False), transient=True)
        return self.progress.console

    def line(self, text: str) -> None:
        if not self.started:
            self.out(text)
            return
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def migration_started(self, label: str, number: int, total: int, statements: int) -> None:
        if not self.started:
            if self.broken:
                return
            try:
                self.console  # noqa: B018 - builds the display
            except ImportError:  # found but not importable: plain lines then
                self.broken = True
                return
            self.progress.start()
            self.started = True
        if self.overall is None:
            self.overall = self.progress.add_task("migrations", total=total)
        self.progress.update(self.overall, completed=number - 1, total=total,
                             description=f"migration {number} of {total}")
        if self.current is not None:
            self.progress.remove_task(self.current)
        self.current = self.progress.add_task(self._cut(label), total=max(statements, 1))
        self.statements_done = -1  # the statement running now is not done
        self.progress.refresh()

    def statement_started(self, text: str) -> None:
        if self.current is None:
            return
        self.statements_done += 1
        self.progress.update(self.current, completed=self.statements_done, description=self._cut(first_line(text)))
        self.progress.refresh()

    def batch_done(self, what: str, batches: int, rows: int, fraction: float | None) -> None:
        if self.current is None:
            return
        self.progress.update(self.current, description=self._cut(batch_line(what, batches, rows, fraction).strip()))
        self.progress.refresh()

    def migration_finished(self, verb: str, label: str, elapsed_ms: float) -> None:
        super().migration_finished(verb, label, elapsed_ms)
        if self.overall is not None:
            self.progress.advance(self.overall)

    def finished(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False
            self.overall = self.current = None
            for task in list(self.progress.task_ids):
                self.progress.remove_task(task)

    def _cut(self, text: str) -> str:
        """`text` cut to fit the terminal beside the bar, count and clock."""
        room = max(self.console.width - 45, 20)
        return text if len(text) <= room else text[: room - 1] + "…"


def progress_wanted(stream: Any = None) -> bool:
    """True when a live display fits: `stream` (stdout) is a terminal and NO_COLOR is not set."""
    stream = stream or sys.stdout
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


def reporter_for(*, quiet: bool = False, out: Output | None = None) -> Reporter:
    """The reporter for a command run: quiet, live (rich, at a terminal) or plain lines."""
    if quiet:
        return QuietReporter(out)
    if progress_wanted() and importlib.util.find_spec("rich") is not None:  # an optional extra
        return RichReporter()
    return Reporter(out)
