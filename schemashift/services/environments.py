"""`schemashift envs`: every configured environment with its database's state.

For each environment: its masked URL, whether its database answers, the
revision it is at, how many migrations are pending and whether its live schema
drifts from the migrations at that revision. One environment failing (server
down, variable unset) is reported in its row and never stops the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from schemashift import config as config_module
from schemashift.errors import ConfigError, ConnectionFailed, SchemashiftError, mask_secrets
from schemashift.services.project import Project, open_project
from schemashift.services.status import StatusReport, status

if TYPE_CHECKING:
    from schemashift.history.chain import History

#: Column titles of the `envs` table, in order, with the row key each shows.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ENV", "name"), ("URL", "url"), ("REVISION", "current"), ("PENDING", "pending"), ("DRIFT", "drift"),
    ("NOTE", "note"),
)


def envs(project: Project | config_module.Config | str | Path | None = None, *,
         env: str | None = None) -> list[dict[str, Any]]:
    """One JSON-ready row per configured environment, in config order.

    ``selected`` marks `env` when given (an unknown name is an error), else the
    project's environment, else the one commands would use without ``--env``.

    Row keys: ``name``, ``selected``, ``url`` (masked), ``reachable`` (bool, None
    when not tried), ``error`` (one masked line or None), ``current``, ``head``,
    ``pending`` (count or None), ``drift`` (bool, or None when unknown) and
    ``problems`` (version-table problems).
    """
    selected: str | None
    if isinstance(project, Project):
        config, selected = project.config, project.env.name
    else:
        config = project if isinstance(project, config_module.Config) else config_module.load_config(project)
        selected = _selected_name(config)
    if env:
        selected = config.select_env_name(env)
    history = project.history() if isinstance(project, Project) else _history(config)
    return [env_row(config, name, history, selected=name == selected) for name in config.env_names]


def _selected_name(config: config_module.Config) -> str | None:
    """The environment commands would use without --env, or None when none is selected."""
    try:
        return config.select_env_name()
    except ConfigError:
        return None


def _history(config: config_module.Config) -> History:
    from schemashift.history.chain import History

    return History.load(config.migrations_dir)


def env_row(config: config_module.Config, name: str, history: History, *, selected: bool = False) -> dict[str, Any]:
    """The `envs` row of environment `name` (errors are reported in the row, not raised)."""
    row: dict[str, Any] = {
        "name": name, "selected": selected, "url": None, "reachable": None, "error": None,
        "current": None, "head": history.head, "pending": None, "drift": None, "problems": [],
    }
    try:
        project = open_project(config, name, None)
    except SchemashiftError as exc:
        row["error"] = _one_line(exc)
        return row
    project.use_history(history)
    row["url"] = config_module.mask_url(project.url) if project.url else None
    if not project.url:
        row["error"] = "no database URL configured"
        return row
    try:
        report = status(project)
    except ConnectionFailed as exc:
        row.update(reachable=False, error=_one_line(exc))
        return row
    except (SchemashiftError, sa.exc.SQLAlchemyError, OSError) as exc:
        row.update(reachable=True, error=_one_line(exc))
        return row
    row.update(reachable=True, current=report.current, pending=len(report.pending), drift=_drift(report),
               problems=list(report.problems))
    return row


def _drift(report: StatusReport) -> bool | None:
    """True/False from `StatusReport.schema_matches`; None when it could not be decided."""
    return None if report.schema_matches is None else not report.schema_matches


def _one_line(exc: BaseException) -> str:
    """`exc` as one masked line (the type name is added for errors that are not ours)."""
    text = " ".join(str(getattr(exc, "orig", None) or exc).split())
    if not isinstance(exc, SchemashiftError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return mask_secrets(text)[:300]


# --------------------------------------------------------------------------- the table


def table_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """`rows` of `envs` as an aligned text table (``*`` marks the selected environment)."""
    if not rows:
        return ["No environments are configured."]
    cells = [[title for title, _ in TABLE_COLUMNS]] + [[_cell(row, key) for _, key in TABLE_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE_COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells]


def _cell(row: dict[str, Any], key: str) -> str:
    if key == "name":
        return ("* " if row.get("selected") else "  ") + str(row["name"])
    if key == "url":
        return row["url"] or "-"
    if key == "note":
        return _note(row)
    if row.get("reachable") is not True or row.get("error"):
        return "-"
    if key == "current":
        return row["current"] or "base"
    if key == "pending":
        return str(row["pending"])
    if key == "drift":
        return {True: "DRIFT", False: "no", None: "?"}[row["drift"]]
    return str(row.get(key))


def _note(row: dict[str, Any]) -> str:
    if row.get("reachable") is False:
        return f"unreachable: {row['error']}"
    if row.get("error"):
        return f"error: {row['error']}"
    if row.get("problems"):
        more = f" (+{len(row['problems']) - 1} more)" if len(row["problems"]) > 1 else ""
        return f"problem: {row['problems'][0]}{more}"
    if row.get("pending"):
        return "behind"
    return "up to date"
