"""Migration projects the benchmark writes for each tool: Alembic script folders and schemashift projects.

Alembic: an `env.py` (online and offline mode, compare_type and
compare_server_default on), a revision template and K revision files.
schemashift: a `schemashift.toml` and K migration files rendered with
`schemashift.operations.render.render_migration` from operations built with schemashift's own
converters. Both sides get the same chain (see `synth.chain_steps`) or the same
history of the version-1 models (see `synth.history_batches`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from synth import ChainStep, build_metadata, history_batches, table_name

CREATED = datetime(2024, 1, 1, 12, 0)

ENV_PY = '''"""Alembic environment written by the schemashift benchmark."""
import sys

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
target_metadata = None
_models = config.get_main_option("bench_models")
if _models:
    sys.path.insert(0, config.get_main_option("bench_models_path"))
    _module, _, _attr = _models.partition(":")
    target_metadata = getattr(__import__(_module), _attr)
OPTIONS = {"target_metadata": target_metadata, "compare_type": True, "compare_server_default": True}

if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = engine_from_config(config.get_section(config.config_ini_section), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
'''

TEMPLATE = '''"""${message}"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
'''

REVISION = '''"""{message}"""
from alembic import op
import sqlalchemy as sa

revision = {revision!r}
down_revision = {parent!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''


def revision_id(tool: str, index: int) -> str:
    """A stable 12-hex-digit revision id."""
    return hashlib.sha1(f"{tool}-{index}".encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- Alembic


def write_alembic_scripts(folder: Path) -> Path:
    """An Alembic script folder (env.py, template, empty versions/); returns the versions folder."""
    versions = folder / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (folder / "env.py").write_text(ENV_PY, encoding="utf-8")
    (folder / "script.py.mako").write_text(TEMPLATE, encoding="utf-8")
    return versions


def write_alembic_ini(path: Path, scripts: Path, url: str, models: tuple[Path, str] | None = None) -> Path:
    """An alembic.ini for `scripts` and `url`; `models` is (folder, "module:attr") of the target metadata."""
    lines = ["[alembic]", f"script_location = {scripts}", f"sqlalchemy.url = {url.replace('%', '%%')}"]
    if models is not None:
        lines += [f"bench_models_path = {models[0]}", f"bench_models = {models[1]}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _alembic_step(step: ChainStep) -> tuple[str, str]:
    if step.creates_table:
        return (f"    op.create_table({step.table!r}, sa.Column('id', sa.Integer(), primary_key=True),\n"
                f"                    sa.Column('label', sa.String(length=40), nullable=True))",
                f"    op.drop_table({step.table!r})")
    return (f"    op.add_column({step.table!r}, sa.Column({step.column!r}, sa.Integer(), nullable=True))",
            f"    op.drop_column({step.table!r}, {step.column!r})")


def write_alembic_chain(versions: Path, steps: list[ChainStep]) -> None:
    """One Alembic revision file per chain step."""
    parent: str | None = None
    for step in steps:
        revision = revision_id("alembic", step.index)
        upgrade, downgrade = _alembic_step(step)
        text = REVISION.format(message=f"step {step.index}", revision=revision, parent=parent,
                               upgrade=upgrade, downgrade=downgrade)
        (versions / f"{revision}_step_{step.index:05d}.py").write_text(text, encoding="utf-8")
        parent = revision


def write_alembic_history(versions: Path, n: int, revisions: int) -> None:
    """Alembic revisions that build the version-1 models in `revisions` steps (rendered by Alembic)."""
    from alembic.autogenerate import render_python_code
    from alembic.operations import ops

    metadata = build_metadata(n)
    parent: str | None = None
    for number, batch in enumerate(history_batches(n, revisions)):
        operations: list[ops.MigrateOperation] = []
        for index in batch:
            table = metadata.tables[table_name(index)]
            operations.append(ops.CreateTableOp.from_table(table))
            operations += [ops.CreateIndexOp.from_index(ix) for ix in sorted(table.indexes, key=lambda i: i.name)]
        upgrade = "    " + render_python_code(ops.UpgradeOps(ops=operations)).strip()
        downgrade = "\n".join(f"    op.drop_table({table_name(index)!r})" for index in reversed(batch))
        revision = revision_id("alembic-history", number)
        text = REVISION.format(message=f"history {number}", revision=revision, parent=parent,
                               upgrade=upgrade, downgrade=downgrade)
        (versions / f"{revision}_history_{number:05d}.py").write_text(text, encoding="utf-8")
        parent = revision


# --------------------------------------------------------------------------- schemashift


def write_schemashift_project(folder: Path, models: str | None) -> Path:
    """A schemashift project (config + empty migrations folder); the URL is passed with --url. Returns migrations/."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# schemashift benchmark project (generated)"]
    if models:
        lines.append(f'models = "{models}"')
    lines.append('migrations = "migrations"')
    (folder / "schemashift.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    migrations = folder / "migrations"
    migrations.mkdir(exist_ok=True)
    return migrations


def _write_migration(folder: Path, number: int, parent: str | None, message: str, operations: list) -> str:
    from schemashift.operations.render import render_migration

    revision = revision_id("schemashift", number)
    source = render_migration(revision, parent, message, operations, CREATED)
    (folder / f"{number + 1:05d}_{message.replace(' ', '_')}.py").write_text(source, encoding="utf-8")
    return revision


def _chain_operations(step: ChainStep) -> list:
    from schemashift.operations import AddColumn, CreateTable
    from schemashift.sqla.from_metadata import convert_column, convert_table

    metadata = sa.MetaData()
    if step.creates_table:
        table = sa.Table(step.table, metadata, sa.Column("id", sa.Integer, primary_key=True),
                         sa.Column("label", sa.String(40), nullable=True))
        return [CreateTable(convert_table(table))]
    table = sa.Table(step.table, metadata, sa.Column(step.column, sa.Integer, nullable=True))
    return [AddColumn(step.table, convert_column(table.c[step.column], table))]


def write_schemashift_chain(migrations: Path, steps: list[ChainStep]) -> None:
    """One schemashift migration file per chain step."""
    parent: str | None = None
    for step in steps:
        parent = _write_migration(migrations, step.index, parent, f"step {step.index}", _chain_operations(step))


def write_schemashift_history(migrations: Path, n: int, revisions: int) -> None:
    """schemashift migrations that build the version-1 models in `revisions` steps."""
    from schemashift.operations import CreateTable
    from schemashift.sqla.from_metadata import from_metadata

    schema = from_metadata(build_metadata(n))
    parent: str | None = None
    for number, batch in enumerate(history_batches(n, revisions)):
        operations = [CreateTable(schema.tables[table_name(index)]) for index in batch]
        parent = _write_migration(migrations, number, parent, f"history {number}", operations)
