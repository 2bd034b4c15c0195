"""PostgreSQL: capabilities, SQL compilation, normalisation of reflected schemas, locking."""

from __future__ import annotations

from .base import Dialect


class PostgreSQLDialect(Dialect):
    """PostgreSQL."""

    name = "postgresql"

    # --- SQL compilation (owned by the dialects work) ---------------------

    # --- normalisation for comparison (owned by the reflection work) -------

    # --- locking ---------------------------------------------------------
