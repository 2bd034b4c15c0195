"""Dialects, one package each, registered by SQLAlchemy dialect name in `schemashift.dialects.registry`.

A dialect declares its capabilities (`transactional_ddl`, `native_enum`, …),
compiles operations to SQL, normalises and reads live schemas; the rest of
schemashift branches on those capabilities and methods, never on dialect names.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from schemashift.dialects.registry import DATABASES

if TYPE_CHECKING:
    import sqlalchemy as sa

    from schemashift.config import Config
    from schemashift.dialects.base import Dialect

#: SQLAlchemy dialect name -> "module:Class" of our dialect (derived from `DATABASES`).
REGISTRY: dict[str, str] = {name: f"{db.module}.dialect:{db.dialect_class}" for name, db in DATABASES.items()}

_cache: dict[str, Dialect] = {}


def get_dialect(name: str) -> Dialect:
    """The dialect registered under `name` (a SQLAlchemy dialect name)."""
    from schemashift.errors import ConfigError

    if name not in _cache:
        target = REGISTRY.get(name)
        if target is None:
            raise ConfigError(f"unsupported database {name!r}; schemashift supports {', '.join(sorted(REGISTRY))}")
        module, cls = target.split(":")
        _cache[name] = getattr(import_module(module), cls)()
    return _cache[name]


def dialect_of(connection: sa.Connection | sa.Engine) -> Dialect:
    """The dialect for a live connection (or engine): MariaDB with a native UUID type gets its own."""
    sa_dialect = connection.dialect
    name = sa_dialect.name
    if name in ("mysql", "mariadb"):
        native_uuid = getattr(sa_dialect, "is_mariadb", False) and getattr(sa_dialect, "supports_native_uuid", False)
        name = "mariadb" if native_uuid else "mysql"
    return get_dialect(name)


def environment_dialects(config: Config) -> list[Dialect]:
    """The dialects of the project's environments whose URL resolves (e.g. not an unset ``${DATABASE_URL}``);
    every registered one when none does: what `generate` checks models against and the head snapshot compiles for."""
    import sqlalchemy as sa

    from schemashift.errors import SchemashiftError

    found: dict[str, Dialect] = {}
    for name in config.env_names:
        try:
            url = config.env(name).url
            backend = sa.make_url(url).get_backend_name() if url else None
            if backend:
                dialect = get_dialect(backend)
                found[dialect.name] = dialect
        except (SchemashiftError, sa.exc.ArgumentError, ValueError):
            continue
    if not found:
        found = {dialect.name: dialect for dialect in map(get_dialect, sorted(REGISTRY))}
    return list(found.values())


def run_time_dialects(config: Config) -> list[Dialect]:
    """`environment_dialects` and every dialect sharing a package with one of them: `dialect_of` chooses among those
    by the live server (MySQL or MariaDB)."""
    packages = {DATABASES[dialect.registry_name].package for dialect in environment_dialects(config)}
    return [get_dialect(name) for name, database in sorted(DATABASES.items()) if database.package in packages]


#: The databases a model is compiled for when it is converted (their forms of types, defaults and checks).
TARGETS = ("sqlite", "postgresql", "mysql")
#: The target whose rendering of an expression default is its generic form (the others are kept where they differ).
REFERENCE_TARGET = "postgresql"


def targets() -> list[tuple[str, sa.engine.Dialect]]:
    """``(name, SQLAlchemy dialect)`` of each database in `TARGETS`, for offline compilation."""
    if not _targets:
        _targets.extend((name, get_dialect(name).compiler_dialect) for name in TARGETS)
    return _targets


_targets: list[tuple[str, sa.engine.Dialect]] = []
