"""Offline SQL (`--sql`): a plan rendered as a script a DBA can read and run."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from .plan import UP, Plan, Step
from .versions import APPLIED, Recorder


def _compiled(statement: sa.sql.ClauseElement, dialect: sa.engine.Dialect) -> str:
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).strip()


def _version_sql(step: Step, recorder: Recorder, dialect: sa.engine.Dialect) -> str:
    migration = step.migration
    table = recorder.version
    if step.direction == UP:
        statement = table.insert().values(
            revision=migration.revision, parent=migration.parent, checksum=migration.checksum,
            message=migration.message[:255], state=APPLIED, direction="up",
            statements_done=len(step.statements),
        )
    else:
        statement = table.delete().where(table.c.revision == migration.revision)
    return _compiled(statement, dialect)


def offline_script(plan: Plan, recorder: Recorder, *, create_version_table: bool | None = None) -> str:
    """The SQL of `plan`, one statement per line group, each ended by ``;``."""
    dialect = plan.dialect.sa_dialect()
    lines = [f"-- schemashift {plan.direction}grade: {plan.start or 'base'} -> {plan.target or 'base'} ({plan.dialect.name})"]
    if plan.empty:
        lines.append("-- nothing to do")
        return "\n".join(lines)
    if create_version_table is None:
        create_version_table = not recorder.exists()
    if create_version_table:
        for table in (recorder.version, recorder.history):
            lines.append(_compiled(CreateTable(table), dialect) + ";")
    transactional = plan.dialect.transactional_ddl
    for step in plan.steps:
        verb = "apply" if step.direction == UP else "revert"
        lines.append("")
        lines.append(f"-- {verb} {step.label}: {step.migration.message}")
        if transactional:
            lines.append("BEGIN;")
        for statement in step.statements:
            lines.append(statement.describe().strip() + ("" if statement.sql is None else ";"))
        lines.append(_version_sql(step, recorder, dialect) + ";")
        if transactional:
            lines.append("COMMIT;")
    return "\n".join(lines)
