"""The start-up API behind ``schemashift.upgrade(engine)`` and friends (and their async twins in `schemashift.aio`).

Each takes a bind (an Engine, a Connection, a URL or None for the configured
environment), a configuration (a path, a loaded `Config`, a `Project` or None to
find it from the working directory) and an environment name, and runs the
command without asking anything: migrations are confirmed (``yes``), and output
goes to the ``schemashift`` logger at INFO unless `out` is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from schemashift.services import generate as generate_service
from schemashift.services import migrate
from schemashift.services.project import Project, open_project

Output = Callable[[str], None]


def project_for(bind: Any, config: Any, env: str | None) -> Project:
    """`config` when it is a `Project`, else the project it and `env` name, on `bind`."""
    if isinstance(config, Project):
        return config
    return open_project(config, env, None, bind=bind)


def log_line(line: str) -> None:
    """Default output of the Python API: the `schemashift` logger at INFO."""
    logging.getLogger("schemashift").info(line)


def upgrade(bind: Any = None, target: str = "head", *, config: Any = None, env: str | None = None,
            out: Output | None = None) -> None:
    """Upgrade the database behind `bind` (or the configured env) to `target`, under the migration lock."""
    migrate.upgrade(project_for(bind, config, env), target, yes=True, out=out or log_line)


def downgrade(bind: Any = None, target: str = "-1", *, config: Any = None, env: str | None = None,
              out: Output | None = None) -> None:
    """Downgrade the database behind `bind` to `target` (``-N``, a revision, or ``base``)."""
    migrate.downgrade(project_for(bind, config, env), target, yes=True, out=out or log_line)


def generate(message: str, *, config: Any = None, env: str | None = None, empty: bool = False,
             defaults: Mapping[str, object] | None = None, out: Output | None = None) -> Path | None:
    """Write a migration for what the models changed; None when nothing did. Needs no database."""
    return generate_service.generate(project_for(None, config, env), message, empty=empty, defaults=defaults,
                                     out=out or log_line)


def check(*, config: Any = None, env: str | None = None, out: Output | None = None) -> bool:
    """True when the models and the migrations agree."""
    return generate_service.check(project_for(None, config, env), out=out or log_line)


__all__ = ["check", "downgrade", "generate", "log_line", "project_for", "upgrade"]
