"""Alembic-style command functions, for code written against that familiar shape.

    from schemashift import command
    command.revision(engine, autogenerate=True, message="Add new table")
    command.upgrade(engine, "head")
    command.downgrade(engine, "-1")

The configuration is found from the working directory (or pass ``config=``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def revision(bind: Any = None, *, autogenerate: bool = True, message: str = "", config: Any = None,
             env: str | None = None) -> Path | None:
    """Write a new migration: the model changes when `autogenerate`, else an empty one.

    `bind` is accepted for symmetry; generating needs no database.
    """
    from schemashift.services import startup

    return startup.generate(message, config=config, env=env, empty=not autogenerate)


def upgrade(bind: Any = None, target: str = "head", *, config: Any = None, env: str | None = None) -> None:
    """Upgrade to `target` (default head)."""
    from schemashift.services import startup

    startup.upgrade(bind, target, config=config, env=env)


def downgrade(bind: Any = None, target: str = "-1", *, config: Any = None, env: str | None = None) -> None:
    """Downgrade to `target` (``-N``, a revision, or ``base``)."""
    from schemashift.services import startup

    startup.downgrade(bind, target, config=config, env=env)
