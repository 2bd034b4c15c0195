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


def run_async_cycle(url: str, config: Path, *, concurrent: int) -> None:
    """In a running loop on one AsyncEngine for `url`: `concurrent` `upgrade_async` calls at once (as that many
    lifespans would), a `downgrade_async` of one step on an AsyncConnection, an upgrade again, then the check."""
    from sqlalchemy.ext.asyncio import create_async_engine

    async def main() -> None:
        engine = create_async_engine(url, poolclass=sa.pool.NullPool)
        try:
            await asyncio.gather(*(schemashift.upgrade_async(engine, config=config) for _ in range(concurrent)))
            async with engine.connect() as connection:
                await schemashift.downgrade_async(connection, "-1", config=config)
            await schemashift.upgrade_async(engine, config=config)
        finally:
            await engine.dispose()
        assert await schemashift.check_async(config=config)

    asyncio.run(main())


def test_every_command_with_an_async_url(db_url: str, backend: str, tmp_path: Path) -> None:
    pytest.importorskip({"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql"}[backend])
    directory = write_project(tmp_path, async_url(db_url, backend), V1)
    cli(directory, "generate", "-m", "create item")
    assert cli(directory, "status", check=False).returncode == 1
    cli(directory, "upgrade")
    assert cli(directory, "status").returncode == 0
    stored = "SELECT count(*) FROM schemashift_version WHERE fingerprint IS NOT NULL"
    assert scalar(db_url, stored) == 1  # the fast `status` can answer next time, as with a sync driver
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
    db_url = fresh_db
    directory = write_project(tmp_path, db_url, V1)
    cli(directory, "generate", "-m", "create item")
    set_models(directory, V2)
    cli(directory, "generate", "-m", "tags")
    run_async_cycle(async_url(db_url, backend), directory / "schemashift.toml", concurrent=4)
    assert scalar(db_url, "SELECT count(*) FROM schemashift_version") == 2
    assert cli(directory, "status").returncode == 0


def test_upgrade_async_with_tenants(tmp_path: Path) -> None:
    """`upgrade_async(engine, tenants=...)` as the sync API: each tenant's schema upgraded on the loop, a report back."""
    pytest.importorskip("asyncpg")
    import uuid

    from sqlalchemy.ext.asyncio import create_async_engine

    from conftest import create_database, drop_database, require_backend
    from schemashift.errors import ConfigError

    require_backend("postgresql")
    name = f"ss_async_fleet_{uuid.uuid4().hex[:8]}"
    db_url = create_database("postgresql", name, tmp_path)
    try:
        directory = write_project(tmp_path / "proj", db_url, V1, extra_config='tenants = ["acme", "globex"]\n')
        cli(directory, "generate", "-m", "create item")
        config = directory / "schemashift.toml"

        async def main() -> object:
            engine = create_async_engine(async_url(db_url, "postgresql"), poolclass=sa.pool.NullPool)
            try:
                with pytest.raises(ConfigError, match="parallel tenants need a sync bind"):
                    await schemashift.upgrade_async(engine, config=config, tenants=True, parallel=2)
                return await schemashift.upgrade_async(engine, config=config, tenants=True)
            finally:
                await engine.dispose()

        report = asyncio.run(main())
        assert report is not None and not report.failed  # type: ignore[attr-defined]
        assert [result.tenant for result in report.results] == ["acme", "globex"]  # type: ignore[attr-defined]
        for tenant in ("acme", "globex"):
            assert scalar(db_url, f"SELECT count(*) FROM {tenant}.item") == 0
            assert scalar(db_url, f"SELECT count(*) FROM {tenant}.schemashift_version") == 1
    finally:
        drop_database("postgresql", name)


def test_the_other_database_commands_with_an_async_url(fresh_db: str, backend: str, tmp_path: Path) -> None:
    """envs, lint, erd --live, backups list, repair, stamp, test-migrations and --json reports on an async URL."""
    pytest.importorskip({"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql"}[backend])
    directory = write_project(tmp_path, async_url(fresh_db, backend), V1)
    cli(directory, "generate", "-m", "create item")
    set_models(directory, V2)
    cli(directory, "generate", "-m", "tags")
    cli(directory, "test-migrations")  # the stairway, on the empty database
    cli(directory, "upgrade")
    assert '"reachable": true' in cli(directory, "envs", "--json").stdout
    assert '"exit_code": 0' in cli(directory, "status", "--json").stdout
    assert "erDiagram" in cli(directory, "erd", "--live").stdout
    cli(directory, "lint", "--all", check=False)
    assert cli(directory, "backups", "list", "--json").stdout.strip() == "[]"
    assert "Nothing to repair" in cli(directory, "repair").stdout
    cli(directory, "downgrade", "base")
    first = cli(directory, "history", "--json").stdout.split('"revision": "')[1].split('"')[0]
    cli(directory, "upgrade", first)
    cli(directory, "downgrade", "base")
    refused = cli(directory, "stamp", first, check=False)  # the tables are not there: stamp refuses
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    cli(directory, "upgrade")
    assert cli(directory, "check").returncode == 0 and cli(directory, "status").returncode == 0


def test_asyncmy_for_the_cli_and_the_async_api(tmp_path: Path) -> None:
    """MariaDB's other async driver: the commands on a `mysql+asyncmy` URL and `upgrade_async` inside a loop."""
    pytest.importorskip("asyncmy")
    import uuid

    from conftest import create_database, drop_database, require_backend

    require_backend("mysql")
    name = f"ss_asyncmy_{uuid.uuid4().hex[:8]}"
    db_url = create_database("mysql", name, tmp_path)
    url = sa.make_url(db_url).set(drivername="mysql+asyncmy").render_as_string(hide_password=False)
    try:
        directory = write_project(tmp_path / "proj", url, V1)
        cli(directory, "generate", "-m", "create item")
        cli(directory, "upgrade")
        assert cli(directory, "status").returncode == 0
        assert scalar(db_url, "SELECT count(*) FROM schemashift_version WHERE fingerprint IS NOT NULL") == 1
        set_models(directory, V2)
        cli(directory, "generate", "-m", "tags")
        assert "CREATE TABLE tag" in cli(directory, "upgrade", "--sql").stdout
        run_async_cycle(url, directory / "schemashift.toml", concurrent=3)
        assert scalar(db_url, "SELECT count(*) FROM schemashift_version") == 2
        assert cli(directory, "diff").returncode == 0 and cli(directory, "status").returncode == 0
        cli(directory, "downgrade", "base")
        assert scalar(db_url, "SELECT count(*) FROM schemashift_version") == 0
    finally:
        drop_database("mysql", name)
