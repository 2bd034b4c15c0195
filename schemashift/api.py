"""The Python API: every command the CLI offers, as functions on a `Project`.

    from schemashift import api
    project = api.open_project("schemashift.toml", env="staging")
    report = api.status(project)
    api.upgrade(project, yes=True)

A `Project` is a loaded configuration with one selected environment and,
optionally, a SQLAlchemy bind given by the caller. This module only gathers the
public functions of `schemashift.services`, where each command lives:

- `services.project`: `Project`, `open_project`, the version table against the files
- `services.migrate`: `upgrade`, `downgrade` (``sql``, ``dry_run``, ``from_revision``)
- `services.generate`: `generate`, `check`, `pending_operations`, `head_schema`
- `services.status`: `status`, `diff`, `history`, `lint`
- `services.compare`: `compare`, `compare_schemas`, `live_differences`
- `services.maintenance`: `verify`, `repair`, `rebase`, `squash`, `backups_list`, `backups_prune`
- `services.baseline`: `baseline`, `stamp`
- `services.manifest`: `manifest` (``schemashift.sum``)
- `services.erd`: `erd`; `services.environments`: `envs`; `services.stairway`: `test_migrations`

Nothing here asks questions: commands that may need an answer (a confirmation,
the repair action, renames) take a `prompter` (`schemashift.services.prompting`);
the default cannot ask, so such a command stops with a message naming the option
that answers it (``yes=True``, ``action="continue"``). The CLI passes one that asks
at a terminal.
"""

from __future__ import annotations

from schemashift.history.loader import Migration
from schemashift.services.baseline import baseline, stamp
from schemashift.services.compare import compare, compare_schemas, live_differences
from schemashift.services.compare import schemas_to_compare as _schemas_to_compare  # noqa: F401 - former name
from schemashift.services.environments import envs
from schemashift.services.erd import erd
from schemashift.services.generate import check, generate, head_schema, pending_operations, target_dialects
from schemashift.services.maintenance import backups_list, backups_prune, rebase, repair, squash, verify
from schemashift.services.manifest import manifest
from schemashift.services.migrate import downgrade, unmanaged_problem, upgrade
from schemashift.services.project import (
    Bind,
    Output,
    Project,
    all_problems,
    checked_current,
    current_revision,
    integrity_problems,
    masked_url,
    open_project,
    partial_problem,
)
from schemashift.services.project import schema_of as _schema_of  # noqa: F401 - former name
from schemashift.services.prompting import NO_PROMPTS, Prompter
from schemashift.services.stairway import test_migrations
from schemashift.services.status import DiffReport, StatusReport, diff, history, lint, require_clean, status

__all__ = [
    "NO_PROMPTS", "Bind", "DiffReport", "Migration", "Output", "Project", "Prompter", "StatusReport",
    "all_problems", "backups_list", "backups_prune", "baseline", "check", "checked_current", "compare",
    "compare_schemas", "current_revision", "diff", "downgrade", "envs", "erd", "generate", "head_schema", "history",
    "integrity_problems", "lint", "live_differences", "manifest", "masked_url", "open_project", "partial_problem",
    "pending_operations", "rebase", "repair", "require_clean", "squash", "stamp", "status", "target_dialects",
    "test_migrations", "unmanaged_problem", "upgrade", "verify",
]
