"""Keeping Python's cyclic garbage collector out of the bulk work.

Importing 2,000 models, reflecting 2,000 tables or replaying a long history
allocates millions of long-lived objects. The cyclic collector runs every 700
allocations and re-scans them, which more than doubled the time of those phases
(building the bench's 2,000-table models: 1.7 s with the default thresholds,
0.7 s without collections). The objects built there are either kept (the
schema) or freed by reference counting, so collections find almost nothing.

* `paused` — a context manager (and decorator) that switches the collector off
  for a bounded piece of work and back on afterwards. It nests, and it leaves a
  collector the application had switched off alone.
* `relax_for_process` — for a short-lived process (the CLI): raises the
  thresholds (collections still run, a hundred times less often, so a long
  command keeps its memory bounded) and makes `paused` *freeze* what the block
  leaves alive (``gc.freeze``), so that the first collection after it does not
  re-scan the millions of objects it built. (A library call inside an
  application does not freeze: cyclic garbage there stays collectable.)
"""

from __future__ import annotations

import gc
import threading
from contextlib import ContextDecorator
from typing import Any

#: Generation thresholds for the CLI process (Python's defaults are 700, 10, 10).
PROCESS_THRESHOLDS = (100_000, 50, 100)

_freeze_after_pause = False


class _PauseState:
    """How many `paused` blocks are open in this process, and whether the last one out re-enables the collector."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.restore = False


_STATE = _PauseState()


class paused(ContextDecorator):  # lower-case: used like a function: ``with paused():`` / ``@paused()``
    """No cyclic garbage collection inside the block (re-enabled on exit if it was on).

    The count of open blocks is process-wide, so blocks that overlap in several
    threads (one decorator instance shared by all of them) switch the collector
    back on exactly once, when the last of them ends.
    """

    def __enter__(self) -> paused:
        with _STATE.lock:
            if _STATE.depth == 0:
                _STATE.restore = gc.isenabled()
                gc.disable()
            _STATE.depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        with _STATE.lock:
            _STATE.depth -= 1
            if _STATE.depth or not _STATE.restore:
                return
            if _freeze_after_pause:
                gc.freeze()
            gc.enable()


def relax_for_process() -> None:
    """Collect a hundred times less often for the rest of this process; `paused` blocks then freeze.

    Never lowers the thresholds.
    """
    global _freeze_after_pause  # noqa: PLW0603 - one process-wide switch
    _freeze_after_pause = True
    current = gc.get_threshold()
    gc.set_threshold(*(max(a, b) for a, b in zip(current, PROCESS_THRESHOLDS, strict=False)))
