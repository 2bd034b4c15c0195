"""The databases schemashift knows, as plain data: one `Database` line each.

This module imports only the standard library: the fast paths of `status` and
`upgrade` (`schemashift.runtime.fast`) read it without importing SQLAlchemy.
Each database lives in its own package, ``schemashift.dialects.<package>``:
``dialect.py`` (the `Dialect`: capabilities, compilation, normalisation, the
live reader), ``reflect.py`` (the bulk catalogue reader), ``catalog.py`` (light:
catalogue fingerprint, version-table SQL and a DB-API connection for the fast
path) and, where it has any, ``types.py`` (its own SQLAlchemy types). A new
database is one such package plus one line in `DATABASES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import ModuleType


@dataclass(frozen=True)
class Database:
    """One database: its SQLAlchemy dialect name, our `Dialect` class and its package."""

    #: SQLAlchemy dialect name (``engine.dialect.name``).
    name: str
    #: The package under ``schemashift.dialects`` that holds its knowledge.
    package: str
    #: Class name of its `Dialect` in ``<package>/dialect.py``.
    dialect_class: str
    #: URL schemes whose databases the fast path reads through the package's ``catalog.connect``.
    drivers: tuple[str, ...] = ()
    #: The package has a ``types`` module: its own SQLAlchemy types for some neutral types.
    own_types: bool = False
    #: A URL's database is a file path, relative ones taken from the project's root (`config`).
    file_paths: bool = False
    #: URL schemes whose ``scheme:///path`` form `config` completes without parsing the URL.
    plain_file_drivers: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        """The full name of the database's package."""
        return f"schemashift.dialects.{self.package}"

    def catalog(self) -> ModuleType:
        """The light ``catalog`` module of the database (standard library only)."""
        return import_module(f"{self.module}.catalog")


#: SQLAlchemy dialect name -> the database; the single registry of schemashift's databases.
DATABASES: dict[str, Database] = {
    database.name: database
    for database in (
        Database("postgresql", "postgresql", "PostgreSQLDialect", ("postgresql+psycopg", "postgresql+asyncpg"),
                 own_types=True),
        Database("mysql", "mysql", "MySQLDialect", ("mysql+pymysql", "mysql+aiomysql", "mysql+asyncmy"),
                 own_types=True),
        Database("mariadb", "mysql", "MariaDBDialect", ("mariadb+pymysql",), own_types=True),
        Database("sqlite", "sqlite", "SQLiteDialect", ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"),
                 file_paths=True, plain_file_drivers=("sqlite", "sqlite+pysqlite")),
    )
}


def database(name: str) -> Database | None:
    """The database registered under SQLAlchemy dialect name `name`, or None."""
    return DATABASES.get(name)


def for_driver(scheme: str) -> Database | None:
    """The database whose fast path reads URLs of `scheme` (``postgresql+psycopg`` …), or None."""
    return next((entry for entry in DATABASES.values() if scheme in entry.drivers), None)
