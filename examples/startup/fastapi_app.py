"""Migrating at start-up in a FastAPI app: `schemashift.upgrade(engine)` in the lifespan.

Every replica (and every worker of every replica) may start at the same moment:
`upgrade` takes the migration lock first, so one process applies the pending
migrations, the others wait for it, find the database at head and go on. A
database left partly migrated, or a migration edited after it was applied, makes
`upgrade` raise a `SchemashiftError` with a one-line message — the app then
refuses to start rather than serve against a schema it does not expect.

Run it (``schemashift.toml``, the models and ``migrations/`` next to this file,
as ``schemashift init`` writes them)::

    pip install fastapi uvicorn '/path/to/schemashift[postgresql]'   # a clone: not on PyPI yet
    DATABASE_URL=postgresql+psycopg://app@db.internal/app uvicorn fastapi_app:app --workers 4
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import sqlalchemy as sa
from fastapi import FastAPI

import schemashift

HERE = Path(__file__).resolve().parent
engine = sa.create_engine(os.environ.get("DATABASE_URL", f"sqlite:///{HERE / 'app.db'}"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Bring the database to head before the first request, then release the engine at shutdown."""
    logging.basicConfig(level=logging.INFO)  # `upgrade` reports on the `schemashift` logger
    # blocking work (waiting for the lock, running DDL) off the event loop
    await asyncio.to_thread(schemashift.upgrade, engine, config=HERE / "schemashift.toml")
    yield
    engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
def health() -> dict[str, str]:
    """Answers once the schema is at head (the lifespan finished)."""
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    return {"status": "ok"}
