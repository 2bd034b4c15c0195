"""The stairway check (`schemashift test-migrations`): every revision goes up, down and up again.

Starting from an empty database (at base), for each revision of the chain in
order: upgrade to it, downgrade to its parent, upgrade to it again; after each
move the reflected live schema must equal the schema the migrations say it is
at (`plan.states_along`), compared in the database's normal form. The first
failure stops the run and names the revision, the move and the differences.
Moves run with ``allow_data_loss`` (an empty scratch database has none to lose)
and without asking for confirmation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemashift.errors import SchemashiftError
from schemashift.planning.plan import states_along
from schemashift.services.compare import live_differences
from schemashift.services.migrate import downgrade, upgrade
from schemashift.services.project import Output, Project, checked_current, print_line

if TYPE_CHECKING:
    from schemashift.history.loader import Migration
    from schemashift.model.schema import Schema


def test_migrations(project: Project, *, out: Output = print_line) -> bool:
    """Run the stairway on the project's database; True when every revision passes."""
    history = project.history()
    if not history.chain:
        out("No migrations to test.")
        return True
    _require_base(project)
    states = states_along(history)
    for migration in history.chain:
        label = f"{migration.path.name} ({migration.revision})"
        moves = (("upgrade", migration.revision, migration.revision),
                 ("downgrade", migration.parent or "base", migration.parent),
                 ("upgrade again", migration.revision, migration.revision))
        for move, target, expected in moves:
            run = downgrade if move == "downgrade" else upgrade
            try:
                run(project, target, yes=True, allow_data_loss=True, out=_quiet)
            except SchemashiftError as exc:
                out(f"FAIL {label}: {move} failed: {exc}")
                return False
            differences = _differences(project, states[expected])
            if differences:
                out(f"FAIL {label}: after {move} the database differs from the migrations:")
                out(_where(move, migration))
                for difference in differences:
                    out(f"  - {difference}")
                return False
        out(f"ok   {label}: upgrade, downgrade, upgrade")
    out(f"All {len(history.chain)} migration(s) pass the stairway check; the database is at head.")
    return True


def _quiet(line: str) -> None:
    """Moves print nothing: the stairway reports per revision."""


def _require_base(project: Project) -> None:
    """Refuse a database that is not at base: the stairway downgrades whatever it finds."""
    with project.connect() as connection:
        current = checked_current(project.recorder(connection), project.history())
    if current is not None:
        raise SchemashiftError(
            f"test-migrations needs an empty database at base; environment {project.env.name!r} is at {current}",
            hint="point --env or --url at a scratch database",
        )


def _differences(project: Project, expected: Schema) -> list[str]:
    """What the live schema would need to match `expected` (empty when it does)."""
    with project.connect() as connection:
        return live_differences(project, connection, expected)


def _where(move: str, migration: Migration) -> str:
    """Which state was expected, in words."""
    if move == "downgrade":
        return f"  (expected the schema at {migration.parent or 'base'}, the parent of {migration.revision})"
    return f"  (expected the schema at {migration.revision})"


__all__ = ["test_migrations"]
