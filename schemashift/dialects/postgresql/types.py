"""PostgreSQL's own SQLAlchemy types for neutral types (JSONB, TIMESTAMP/TIME with a precision).

`build` is found through the registry by `schemashift.sqla.types.to_sa_type`; it
answers None where the generic SQLAlchemy type serves.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from schemashift.model.types import Type


def build(typ: Type) -> sa.types.TypeEngine[Any] | None:
    """PostgreSQL's SQLAlchemy type for `typ`, or None for the generic one."""
    if typ.kind == "json" and typ.variant == "jsonb":
        return postgresql.JSONB()
    if typ.kind in ("datetime", "time") and typ.precision is not None:
        cls = postgresql.TIMESTAMP if typ.kind == "datetime" else postgresql.TIME
        return cls(timezone=typ.timezone, precision=typ.precision)
    return None
