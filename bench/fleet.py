"""The tenant-fleet task: T PostgreSQL schemas, 5 migrations each, schemashift against a loop of Alembic runs.

Both databases get the same T empty tenant schemas first (untimed), as a SaaS
database has them. Alembic is run the way teams do it today: one process that
loops over the tenants and calls `alembic.command.upgrade` once per tenant, with
an `env.py` that maps the migrations' schema-less tables to the tenant through
``schema_translate_map`` (and ``search_path``, which Alembic's ALTER
statements need) and keeps the tenant's version table in its schema
(`ALEMBIC_ENV`, `ALEMBIC_LOOP`). schemashift runs ``upgrade --all-tenants`` on an
environment that lists the T tenants. Both are timed from empty (one run) and as
a no-op at head (repeated); the target is a no-op fleet check under 2 s.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import projects
import sqlalchemy as sa
from measure import Timing, failed
from synth import chain_steps

if TYPE_CHECKING:
    from tasks import Bench

#: Migrations per tenant.
MIGRATIONS = 5
PREFIX = "tenant_"

ALEMBIC_ENV = '''"""Alembic environment for one tenant of a schema-per-tenant fleet (schemashift benchmark)."""
from alembic import context

config = context.config
connection = config.attributes["connection"]
tenant = config.attributes["tenant"]
connection.exec_driver_sql(f'SET search_path TO "{tenant}"')  # ALTER TABLE ignores schema_translate_map
tenant_connection = connection.execution_options(schema_translate_map={None: tenant})
context.configure(connection=tenant_connection, target_metadata=None, version_table_schema=tenant)
with context.begin_transaction():
    context.run_migrations()
connection.commit()
'''

ALEMBIC_LOOP = '''"""Upgrade every tenant schema with Alembic, one `command.upgrade` per tenant (the usual loop)."""
import sys

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

ini, url, count, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
config = Config(ini)
with engine.connect() as connection:
    for index in range(count):
        config.attributes["connection"] = connection
        config.attributes["tenant"] = f"{prefix}{index:05d}"
        command.upgrade(config, "head")
engine.dispose()
'''


def tenant_names(count: int) -> list[str]:
    """The tenant schema names."""
    return [f"{PREFIX}{index:05d}" for index in range(count)]


def create_schemas(url: str, count: int) -> None:
    """T empty tenant schemas in the database at `url`."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            for name in tenant_names(count):
                connection.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    finally:
        engine.dispose()


def write_projects(bench: Bench, url: str, al_url: str, count: int) -> tuple[Path, Path, Path]:
    """The schemashift project (env ``fleet`` listing the tenants) and the Alembic ini and loop script."""
    steps = chain_steps(MIGRATIONS)
    project = bench.work / "fleet_schemashift"
    projects.write_schemashift_chain(projects.write_schemashift_project(project, None), steps)
    names = ", ".join(f'"{name}"' for name in tenant_names(count))
    with (project / "schemashift.toml").open("a", encoding="utf-8") as config:
        config.write(f'default_env = "fleet"\n\n[env.fleet]\nurl = "{url}"\ntenants = [{names}]\n')
    scripts = bench.work / "fleet_alembic"
    projects.write_alembic_chain(projects.write_alembic_scripts(scripts), steps)
    (scripts / "env.py").write_text(ALEMBIC_ENV, encoding="utf-8")
    ini = projects.write_alembic_ini(bench.work / "fleet_alembic.ini", scripts, al_url)
    loop = bench.work / "fleet_alembic_loop.py"
    loop.write_text(ALEMBIC_LOOP, encoding="utf-8")
    return project, ini, loop


def tenants_at_head(url: str, count: int, table: str) -> str | None:
    """None when every tenant schema holds the chain's last table (with its last column), else what is missing."""
    last = chain_steps(MIGRATIONS)[-1]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            found = connection.execute(sa.text(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema LIKE :prefix "
                "AND table_name = :table AND column_name = :column"),
                {"prefix": f"{PREFIX}%", "table": table, "column": last.column or "id"}).scalar()
    finally:
        engine.dispose()
    return None if found == count else f"{found} of {count} tenants hold {table}.{last.column or 'id'}"


def _checked(timing: Timing, url: str, count: int) -> Timing:
    if timing.ok:
        problem = tenants_at_head(url, count, chain_steps(MIGRATIONS)[-1].table)
        if problem:
            return failed(problem)
    return timing


def fleet(bench: Bench, backend: str) -> None:
    """Upgrade T tenant schemas from empty (serially, then 4 at a time), then the no-op check at head."""
    count, read = bench.sizes.tenants, bench.sizes.repeat_read
    size = f"T={count}, {MIGRATIONS} migrations"
    al_url, ss_url = bench.dbs.create(backend, "fleet_al"), bench.dbs.create(backend, "fleet_ss")
    parallel_url = bench.dbs.create(backend, "fleet_ssp")
    for url in (al_url, ss_url, parallel_url):
        create_schemas(url, count)
    project, ini, loop = write_projects(bench, ss_url, al_url, count)
    alembic_argv = [sys.executable, str(loop), str(ini), al_url, str(count), PREFIX]
    upgrade = ["upgrade", "--all-tenants", "--yes", "--quiet"]

    alembic = _checked(bench.time(alembic_argv, 1), al_url, count)
    schemashift = _checked(bench.time(bench.schemashift(*upgrade), 1, cwd=project), ss_url, count)
    bench.add("fleet upgrade from empty", backend, size, alembic, schemashift,
              notes="Alembic: one process looping command.upgrade per tenant (schema_translate_map + search_path); "
                    "schemashift: upgrade --all-tenants, one tenant after the other, each in one transaction "
                    "under its own (transaction-level) lock, with its version and history rows",
              target="ahead of the Alembic loop", met=_faster(alembic, schemashift, count))
    parallel = _checked(bench.time(bench.schemashift(*upgrade, "--parallel", "4", "--url", parallel_url), 1,
                                   cwd=project), parallel_url, count)
    bench.add("fleet upgrade from empty, --parallel 4", backend, size, alembic, parallel,
              notes="the same Alembic loop (serial, as teams run it) vs schemashift upgrade --all-tenants --parallel 4",
              target="ahead of the Alembic loop", met=_faster(alembic, parallel, count))
    alembic_noop = bench.time(alembic_argv, read, warmup=True)
    schemashift_noop = bench.time(bench.schemashift(*upgrade), read, warmup=True, cwd=project)
    met = _faster(alembic_noop, schemashift_noop, count)
    if met is not None and schemashift_noop.ok:
        met = met and schemashift_noop.median <= 2.0  # type: ignore[operator]
    bench.add("fleet no-op upgrade at head", backend, size, alembic_noop, schemashift_noop,
              notes="every tenant already at head: schemashift reads the 1,000 version tables over libpq without "
                    "SQLAlchemy (250 per UNION ALL, 4 connections at once); Alembic: the same loop, one "
                    "command.upgrade per tenant",
              target="ahead of the Alembic loop; schemashift <= 2 s", met=met)
    bench.profile(f"fleet_noop_{backend}", upgrade, project)


def _faster(alembic: Timing, schemashift: Timing, count: int) -> bool | None:
    if count < 1000 or not (alembic.ok and schemashift.ok):
        return None
    return schemashift.median <= alembic.median  # type: ignore[operator]
