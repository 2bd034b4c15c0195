"""Running a `Backfill`: batches over primary-key ranges, one short transaction each, resumable after a kill.

Each batch runs in one transaction that

1. finds the first key of the batch after it
   (``SELECT key … WHERE key >= :start ORDER BY key LIMIT 1 OFFSET <batch_size>``,
   an index range read),
2. updates the rows with ``start <= key < stop`` that the backfill's `where` selects
   (the last batch has no upper bound, so rows added meanwhile at the end are
   included), and
3. records where it stands in the journal: the version row's ``running_statement``
   becomes the statement followed by a line ``-- backfill position: {json}`` (the
   next batch's first key, batches and rows done), written by the caller in the
   same transaction as the update.

After a kill (or a failed batch), `repair continue` resumes the step at the
backfill and `saved_position` reads that line back: finished batches are not run
again. Keys round-trip through JSON with their type (integers, text, dates,
decimals, UUIDs).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from schemashift.dialects.base import BatchSql

#: What separates the statement from its saved position in the journal.
MARK = "\n-- backfill position: "

_DECODERS: dict[str, Any] = {
    "datetime": datetime.fromisoformat, "date": date.fromisoformat, "decimal": Decimal, "uuid": uuid.UUID,
}


@dataclass(frozen=True)
class Position:
    """How far a backfill got: `start` is the first key of the next batch (None: the first row; `done`: none
    left), with the batches and rows done so far."""

    start: Any = None
    batches: int = 0
    rows: int = 0
    done: bool = False

    def encode(self) -> str:
        """The position as one line of JSON."""
        kind, value = _encode_key(self.start)
        return json.dumps({"start": value, "type": kind, "batches": self.batches, "rows": self.rows,
                           "done": self.done}, sort_keys=True)


def _encode_key(key: Any) -> tuple[str, Any]:
    if key is None or isinstance(key, (bool, int, float, str)):
        return "plain", key
    for kind, cls in (("datetime", datetime), ("date", date), ("decimal", Decimal), ("uuid", uuid.UUID)):
        if isinstance(key, cls):
            return kind, key.isoformat() if isinstance(key, date) else str(key)
    return "plain", str(key)


def marked(text: str, position: Position) -> str:
    """The journal's text for a backfill `text` that stands at `position`."""
    return text + MARK + position.encode()


def saved_position(journal: str | None, text: str) -> Position | None:
    """The position the journal text `journal` records for the backfill statement `text` (None: none saved)."""
    if not journal or not journal.startswith(text + MARK):
        return None
    try:
        data = json.loads(journal[len(text) + len(MARK):])
        start = data["start"]
        if start is not None and data.get("type", "plain") != "plain":
            start = _DECODERS[data["type"]](start)
        return Position(start, int(data["batches"]), int(data["rows"]), bool(data["done"]))
    except (ValueError, KeyError, TypeError):
        return None


def _escaped(text: str) -> str:
    """`text` with its colons escaped for `sa.text` (only the batch bounds are parameters)."""
    return text.replace(":", "\\:")


class BatchRunner:
    """Builds and runs the batches of one backfill on `connection` (the caller owns the transactions)."""

    def __init__(self, connection: sa.Connection, parts: BatchSql, batch_size: int) -> None:
        self.connection = connection
        parts = replace(parts, table=_escaped(parts.table), key=_escaped(parts.key),
                        assignments=_escaped(parts.assignments), where=_escaped(parts.where) if parts.where else None)
        key, table = parts.key, parts.table
        self._next = {
            False: sa.text(f"SELECT {key} FROM {table} ORDER BY {key} LIMIT 1 OFFSET {batch_size}"),
            True: sa.text(f"SELECT {key} FROM {table} WHERE {key} >= :start ORDER BY {key} LIMIT 1 "
                          f"OFFSET {batch_size}"),
        }
        self._update = {
            (False, False): sa.text(parts.update()),
            (True, False): sa.text(parts.update(f"{key} >= :start")),
            (False, True): sa.text(parts.update(f"{key} < :stop")),
            (True, True): sa.text(parts.update(f"{key} >= :start AND {key} < :stop")),
        }
        self._span = sa.text(f"SELECT MIN({key}), MAX({key}) FROM {table}")

    def span(self) -> tuple[Any, Any]:
        """The smallest and largest key now (for progress; read in the caller's transaction)."""
        row = self.connection.execute(self._span).one()
        return row[0], row[1]

    def batch(self, position: Position) -> Position:
        """Run the batch that starts at `position` (in the caller's transaction); the position after it."""
        params: dict[str, Any] = {} if position.start is None else {"start": position.start}
        stop = self.connection.execute(self._next[position.start is not None], params).scalar()
        if stop is not None:
            params["stop"] = stop
        result = self.connection.execute(self._update[(position.start is not None, stop is not None)], params)
        rows = max(result.rowcount or 0, 0)
        return Position(stop, position.batches + 1, position.rows + rows, stop is None)


def fraction(position: Position, span: tuple[Any, Any]) -> float | None:
    """How far through the key range `position` is (None when the keys are not numbers)."""
    if position.done:
        return 1.0
    low, high = span
    if position.start is None:
        return 0.0
    numbers = (int, float, Decimal)
    if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in (low, high, position.start)):
        return None
    width = float(high) - float(low) + 1
    return min(max((float(position.start) - float(low)) / width, 0.0), 1.0) if width > 0 else None


__all__ = ["MARK", "BatchRunner", "Position", "fraction", "marked", "saved_position"]
