"""SQLModel on FastAPI: `models = "app:SQLModel"` (its `SQLModel.metadata`), upgraded in the lifespan.

    DATABASE_URL=postgresql+psycopg://app@db/app uvicorn app:app
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Optional

from fastapi import FastAPI
from sqlmodel import Field, Session, SQLModel, create_engine, select

import schemashift

HERE = Path(__file__).resolve().parent
engine = create_engine(os.environ.get("DATABASE_URL", f"sqlite:///{HERE / 'app.db'}"))


class Note(SQLModel, table=True):
    """A note."""

    id: Optional[int] = Field(default=None, primary_key=True)
    text: str = Field(max_length=200)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Bring the database to head, off the event loop (a sync engine), then serve."""
    await asyncio.to_thread(schemashift.upgrade, engine, config=HERE / "schemashift.toml")
    yield
    engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.post("/notes")
def add_note(text: str) -> dict[str, int]:
    """Store a note."""
    with Session(engine) as session:
        note = Note(text=text)
        session.add(note)
        session.commit()
        return {"id": note.id or 0}


@app.get("/notes")
def notes() -> list[str]:
    """Every note."""
    with Session(engine) as session:
        return [note.text for note in session.exec(select(Note).order_by(Note.id))]
