"""Async twins of the start-up API, for applications built on SQLAlchemy's asyncio extension.

    await schemashift.upgrade_async(async_engine, config=HERE / "schemashift.toml")

`bind` may be an `AsyncEngine`, an `AsyncConnection`, a URL naming an async driver
(``postgresql+asyncpg``, ``mysql+asyncmy``, ``mysql+aiomysql``, ``sqlite+aiosqlite``) or
anything the synchronous API takes. The synchronous code runs in a greenlet on the
running event loop (SQLAlchemy's own bridge, as `AsyncConnection.run_sync` does),
so every database call is awaited by the loop and locks, journal and fast paths
behave exactly as with a sync driver. Work that needs no database (`generate_async`,
`check_async`) runs in a worker thread. The blocking parts that remain on the loop
are the CPU work of planning and the waits between lock polls.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from schemashift.services.fleet import FleetReport

T = TypeVar("T")


def sync_bind(bind: Any) -> Any:
    """The synchronous face of `bind`: an `AsyncEngine`'s engine, an `AsyncConnection`'s connection."""
    for attribute in ("sync_connection", "sync_engine"):
        inner = getattr(bind, attribute, None)
        if inner is not None:
            return inner
    return bind


_LOOP_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _loop_lock() -> asyncio.Lock:
    """One lock per event loop: migrations started by tasks of one loop run one after another."""
    loop = asyncio.get_running_loop()
    lock = _LOOP_LOCKS.get(loop)
    if lock is None:
        lock = _LOOP_LOCKS[loop] = asyncio.Lock()
    return lock


async def run_sync(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `function` where async drivers work from synchronous code (a greenlet on the running loop)."""
    from schemashift.sacompat import greenlet_spawn

    spawn: Callable[..., Awaitable[T]] = greenlet_spawn
    return await spawn(function, *args, **kwargs)


async def _migrate(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a migration command, after any other started from this loop.

    The database lock keeps other processes out; tasks of one loop queue here
    instead, because a task polling that lock would hold up the loop (and with it
    the task that holds the lock).
    """
    async with _loop_lock():
        return await run_sync(function, *args, **kwargs)


async def upgrade_async(bind: Any = None, target: str = "head", *, config: Any = None, env: str | None = None,
                        out: Callable[[str], None] | None = None, tenants: Sequence[str] | bool | str | None = None,
                        parallel: int = 1) -> FleetReport | None:
    """`schemashift.upgrade` for an async bind (or URL), inside a running event loop.

    With `tenants` (True or ``"all"``, a name or a list of names) every tenant is upgraded under its own lock and
    the fleet's report returned (`FleetFailed` after every tenant was tried, as in the sync API). On an async
    driver the tenants run one after another on the loop: `parallel` above 1 needs a sync bind (its threads
    cannot share the loop's connections).
    """
    from schemashift.errors import ConfigError
    from schemashift.services.startup import upgrade

    inner = sync_bind(bind)
    if parallel > 1 and tenants not in (None, False) and _is_async(bind, inner):
        raise ConfigError("parallel tenants need a sync bind: pass a sync engine or URL to upgrade_async, "
                          "or leave parallel at 1 (tenants then run one after another on the loop)")
    return await _migrate(upgrade, inner, target, config=config, env=env, out=out, tenants=tenants,
                          parallel=parallel)


def _is_async(bind: Any, inner: Any) -> bool:
    """True when `bind` is an async engine or connection, or a URL naming an async driver."""
    if inner is not bind:
        return True
    if isinstance(bind, str):
        driver = bind.split("://", 1)[0].partition("+")[2]
        return driver in ("asyncpg", "psycopg_async", "aiosqlite", "aiomysql", "asyncmy")
    return False


async def downgrade_async(bind: Any = None, target: str = "-1", *, config: Any = None, env: str | None = None,
                          out: Callable[[str], None] | None = None) -> None:
    """`schemashift.downgrade` for an async bind (or URL), inside a running event loop."""
    from schemashift.services.startup import downgrade

    await _migrate(downgrade, sync_bind(bind), target, config=config, env=env, out=out)


async def generate_async(message: str, *, config: Any = None, env: str | None = None, empty: bool = False,
                         out: Callable[[str], None] | None = None) -> Path | None:
    """`schemashift.generate` (no database) in a worker thread."""
    from schemashift.services.startup import generate

    return await asyncio.to_thread(generate, message, config=config, env=env, empty=empty, out=out)


async def check_async(*, config: Any = None, env: str | None = None, out: Callable[[str], None] | None = None) -> bool:
    """`schemashift.check` (no database) in a worker thread."""
    from schemashift.services.startup import check

    return await asyncio.to_thread(check, config=config, env=env, out=out)


def run_command(handler: Callable[[Any], int], args: Any) -> int:
    """Run a CLI command handler on a new event loop, for a configuration that names an async driver."""
    return asyncio.run(run_sync(handler, args))


__all__ = ["check_async", "downgrade_async", "generate_async", "run_sync", "sync_bind", "upgrade_async"]
