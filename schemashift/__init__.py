"""schemashift: schema migrations for SQLAlchemy models.

The functions here are the start-up friendly API; `schemashift.api` has the
full set the CLI uses. Imports are lazy so that ``import schemashift`` is cheap.

    import schemashift
    schemashift.upgrade(engine)            # at application start-up: locked, exactly once
    schemashift.downgrade(engine, "-1")
    schemashift.generate("add users")      # no database needed
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemashift.version import __version__

if TYPE_CHECKING:
    import sqlalchemy as sa

    from schemashift.services.fleet import FleetReport


def upgrade(bind: sa.Engine | sa.Connection | str | None = None, target: str = "head", *, config: Any = None,
            env: str | None = None, out: Callable[[str], None] | None = None,
            tenants: Sequence[str] | bool | str | None = None, parallel: int = 1) -> FleetReport | None:
    """Upgrade the database behind `bind` (or the configured env) to `target`, under the migration lock.

    Safe to call from many processes at once: one migrates, the others wait for the
    lock and then find the database at head. With `tenants` (True or ``"all"`` for every
    tenant of the environment, or a list of names) each tenant is upgraded under its own
    lock, `parallel` at a time, and the fleet's report is returned; a failed tenant raises
    `schemashift.services.fleet.FleetFailed` once every tenant was tried.
    """
    from schemashift.services import startup

    return startup.upgrade(bind, target, config=config, env=env, out=out, tenants=tenants, parallel=parallel)


def downgrade(bind: sa.Engine | sa.Connection | str | None = None, target: str = "-1", *, config: Any = None,
              env: str | None = None, out: Callable[[str], None] | None = None) -> None:
    """Downgrade the database behind `bind` to `target` (``-N``, a revision, or ``base``)."""
    from schemashift.services import startup

    startup.downgrade(bind, target, config=config, env=env, out=out)


def generate(message: str, *, config: Any = None, env: str | None = None, empty: bool = False,
             defaults: Mapping[str, object] | None = None, out: Callable[[str], None] | None = None) -> Path | None:
    """Write a migration for what the models changed; None when nothing did. Needs no database.

    `defaults` maps ``"table.column"`` to a one-off value for the rows already in a table that gets a NOT NULL
    column without a default (without one, such a column stops `generate`).
    """
    from schemashift.services import startup

    return startup.generate(message, config=config, env=env, empty=empty, defaults=defaults, out=out)


def check(*, config: Any = None, env: str | None = None, out: Callable[[str], None] | None = None) -> bool:
    """True when the models and the migrations agree."""
    from schemashift.services import startup

    return startup.check(config=config, env=env, out=out)


async def upgrade_async(bind: Any = None, target: str = "head", *, config: Any = None, env: str | None = None,
                        out: Callable[[str], None] | None = None, tenants: Sequence[str] | bool | str | None = None,
                        parallel: int = 1) -> FleetReport | None:
    """`upgrade` for an `AsyncEngine`, `AsyncConnection` or async-driver URL, inside a running event loop
    (`tenants` as for `upgrade`; on an async driver one tenant after another)."""
    from schemashift import aio

    return await aio.upgrade_async(bind, target, config=config, env=env, out=out, tenants=tenants, parallel=parallel)


async def downgrade_async(bind: Any = None, target: str = "-1", *, config: Any = None, env: str | None = None,
                          out: Callable[[str], None] | None = None) -> None:
    """`downgrade` for an async bind, inside a running event loop."""
    from schemashift import aio

    await aio.downgrade_async(bind, target, config=config, env=env, out=out)


async def generate_async(message: str, *, config: Any = None, env: str | None = None, empty: bool = False,
                         out: Callable[[str], None] | None = None) -> Path | None:
    """`generate` in a worker thread (it needs no database)."""
    from schemashift import aio

    return await aio.generate_async(message, config=config, env=env, empty=empty, out=out)


async def check_async(*, config: Any = None, env: str | None = None, out: Callable[[str], None] | None = None) -> bool:
    """`check` in a worker thread."""
    from schemashift import aio

    return await aio.check_async(config=config, env=env, out=out)


#: Declarations of views, functions, triggers, extensions and policies (`schemashift.sqla.objects`), loaded lazily.
_DECLARATIONS = ("View", "Function", "Trigger", "Extension", "Policy")


def __getattr__(name: str) -> Any:
    if name in _DECLARATIONS:
        from schemashift.sqla import objects

        return getattr(objects, name)
    raise AttributeError(f"module 'schemashift' has no attribute {name!r}")


__all__ = [
    "Extension",
    "Function",
    "Policy",
    "Trigger",
    "View",
    "__version__",
    "check",
    "check_async",
    "downgrade",
    "downgrade_async",
    "generate",
    "generate_async",
    "upgrade",
    "upgrade_async",
]
