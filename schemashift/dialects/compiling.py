"""Operations compiled to statements, the schema threaded from one to the next: what plans run, and the one
compile of a fresh build (`compile_in_order`) that both its run and the head snapshot's writer use."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from schemashift.errors import SchemashiftError
from schemashift.model.schema import Schema
from schemashift.operations import Operation, RunPython
from schemashift.operations.statement import Statement

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect


class OutsideTransaction(SchemashiftError):
    """A statement of `operation` cannot run in a transaction on a database with transactional DDL."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(f"cannot run in a transaction: {operation.describe()}")
        self.operation = operation


def compile_operations(dialect: Dialect, operations: Sequence[Operation],
                       state: Schema) -> tuple[list[Statement], Schema]:
    """The statements that run `operations` on a database at schema `state`, and the schema after them."""
    statements: list[Statement] = []
    for operation in operations:
        after = operation.apply(state)
        if isinstance(operation, RunPython):
            statements.append(Statement(operation, python=operation.forward))
        else:
            statements.extend(Statement(operation, sql=sql) for sql in dialect.compile(operation, state, after))
        state = after
    return statements, state


def in_transaction(dialect: Dialect, statement: Statement) -> bool:
    """True when `statement` may run inside a transaction on `dialect`."""
    return (statement.sql is None or dialect.runs_in_transaction(statement.sql)) and not statement.own_transaction


def compile_in_order(dialect: Dialect, operations: Sequence[Operation]) -> Iterator[tuple[Operation, list[Statement]]]:
    """Each of `operations` (a schema created from nothing: a fresh build) with its statements, compiled one at a
    time as they are asked for; `OutsideTransaction` at the first whose statements cannot all run in a transaction
    when `dialect` has transactional DDL."""
    state = Schema()
    for operation in operations:
        mine, state = compile_operations(dialect, [operation], state)
        if dialect.transactional_ddl and not all(in_transaction(dialect, one) for one in mine):
            raise OutsideTransaction(operation)
        yield operation, mine


__all__ = ["OutsideTransaction", "compile_in_order", "compile_operations", "in_transaction"]
