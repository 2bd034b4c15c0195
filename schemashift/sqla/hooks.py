"""What ``create_all`` runs around a table besides its DDL: ``DDL`` listeners, as migration steps.

Applications attach ``DDL(...)`` to a table's ``before_create``/``after_create``/
``before_drop``/``after_drop`` events, often with ``execute_if(dialect=...)``.
`generate` turns those of each table it creates into `ExecuteSQL` steps beside
the `CreateTable` (compiled per database by SQLAlchemy, limited to the databases
whose condition holds), so a migrated database gets what ``create_all`` gives it
and the downgrade runs the drop listeners. A listener that is a Python function
cannot be written into a migration: it is named in a note instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from schemashift.operations import ExecuteSQL, Operation
from schemashift.sacompat import ddl_if_condition, event_listeners
from schemashift.sqla.from_metadata import ddl_condition_holds, sa_dialects

#: The events `generate` carries, and whether their SQL runs on upgrade (else on downgrade).
EVENTS = {"before_create": True, "after_create": True, "before_drop": False, "after_drop": False}


@dataclass
class TableHooks:
    """The steps to put before and after one table's `CreateTable`, and what could not be carried."""

    before: list[Operation] = field(default_factory=list)
    after: list[Operation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def table_hooks(table: sa.Table) -> TableHooks:
    """The `ExecuteSQL` steps for `table`'s DDL listeners on every database schemashift knows (`sa_dialects`).

    ``before_create`` and ``after_drop`` go before the `CreateTable` (upgrade order;
    a downgrade runs them inverted, after the drop), ``after_create`` and
    ``before_drop`` after it.
    """
    hooks = TableHooks()
    for event, upgrade in EVENTS.items():
        place = hooks.before if event in ("before_create", "after_drop") else hooks.after
        for listener in event_listeners(table, event):
            if not isinstance(listener, sa.schema.ExecutableDDLElement):
                name = getattr(listener, "__qualname__", type(listener).__name__)
                hooks.notes.append(f"{table.fullname}: the {event} listener {name} is Python, which migrations do not "
                                   "run; add what it does as ExecuteSQL or RunPython")
                continue
            for sql, only in _compiled(listener, table, sa_dialects()):
                place.append(ExecuteSQL(sql, reverse="", dialects=only) if upgrade
                             else ExecuteSQL("", reverse=sql, dialects=only))
    if event_listeners(table.metadata, "after_create") or event_listeners(table.metadata, "before_create"):
        hooks.notes.append("the MetaData has create listeners, which migrations do not run; add what they do as "
                           "ExecuteSQL")
    return hooks


def _compiled(ddl: sa.schema.ExecutableDDLElement, table: sa.Table,
              dialects: dict[str, sa.engine.Dialect]) -> list[tuple[str, tuple[str, ...]]]:
    """(SQL, the databases it is for) per distinct compiled text; ``()``: every database."""
    texts: dict[str, list[str]] = {}
    for name, dialect in dialects.items():
        what = f"{table.fullname}: a DDL listener's execute_if(callable_=...) condition"
        if ddl_condition_holds(ddl_if_condition(ddl), ddl, table, dialect, what):
            texts.setdefault(str(ddl.against(table).compile(dialect=dialect)).strip(), []).append(name)
    if len(texts) == 1 and len(next(iter(texts.values()))) == len(dialects):
        return [(next(iter(texts)), ())]
    return [(sql, tuple(names)) for sql, names in texts.items()]
