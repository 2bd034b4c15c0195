"""The namespace migration files import: ``from schemashift.migration import *``.

It holds every operation class registered when it is first imported
(`schemashift.operations.OPERATIONS`: defining an `Operation` subclass is enough
to export it), `Operation` itself, every schema model class, `Type`, `allow` and
`from_json` (values written as JSON lines by `schemashift.operations.codec`, as
the head snapshot holds its operations), so that a rendered migration file
evaluates with nothing else imported.
"""

from __future__ import annotations

from schemashift.model.objects import ExtensionDef, FunctionDef, PolicyDef, TriggerDef, ViewDef
from schemashift.model.schema import (
    CheckConstraint,
    Column,
    Computed,
    ForeignKey,
    Identity,
    Index,
    PrimaryKey,
    Schema,
    Sequence,
    Table,
    UniqueConstraint,
)
from schemashift.model.types import Type
from schemashift.operations import OPERATIONS, Operation
from schemashift.operations.codec import from_json
from schemashift.planning.lint import allow
from schemashift.sqla.objects import Extension, Function, Policy, Trigger, View

__all__ = [
    "CheckConstraint",
    "Column",
    "Computed",
    "Extension",
    "ExtensionDef",
    "ForeignKey",
    "Function",
    "FunctionDef",
    "Identity",
    "Index",
    "Operation",
    "Policy",
    "PolicyDef",
    "PrimaryKey",
    "Schema",
    "Sequence",
    "Table",
    "Trigger",
    "TriggerDef",
    "Type",
    "UniqueConstraint",
    "View",
    "ViewDef",
    "allow",
    "from_json",
]

# Every registered operation, from the registry: there is no list of them to keep.
globals().update(OPERATIONS)
__all__ += list(OPERATIONS)
