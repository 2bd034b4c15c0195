"""The dialect interface: capabilities, SQL compilation, normalisation and locking."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar, Iterator

from ..schema.model import Schema

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ..ops import Operation


class Dialect:
    """Base class of the per-database modules.

    Subclasses declare capabilities as class attributes and override the few
    methods where their database differs.
    """

    #: SQLAlchemy dialect name.
    name: ClassVar[str] = ""
    #: DDL can be rolled back inside a transaction.
    transactional_ddl: ClassVar[bool] = False
    #: Enums are database types of their own (CREATE TYPE).
    native_enum: ClassVar[bool] = False
    #: ADD COLUMN is a metadata-only change.
    instant_add_column: ClassVar[bool] = False
    #: ALTER TABLE cannot change columns or constraints in place (table rebuild instead).
    rebuilds_tables: ClassVar[bool] = False
    #: Comments on tables and columns are stored.
    supports_comments: ClassVar[bool] = True
    #: Schemas other than the default one (PostgreSQL `schema=`).
    supports_schemas: ClassVar[bool] = False

    def sa_dialect(self) -> "sa.engine.Dialect":
        """A SQLAlchemy dialect instance for offline compilation."""
        raise NotImplementedError

    def compile(self, operation: "Operation", before: Schema, after: Schema) -> list[str]:
        """SQL statements that perform `operation`, given the schema before and after it."""
        raise NotImplementedError

    def normalize(self, schema: Schema) -> Schema:
        """`schema` in the form this database reflects it, so live and model schemas compare equal."""
        return schema

    @contextmanager
    def lock(self, connection: "sa.Connection", name: str, timeout: float) -> Iterator[None]:
        """Hold the migration lock called `name` for the block (LockTimeout after `timeout` s)."""
        yield
