"""The SQLAlchemy names schemashift reaches beyond the documented API, in one place, with a version check.

Each import here is used by exactly one feature; when SQLAlchemy moves one, this
module is the only place to change.
"""

from __future__ import annotations

import sqlalchemy as sa

SUPPORTED = ((2, 0), (2, 1))
VERSION = tuple(int(part) for part in sa.__version__.split(".")[:2])
if VERSION not in SUPPORTED:  # pragma: no cover - guarded by the dependency range in pyproject.toml
    raise ImportError(f"schemashift supports SQLAlchemy 2.0 and 2.1, not {sa.__version__}")


def greenlet_spawn(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    """SQLAlchemy's bridge running sync code whose async-driver calls are awaited by the running loop."""
    from sqlalchemy.util import greenlet_spawn as spawn

    return spawn(function, *args, **kwargs)


def driver_in_transaction(dbapi_connection: object) -> bool:
    """Whether a DB-API connection (or SQLAlchemy's adapter around an async driver's) has a transaction open."""
    flag = getattr(dbapi_connection, "in_transaction", None)
    if flag is None:  # the asyncio adapters keep the driver's connection in `_connection`
        flag = getattr(getattr(dbapi_connection, "_connection", None), "in_transaction", False)
    return bool(flag)


def metadata_sequences(metadata: sa.MetaData) -> list[sa.Sequence]:
    """Every `Sequence` registered on `metadata` (standalone ones too; SQLAlchemy keeps them in `_sequences`)."""
    return list(metadata._sequences.values())
