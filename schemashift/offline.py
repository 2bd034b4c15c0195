"""Offline SQL (`--sql`): a plan rendered as a script a DBA can read and run."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from .plan import UP, Plan, Step
from .versions import APPLIED, Recorder


def _compiled(statement: sa.sql.ClauseElement, dialect: sa.engine.Dialect) -> str:
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).strip()


class _VersionSql:
    """The version-table INSERT (up) or DELETE (down) of each step, compiled once per direction.

    SQLAlchemy compiles each statement with placeholder values; every step then
    gets its own values rendered by the same literal processors of the column
    types (compiling thousands of statements one by one dominated `--sql`).
    """

    _NUMBER = 7_364_019_283_551  # stands for statements_done in the template

    def __init__(self, recorder: Recorder, dialect: sa.engine.Dialect) -> None:
        self.table = recorder.version
        self.dialect = dialect
        self._parts: dict[str, list[str | tuple[str, ...]]] = {}
        self._compiler = self.table.insert().compile(dialect=dialect, compile_kwargs={"literal_binds": True})

    def _render(self, column: str, value: object) -> str:
        if value is None:
            return "NULL"
        return self._compiler.render_literal_value(value, self.table.c[column].type)

    def _template(self, direction: str) -> list[str | tuple[str, ...]]:
        if direction in self._parts:
            return self._parts[direction]
        table = self.table
        marks = {name: f"\x02{name}\x03" for name in ("revision", "parent", "checksum", "message")}
        if direction == UP:
            statement = table.insert().values(**marks, state=APPLIED, direction="up", statements_done=self._NUMBER)
        else:
            statement = table.delete().where(table.c.revision == marks["revision"])
        text = _compiled(statement, self.dialect)
        found = {self._render(name, mark): name for name, mark in marks.items()}
        found[str(self._NUMBER)] = "statements_done"
        parts: list[str | tuple[str, ...]] = []
        while text:
            hits = [(text.find(rendered), rendered) for rendered in found if rendered in text]
            if not hits:
                parts.append(text)
                break
            position, rendered = min(hits)
            parts.extend([text[:position], (found[rendered],)])
            text = text[position + len(rendered):]
        self._parts[direction] = parts
        return parts

    def sql(self, step: Step) -> str:
        """The statement that records `step` in the version table."""
        migration = step.migration
        values = {"revision": migration.revision, "parent": migration.parent, "checksum": migration.checksum,
                  "message": migration.message[:255], "statements_done": len(step.statements)}
        return "".join(part if isinstance(part, str) else self._render(part[0], values[part[0]])
                       for part in self._template(step.direction))


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
    version_sql = _VersionSql(recorder, dialect)
    for step in plan.steps:
        verb = "apply" if step.direction == UP else "revert"
        lines.append("")
        lines.append(f"-- {verb} {step.label}: {step.migration.message}")
        transactional = step.atomic  # not around statements PostgreSQL refuses in a transaction (… CONCURRENTLY)
        if transactional:
            lines.append("BEGIN;")
        for statement in step.statements:
            lines.append(statement.describe().strip() + ("" if statement.sql is None else ";"))
        lines.append(version_sql.sql(step) + ";")
        if transactional:
            lines.append("COMMIT;")
    return "\n".join(lines)
