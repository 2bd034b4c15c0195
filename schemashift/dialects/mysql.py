"""MySQL and MariaDB: capabilities, SQL compilation, normalisation of reflected schemas, locking."""

from __future__ import annotations

from .base import Dialect


class MySQLDialect(Dialect):
    """MySQL and MariaDB."""

    name = "mysql"

    # --- SQL compilation (owned by the dialects work) ---------------------

    # --- normalisation for comparison (owned by the reflection work) -------

    # --- locking ---------------------------------------------------------
