"""What a command did on each tenant of a fleet: `TenantResult` rows and the `FleetReport` summary.

Standard library only: the fast no-op check of a fleet (`schemashift.runtime.fast`) reports
through it without SQLAlchemy, as `schemashift.services.fleet` does after a real run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class TenantResult:
    """How a command went on one tenant."""

    tenant: str
    exit_code: int
    revision: str | None
    duration: float
    detail: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the command succeeded on this tenant (status: at head and clean)."""
        return self.exit_code == 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"tenant": self.tenant, "ok": self.ok, "exit_code": self.exit_code, "revision": self.revision,
                "duration_s": round(self.duration, 4), "detail": self.detail, "error": self.error}


@dataclass
class FleetReport:
    """What a command did on each tenant of the fleet, in the order of the tenants."""

    command: str
    results: list[TenantResult]
    duration: float = 0.0

    @property
    def failed(self) -> list[TenantResult]:
        """The tenants the command did not succeed on."""
        return [result for result in self.results if not result.ok]

    @property
    def exit_code(self) -> int:
        """0 when every tenant succeeded, else the highest exit code of a tenant."""
        return max((result.exit_code for result in self.results), default=0)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"command": self.command, "tenants": len(self.results), "failed": len(self.failed),
                "duration_s": round(self.duration, 3), "exit_code": self.exit_code,
                "results": [result.as_dict() for result in self.results]}

    def lines(self) -> list[str]:
        """The summary table, then one line of totals."""
        rows = [(r.tenant, "ok" if r.ok else "FAILED", r.revision or "base", f"{r.duration:.2f}s",
                 r.error or r.detail) for r in self.results]
        header = ("TENANT", "RESULT", "REVISION", "TIME", "DETAIL")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
        table = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4]
                 for row in [header, *rows]]
        total = (f"{self.command}: {len(self.results) - len(self.failed)} of {len(self.results)} tenant(s) "
                 f"succeeded, {len(self.failed)} failed ({self.duration:.2f}s)")
        return [line.rstrip() for line in table] + [total]


__all__ = ["FleetReport", "TenantResult"]
