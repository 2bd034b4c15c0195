"""FastAPI on an AsyncEngine: the lifespan awaits `schemashift.upgrade_async` before the first request.

    DATABASE_URL=postgresql+asyncpg://app@db/app uvicorn app:app --workers 4
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import schemashift

HERE = Path(__file__).resolve().parent
engine = create_async_engine(os.environ.get("DATABASE_URL", f"sqlite+aiosqlite:///{HERE / 'app.db'}"))


class Base(DeclarativeBase):
    """The application's models."""


class Note(Base):
    """A note."""

    __tablename__ = "note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(200))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Bring the database to head (exactly once across replicas), then serve."""
    await schemashift.upgrade_async(engine, config=HERE / "schemashift.toml")
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.post("/notes")
async def add_note(text: str) -> dict[str, int]:
    """Store a note."""
    async with engine.begin() as connection:
        result = await connection.execute(sa.insert(Note).values(text=text).returning(Note.id))
        return {"id": result.scalar_one()}


@app.get("/notes")
async def notes() -> list[str]:
    """Every note."""
    async with engine.connect() as connection:
        return list((await connection.execute(sa.select(Note.text).order_by(Note.id))).scalars())
