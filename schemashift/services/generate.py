"""`generate` and `check`: the models against the schema the migrations build at head, no database involved.

The head schema is replayed from the migration files (cached, see
`schemashift.history.cache`), the models are converted to the neutral schema,
both pass the project's `exclude`/`include_object` filter, and the differ
(`schemashift.autodetect.differ`) turns the difference into operations. Renames
come from ``--rename-table``/``--rename-column``, from hints in the models, or
from the questions the `Prompter` answers; one-off values for the existing rows
of added NOT NULL columns from ``--default`` or those questions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from schemashift.autodetect.differ import RenameDecisions
from schemashift.autodetect.differ import diff as diff_schemas
from schemashift.autodetect.objects import object_notes
from schemashift.dialects import environment_dialects, run_time_dialects
from schemashift.dialects.base import Dialect
from schemashift.errors import SchemashiftError
from schemashift.history import manifest
from schemashift.history.cache import state_at
from schemashift.history.chain import History
from schemashift.history.writer import write_migration
from schemashift.model.schema import Schema, qualify
from schemashift.model.validate import check_buildable
from schemashift.operations import CreateTable, Operation
from schemashift.services.project import Output, Project, print_line, relative
from schemashift.services.prompting import NO_PROMPTS, Prompter
from schemashift.sqla.hooks import table_hooks
from schemashift.support.gcpause import paused


def head_schema(history: History) -> Schema:
    """The schema the migrations produce at head, with no database (cached: `schemashift.history.cache`)."""
    return state_at(history, history.head)


def rename_decisions(project: Project, rename_tables: list[tuple[str, str]],
                     rename_columns: list[tuple[str, str, str]], no_rename: bool, interactive: bool,
                     defaults: Mapping[str, object] | None = None, settle_fills: bool = False,
                     prompter: Prompter = NO_PROMPTS) -> RenameDecisions:
    """What is decided before diffing: renames (options, model hints), fills, and who answers the rest."""
    from schemashift.sqla.from_metadata import rename_hints

    decisions = RenameDecisions(no_rename=no_rename, fills=dict(defaults or {}), settle_fills=settle_fills)
    questioner = prompter.questioner() if interactive else None
    if questioner is not None:
        decisions.questioner = questioner
    hints = rename_hints(project.models())
    for new_key, old_name in hints.tables.items():
        schema = new_key.rsplit(".", 1)[0] if "." in new_key else None
        decisions.tables[qualify(old_name, schema)] = new_key.rsplit(".", 1)[-1]
    for (table_key, new_name), old_name in hints.columns.items():
        decisions.columns[(table_key, old_name)] = new_name
    for old, new in rename_tables:
        decisions.tables[old] = new.rsplit(".", 1)[-1]
    for table, old, new in rename_columns:
        decisions.columns[(table, old)] = new
    return decisions


@paused()
def pending_operations(project: Project, *, rename_tables: list[tuple[str, str]] | None = None,
                       rename_columns: list[tuple[str, str, str]] | None = None, no_rename: bool = False,
                       interactive: bool = False, defaults: Mapping[str, object] | None = None,
                       settle_fills: bool = False, prompter: Prompter = NO_PROMPTS) -> list[Operation]:
    """Operations that bring the migrations' head schema to the models.

    `defaults` and `settle_fills`: one-off values for the existing rows of added NOT NULL columns (see `differ`).
    With `interactive`, undecided renames and values are asked of `prompter`.
    """
    history = project.history()
    decisions = rename_decisions(project, rename_tables or [], rename_columns or [], no_rename, interactive, defaults,
                                 settle_fills, prompter)
    head, models, keep = head_schema(history), project.model_schema(), project.object_filter()
    check_buildable(models, {
        dialect.name: (dialect.max_identifier_length, dialect.identifier_length_in_bytes)
        for dialect in target_dialects(project)
    })
    head, models = keep.apply(head, reflected=False, other=models), keep.apply(models, reflected=False, other=head)
    return diff_schemas(head, models, decisions)


def target_dialects(project: Project) -> list[Dialect]:
    """The databases the project's environments use (those whose URL resolves); all supported ones when none does.

    `generate` has no database: it checks the models against these (see `schema.validate`).
    """
    return environment_dialects(project.config)


def _start_folder(folder: Path) -> None:
    """Create the migrations folder of a new project (no `schemashift init`) with its empty manifest, which the first
    migration is then added to with a head snapshot, as in a folder that existed."""
    if not folder.is_dir():
        folder.mkdir(parents=True)
        manifest.write(folder, [])


def generate(project: Project, message: str, *, empty: bool = False, rename_tables: list[tuple[str, str]] | None = None,
             rename_columns: list[tuple[str, str, str]] | None = None, no_rename: bool = False,
             interactive: bool = False, defaults: Mapping[str, object] | None = None,
             out: Output = print_line, prompter: Prompter = NO_PROMPTS) -> Path | None:
    """Write a migration for the difference between models and migrations (None when there is none).

    A NOT NULL column without a default added to an existing table needs a one-off value for the rows
    already there: from `defaults` (``{"table.column": value}``), else asked of `prompter` when
    `interactive`, else `differ.FillUndecided` is raised and nothing is written.
    """
    if not message.strip():
        raise SchemashiftError("a migration needs a message: -m 'what it does'")
    history = project.history()
    operations: list[Operation] = []
    if not empty:
        operations = pending_operations(project, rename_tables=rename_tables, rename_columns=rename_columns,
                                        no_rename=no_rename, interactive=interactive, defaults=defaults,
                                        settle_fills=True, prompter=prompter)
        if not operations:
            out("No changes: the models match the migrations. Nothing written.")
            return None
    operations, notes = with_table_hooks(operations, project.models())
    # the schema at head, known (`pending_operations` diffed against it), moves the head snapshot on only when the files
    # are the manifest's (`History.snapshot` set): after an unrecorded edit the snapshot follows the manifest
    before = None if empty or history.snapshot is None else head_schema(history)
    _start_folder(project.config.migrations_dir)
    migration = write_migration(project.config.migrations_dir, message, operations, parent=history.head, before=before,
                                dialects=run_time_dialects(project.config))
    project.forget_history()
    out(f"Wrote {relative(migration.path)} ({migration.revision}):")
    for operation in operations:
        out(f"  - {operation.describe()}")
    for note in [*object_notes(operations, [(dialect.name, dialect) for dialect in target_dialects(project)]), *notes]:
        out(f"  note: {note}")
    return migration.path


def with_table_hooks(operations: list[Operation], models: list[sa.MetaData]) -> tuple[list[Operation], list[str]]:
    """`operations` with each created table's ``DDL`` listeners around its `CreateTable` (see `sqla.hooks`), and
    notes on the listeners that cannot be carried."""
    tables = {qualify(table.name, table.schema): table for metadata in models for table in metadata.tables.values()}
    result: list[Operation] = []
    notes: list[str] = []
    for operation in operations:
        table = tables.get(operation.table_key or "") if isinstance(operation, CreateTable) else None
        if table is None:
            result.append(operation)
            continue
        hooks = table_hooks(table)
        result += [*hooks.before, operation, *hooks.after]
        notes += hooks.notes
    return result, list(dict.fromkeys(notes))


def check(project: Project, *, out: Output = print_line) -> bool:
    """True when the models and the migrations agree; prints what differs otherwise."""
    operations = pending_operations(project, no_rename=True)
    if not operations:
        out("OK: the models match the migrations.")
        return True
    out(f"The models differ from the migrations ({len(operations)} change(s)); run `schemashift generate`:")
    for operation in operations:
        out(f"  - {operation.describe()}")
    return False


__all__ = ["check", "generate", "head_schema", "pending_operations", "rename_decisions", "target_dialects"]
