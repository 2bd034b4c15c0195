"""Running a `Backfill`: batches over primary-key ranges, one short transaction each, resumable after a kill.

When the backfill starts it reads the largest key there is (`BatchRunner.span`):
that is its `Position.last`, and no batch goes past it. Rows inserted meanwhile
are left alone (a column the backfill fills already has its default for them),
and no batch locks the end of the table, where writers insert. Each batch runs
in one transaction that

1. finds the first key of the batch after it
   (``SELECT key … WHERE key >= :start AND key <= :last ORDER BY key LIMIT 1 OFFSET
   <batch_size>``, an index range read),
2. updates the rows with ``start <= key < stop`` that the backfill's `where`
   selects (the last batch: ``start <= key < last``, then ``key = last`` on its own,
   which locks that row only: InnoDB locks the gap after a range, here the end of
   the table where writers insert), and
3. records where it stands in the journal: the version row's ``running_statement``
   becomes the statement followed by a line ``-- backfill position: {json}`` (the
   next batch's first key, the bound, batches and rows done), written by the caller
   in the same transaction as the update.

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
    left), `last` the largest key when it started (None: not read yet), with the batches and rows done so far."""

    start: Any = None
    batches: int = 0
    rows: int = 0
    done: bool = False
    last: Any = None

    def encode(self) -> str:
        """The position as one line of JSON."""
        kind, value = _encode_key(self.start)
        last_kind, last = _encode_key(self.last)
        return json.dumps({"start": value, "type": kind, "last": last, "last_type": last_kind,
                           "batches": self.batches, "rows": self.rows, "done": self.done}, sort_keys=True)


def bounded(position: Position, largest: Any) -> Position:
    """`position` bounded by `largest`, the largest key now, unless it has its bound (a resumed backfill keeps the
    one read when it started); done at once when the table is empty."""
    if position.done or position.last is not None:
        return position
    return replace(position, last=largest, done=largest is None)


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
        return Position(_decode_key(data["start"], data.get("type")), int(data["batches"]), int(data["rows"]),
                        bool(data["done"]), _decode_key(data.get("last"), data.get("last_type")))
    except (ValueError, KeyError, TypeError):
        return None


def _decode_key(value: Any, kind: str | None) -> Any:
    """A key `_encode_key` wrote as `value` of `kind` (None or ``plain``: as JSON has it)."""
    return value if value is None or kind in (None, "plain") else _DECODERS[kind](value)


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
        start = {False: "", True: f"{key} >= :start AND "}
        self._next = {begun: sa.text(f"SELECT {key} FROM {table} WHERE {start[begun]}{key} <= :last ORDER BY {key} "
                                     f"LIMIT 1 OFFSET {batch_size}") for begun in (False, True)}
        self._update = {(begun, upper): sa.text(parts.update(f"{start[begun]}{key} < :{upper}"))
                        for begun in (False, True) for upper in ("stop", "last")}
        self._update_last = sa.text(parts.update(f"{key} = :last"))
        self._span = sa.text(f"SELECT MIN({key}), MAX({key}) FROM {table}")

    def span(self) -> tuple[Any, Any]:
        """The smallest and largest key now (for progress and the bound; read in the caller's transaction)."""
        row = self.connection.execute(self._span).one()
        return row[0], row[1]

    def batch(self, position: Position) -> Position:
        """Run the batch that starts at `position` (in the caller's transaction, its `last` read); the position
        after it."""
        params: dict[str, Any] = {"last": position.last}
        if position.start is not None:
            params["start"] = position.start
        stop = self.connection.execute(self._next[position.start is not None], params).scalar()
        if stop is not None:
            params["stop"] = stop
        rows = self._rows(self._update[(position.start is not None, "last" if stop is None else "stop")], params)
        if stop is None:  # the largest key on its own: a range ending at it would lock the end of the table (InnoDB)
            rows += self._rows(self._update_last, params)
        return Position(stop, position.batches + 1, position.rows + rows, stop is None, position.last)

    def _rows(self, update: sa.TextClause, params: dict[str, Any]) -> int:
        """Run `update`; the rows it changed."""
        return max(self.connection.execute(update, params).rowcount or 0, 0)


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


__all__ = ["MARK", "BatchRunner", "Position", "bounded", "fraction", "marked", "saved_position"]
