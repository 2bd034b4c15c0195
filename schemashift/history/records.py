"""What the version table records of a revision, as plain data: its states, its rows, the clock it uses.

The table itself and the code that reads and writes it are `schemashift.runtime.versions`;
these records sit lower so that planning (offline scripts, backups) can use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

APPLIED, RUNNING, FAILED = "applied", "running", "failed"
#: The marker row of a fresh build that commits in several transactions (`schemashift.runtime.fresh`): the build
#: to this revision started and has not recorded its revisions yet.
BUILDING = "building"


def now() -> datetime:
    """The current UTC time, naive and to the second, as the version, history and backup tables store it."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class AppliedRevision:
    """One row of the version table."""

    revision: str
    parent: str | None
    checksum: str
    message: str
    applied_at: datetime | None
    duration_ms: int | None
    state: str
    direction: str
    statements_done: int
    running_statement: str | None
    failed_statement: str | None
    error: str | None

    @property
    def complete(self) -> bool:
        """True when the revision applied cleanly."""
        return self.state == APPLIED

    @property
    def building(self) -> bool:
        """True for the marker row of a fresh build in progress or interrupted (see `BUILDING`)."""
        return self.state == BUILDING
