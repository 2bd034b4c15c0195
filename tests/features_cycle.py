"""An in-process project for the `test_features_*` modules: models given as MetaData objects.

`Cycle` drives the real pipeline end to end — models -> `from_sqlalchemy` ->
differ -> operations -> migration file written and loaded back -> compiled for
the database -> executed -> reflected -> normalised -> diffed — through the
Python API, without subprocesses. `roundtrip` runs the standard check: v1 up,
v2 up, diff clean each time, downgrade to v1 clean, upgrade to v2 clean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from schemashift import api
from schemashift.operations import Operation


class Cycle:
    """A throw-away project on database `url` whose models are whatever `use` was last given."""

    def __init__(self, directory: Path, url: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "migrations").mkdir(exist_ok=True)
        config = f'models = "unused:Base"\nmigrations = "migrations"\ndefault_env = "test"\n\n[env.test]\nurl = "{url}"\n'
        (directory / "schemashift.toml").write_text(config)
        self.url = url
        self.directory = directory
        self.project = api.open_project(directory / "schemashift.toml")
        self.metadata: list[sa.MetaData] = []
        self.project.models = lambda: self.metadata  # type: ignore[method-assign]
        self.output: list[str] = []

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        return sa.make_url(self.url).get_backend_name()

    def use(self, *metadata: sa.MetaData) -> None:
        """Make `metadata` the models."""
        self.metadata = list(metadata)

    def generate(self, metadata: sa.MetaData, message: str, **flags: Any) -> list[Operation]:
        """Use `metadata` as the models and write a migration; return its operations as loaded from the file."""
        self.use(metadata)
        path = api.generate(self.project, message, out=self.output.append, **flags)
        assert path is not None, f"no changes found for {message!r}"
        self.project._history = None
        migration = self.project.history().get(self.project.history().head)
        assert api.pending_operations(self.project, no_rename=True) == [], "the models still differ after generate"
        return list(migration.operations)

    def upgrade(self, target: str = "head") -> None:
        api.upgrade(self.project, target, out=self.output.append)

    def downgrade(self, target: str = "-1") -> None:
        api.downgrade(self.project, target, out=self.output.append)

    def sql(self, direction: str = "up", target: str = "head") -> list[str]:
        """The offline script of an upgrade (or downgrade) to `target`, as lines: every migration's own statements
        (step by step: from an empty database `--sql` would otherwise print one fresh build of the head)."""
        lines: list[str] = []
        if direction == "up":
            api.upgrade(self.project, target, sql=True, out=lines.append, step_by_step=True)
        else:
            api.downgrade(self.project, target, sql=True, out=lines.append)
        return "\n".join(lines).splitlines()

    def diff(self, metadata: sa.MetaData | None = None) -> list[str]:
        """What differs between the live database and `metadata` (default: the current models)."""
        if metadata is not None:
            self.use(metadata)
        return api.diff(self.project).lines()[1:]

    def run(self, *statements: str) -> None:
        """Run SQL statements in one transaction."""
        engine = sa.create_engine(self.url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                for statement in statements:
                    connection.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a query."""
        engine = sa.create_engine(self.url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.exec_driver_sql(sql)]
        finally:
            engine.dispose()

    def insert(self, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows` through SQLAlchemy (so Python enum and UUID values are converted)."""
        engine = sa.create_engine(self.url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                connection.execute(table.insert(), list(rows))
        finally:
            engine.dispose()


def roundtrip(
    cycle: Cycle,
    v1: sa.MetaData,
    v2: sa.MetaData,
    *,
    at_v1: Callable[[], None] | None = None,
    at_v2: Callable[[], None] | None = None,
) -> list[Operation]:
    """v1 -> generate -> upgrade -> `at_v1` -> v2 -> generate -> upgrade -> `at_v2` -> downgrade -> upgrade.

    The live database diffs clean against the models at every stop. Returns the
    operations of the v2 migration (as loaded back from its file).
    """
    cycle.generate(v1, "v1")
    cycle.upgrade()
    assert cycle.diff(v1) == [], "v1 is not clean after upgrade"
    if at_v1 is not None:
        at_v1()
    operations = cycle.generate(v2, "v2")
    cycle.upgrade()
    assert cycle.diff(v2) == [], "v2 is not clean after upgrade"
    if at_v2 is not None:
        at_v2()
    cycle.downgrade("-1")
    assert cycle.diff(v1) == [], "v1 is not clean after downgrade"
    cycle.upgrade()
    assert cycle.diff(v2) == [], "v2 is not clean after the second upgrade"
    return operations


def kinds(operations: Sequence[Operation]) -> list[str]:
    """The class names of `operations`, in order."""
    return [type(operation).__name__ for operation in operations]
