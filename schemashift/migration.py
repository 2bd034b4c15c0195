"""The namespace migration files import: ``from schemashift.migration import *``.

It holds every operation class, every schema model class and `Type`, so that a
rendered migration file evaluates with nothing else imported.
"""

from __future__ import annotations

from schemashift.operations import (
    AddColumn,
    AddConstraint,
    AlterColumn,
    AlterTableComment,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropConstraint,
    DropIndex,
    DropTable,
    ExecuteSQL,
    OPERATIONS,
    Operation,
    RenameColumn,
    RenameIndex,
    RenameTable,
    RunPython,
)
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
from schemashift.model.objects import ExtensionDef, FunctionDef, PolicyDef, TriggerDef, ViewDef
from schemashift.operations.objects import CreateObject, DropObject, RenameObject, ReplaceObject
from schemashift.sqla.objects import Extension, Function, Policy, Trigger, View
from schemashift.planning.lint import allow
from schemashift.model.types import Type

__all__ = [
    # lint suppression
    "allow",
    # operations
    "Operation",
    "CreateTable",
    "DropTable",
    "RenameTable",
    "AlterTableComment",
    "AddColumn",
    "DropColumn",
    "AlterColumn",
    "RenameColumn",
    "CreateIndex",
    "DropIndex",
    "RenameIndex",
    "AddConstraint",
    "DropConstraint",
    "ExecuteSQL",
    "RunPython",
    "CreateObject",
    "DropObject",
    "ReplaceObject",
    "RenameObject",
    # schema model
    "Schema",
    "Table",
    "Column",
    "Computed",
    "Identity",
    "PrimaryKey",
    "Index",
    "UniqueConstraint",
    "ForeignKey",
    "CheckConstraint",
    "Sequence",
    "Type",
    "ViewDef",
    "FunctionDef",
    "TriggerDef",
    "ExtensionDef",
    "PolicyDef",
    # declarations (as in models)
    "View",
    "Function",
    "Trigger",
    "Extension",
    "Policy",
]

# An operation class added to `ops.OPERATIONS` but not listed above is still exported.
for _name, _operation in OPERATIONS.items():
    if _name not in __all__:
        globals()[_name] = _operation
        __all__.append(_name)
del _name, _operation
