"""Async drivers: the `_async` API inside a running event loop, and every CLI command with an async URL."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

import schemashift
from helpers import cli, scalar, set_models, write_project

pytest.importorskip("greenlet")


@pytest.fixture(autouse=True)
def forget_imported_models() -> Iterator[None]:
    """The in-process API imports the project's `app.models`: forget it, so other modules import their own."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [name for name in sys.modules if name == "app" or name.startswith("app.")]:
        del sys.modules[name]

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "mysql": "mysql+aiomysql"}

V1 = '''
import sqlalchemy as sa

Base = sa.MetaData()
item = sa.Table("item", Base, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)))
'''
V2 = V1 + '''
tag = sa.Table("tag", Base, sa.Column("id", sa.Integer, primary_key=True),
               sa.Column("item_id", sa.ForeignKey("item.id")), sa.Column("label", sa.String(20), index=True))
'''


def async_url(url: str, backend: str) -> str:
    """`url` with its driver swapped for the backend's async one."""
    return sa.make_url(url).set(drivername=ASYNC_DRIVERS[backend]).render_as_string(hide_password=False)


def test_every_command_with_an_async_url(db_url: str, backend: str, tmp_path: Path) -> None:
    pytest.importorskip({"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql"}[backend])
    directory = write_project(tmp_path, async_url(db_url, backend), V1)
    cli(directory, "generate", "-m", "create item")
    assert cli(directory, "status", check=False).returncode == 1
    cli(directory, "upgrade")
    assert cli(directory, "status").returncode == 0
    set_models(directory, V2)
    cli(directory, "generate", "-m", "tags")
    assert "CREATE TABLE tag" in cli(directory, "upgrade", "--sql").stdout
    cli(directory, "upgrade", "--dry-run")
    cli(directory, "upgrade")
    assert cli(directory, "diff").returncode == 0
    assert len(cli(directory, "history", "--applied").stdout.splitlines()) == 2
    cli(directory, "verify")
    cli(directory, "downgrade", "-1")
    assert scalar(db_url, "SELECT count(*) FROM item") == 0
    cli(directory, "upgrade")
    assert cli(directory, "status").returncode == 0


def test_upgrade_async_inside_a_running_loop(fresh_db: str, backend: str, tmp_path: Path) -> None:
    """Four concurrent `upgrade_async` calls on one AsyncEngine (as four lifespans would): applied once."""
    pytest.importorskip({"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql"}[backend])
    from sqlalchemy.ext.asyncio import create_async_engine

    db_url = fresh_db
    directory = write_project(tmp_path, db_url, V1)
    cli(directory, "generate", "-m", "create item")
    set_models(directory, V2)
    cli(directory, "generate", "-m", "tags")
    config = directory / "schemashift.toml"

    async def main() -> None:
        engine = create_async_engine(async_url(db_url, backend), poolclass=sa.pool.NullPool)
        try:
            await asyncio.gather(*(schemashift.upgrade_async(engine, config=config) for _ in range(4)))
            async with engine.connect() as connection:
                await schemashift.downgrade_async(connection, "-1", config=config)
            await schemashift.upgrade_async(engine, config=config)
        finally:
            await engine.dispose()
        assert await schemashift.check_async(config=config)

    asyncio.run(main())
    assert scalar(db_url, "SELECT count(*) FROM schemashift_version") == 2
    assert cli(directory, "status").returncode == 0
