"""Migration operations: small typed records that carry both their *from* and *to*.

Each operation answers three questions and nothing else:

* `apply(schema)`: the schema after it (used to replay history with no database);
* `resolve(schema)`: the same operation with its *from* side filled in from the
  schema before it (a hand-written ``DropColumn("t", "c")`` learns the column);
* `inverse()`: the operation that undoes it (needs a resolved operation).

One module per family (`tables`, `columns`, `indexes`, `constraints`,
`sequences`, `raw`, `data`: batched backfills, `objects`: views, functions,
triggers…) over `base` (the `Operation` class, its registry
`OPERATIONS`, `replay`/`resolve_all`/`invert_all`); defining a subclass registers
it. `render` writes operations into migration files and `statement` holds what
they compile to; compiling them to SQL (`dialects`, through `Operation.compiler`)
and executing them (`runtime.executor`) lives elsewhere. This package re-exports
a chosen list of public names: add a new operation to it.
"""

from __future__ import annotations

from schemashift.operations import base, columns, constraints, data, indexes, objects, raw, sequences, tables
from schemashift.operations.base import (
    OPERATIONS,
    InternalOperation,
    Operation,
    existing_table,
    invert_all,
    is_extension,
    register,
    replay,
    repoint_foreign_keys,
    resolve_all,
    snake_case,
    unknown_previous,
)
from schemashift.operations.columns import (
    AddColumn,
    AlterColumn,
    DropColumn,
    Fill,
    RenameColumn,
    fill_value,
    needs_fill,
    rename_in_sql,
)
from schemashift.operations.constraints import AddConstraint, DropConstraint, RenameConstraint
from schemashift.operations.data import Backfill
from schemashift.operations.indexes import CreateIndex, DropIndex, RenameIndex, index_details
from schemashift.operations.objects import CreateObject, DropObject, RenameObject, ReplaceObject
from schemashift.operations.raw import ExecuteSQL, RunPython
from schemashift.operations.sequences import AlterSequence, CreateSequence, DropSequence
from schemashift.operations.tables import AlterTableComment, CreateTable, DropTable, RenameTable

#: The modules whose code replaying operations runs (the history cache keys its states by their source).
MODULES = (base, tables, columns, indexes, constraints, sequences, raw, objects, data)

__all__ = [
    "MODULES",
    "OPERATIONS",
    "AddColumn",
    "AddConstraint",
    "AlterColumn",
    "AlterSequence",
    "AlterTableComment",
    "Backfill",
    "CreateIndex",
    "CreateObject",
    "CreateSequence",
    "CreateTable",
    "DropColumn",
    "DropConstraint",
    "DropIndex",
    "DropObject",
    "DropSequence",
    "DropTable",
    "ExecuteSQL",
    "Fill",
    "InternalOperation",
    "Operation",
    "RenameColumn",
    "RenameConstraint",
    "RenameIndex",
    "RenameObject",
    "RenameTable",
    "ReplaceObject",
    "RunPython",
    "existing_table",
    "fill_value",
    "index_details",
    "invert_all",
    "is_extension",
    "needs_fill",
    "register",
    "rename_in_sql",
    "replay",
    "repoint_foreign_keys",
    "resolve_all",
    "snake_case",
    "unknown_previous",
]
