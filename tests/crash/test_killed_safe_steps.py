"""A kill at each statement of a safe-mode sequence, then `repair continue` or `repair undo`.

Safe mode adds a NOT NULL column with a volatile default to a large table as
several statements, each journaled on its own: the column nullable, its default, a
batched backfill, then NOT NULL (PostgreSQL: ``ADD CONSTRAINT … CHECK (col IS NOT
NULL) NOT VALID``, ``VALIDATE CONSTRAINT``, ``SET NOT NULL``, ``DROP CONSTRAINT``;
MariaDB: ``MODIFY … NOT NULL``); a plain ``SET NOT NULL`` runs as those last
statements. The process is killed (``SCHEMASHIFT_FAULT_KILL_AT``) just before and
just after each of them (the backfill's batches have their own tests); then
`status` exits 2, and either `repair continue` leaves the schema the models describe
(what the plain form gives) with every row's values as the kill left them, or
`repair undo` leaves the schema as before the migration, every row kept. Each
statement declares the trace it leaves in the catalogue, from which repair knows
where the run stopped (`test_locate_reads_the_position_from_the_trace`, no database).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers import cli, execute, fetch_rows, inspect_schema, set_models, write_project

MODELS = '''
import sqlalchemy as sa

Base = sa.MetaData()
t = sa.Table("t", Base, sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.String(20)),
             sa.Column("b", sa.Integer{b}) {extra})
'''
#: backend -> the column added: NOT NULL, with a default the database evaluates row by row
VOLATILE = {
    "postgresql": ', sa.Column("d", sa.Uuid, nullable=False, server_default=sa.text("gen_random_uuid()"))',
    "mysql": ', sa.Column("d", sa.String(36), nullable=False, server_default=sa.text("uuid()"))',
}
CONFIG = "safe = true\nddl_lock_timeout = 0.5\nddl_retries = 3\nddl_backoff = 0.05\nsafe_rewrite_rows = 100\n"
ROWS = 2500  # three batches of 1000 (a Backfill's default size)
#: backend -> the statements (counted by the fault hook, which counts each batch as one) killed before and after:
#: PostgreSQL ADD COLUMN, SET DEFAULT, (three batches), ADD CONSTRAINT … NOT VALID, VALIDATE, SET NOT NULL, DROP
#: CONSTRAINT; MariaDB ADD COLUMN, MODIFY … DEFAULT, (three batches), MODIFY … NOT NULL
ADD_COLUMN = {"postgresql": (0, 1, 5, 6, 7, 8), "mysql": (0, 1, 5)}
#: backend -> the statements of the safe SET NOT NULL (PostgreSQL: through a validated CHECK; MariaDB: one MODIFY)
SET_NOT_NULL = {"postgresql": (0, 1, 2, 3), "mysql": (0,)}


def _kills(statements: dict[str, tuple[int, ...]]) -> list[object]:
    """Each statement killed before and after it ran; `repair continue` and `repair undo` take turns (a statement
    gets both between its two kills, and each action meets kills before and after), which halves the runs."""
    return [pytest.param(backend, f"{index}{after}", action, id=f"{backend}-{index}{after}-{action}")
            for backend, indexes in statements.items() for position, index in enumerate(indexes)
            for turn, after in enumerate(("", "+"))
            for action in [("continue", "undo")[(position + turn) % 2] if len(indexes) > 1 else "continue",
                           *(["undo"] if len(indexes) == 1 else [])]]


def _project(tmp_path: Path, url: str, extra: str, b: str = "") -> Path:
    """t with ROWS rows (b set) at base; the change to `extra` columns and `b` options generated, not applied."""
    directory = write_project(tmp_path, url, MODELS.format(b="", extra=""), extra_config=CONFIG)
    cli(directory, "generate", "-m", "base")
    cli(directory, "upgrade")
    execute(url, "INSERT INTO t (id, a, b) VALUES " + ", ".join(f"({i}, 'a{i}', {i})" for i in range(1, ROWS + 1)))
    set_models(directory, MODELS.format(b=b, extra=extra))
    cli(directory, "generate", "-m", "change")
    return directory


def _rows(url: str) -> list[tuple[object, ...]]:
    return fetch_rows(url, "SELECT id, a, b FROM t ORDER BY id")


def _filled(url: str) -> dict[object, object]:
    """The values of d the rows hold (none when d is not there)."""
    if "d" not in inspect_schema(url)["t"]["columns"]:  # type: ignore[operator]
        return {}
    return dict(fetch_rows(url, "SELECT id, d FROM t WHERE d IS NOT NULL"))


def _kill_and_repair(directory: Path, url: str, kill: str, action: str) -> None:
    """Kill the upgrade at `kill`, check `status` and run `repair action`: the schema is then the models' (continue)
    or as before (undo), every row keeps its values (a value of d the kill left too, continue fills the others)."""
    from conftest import require_backend

    require_backend(sa.make_url(url).get_backend_name())
    before, rows = inspect_schema(url), _rows(url)
    killed = cli(directory, "upgrade", check=False, env={"SCHEMASHIFT_FAULT_KILL_AT": kill})
    assert killed.returncode != 0, killed.stdout
    filled = _filled(url)
    status = cli(directory, "status", check=False)
    assert status.returncode == 2 and "repair" in status.stdout + status.stderr, (status.stdout, status.stderr)
    repaired = cli(directory, "repair", action, check=False)
    assert repaired.returncode == 0, (repaired.stdout, repaired.stderr)
    after = cli(directory, "status", check=False)  # undone: the migration is pending again (exit 1)
    assert after.returncode == (0 if action == "continue" else 1) and "matches" in after.stdout, after.stdout
    assert _rows(url) == rows
    if action == "continue":
        assert cli(directory, "diff", check=False).returncode == 0
        now = _filled(url)
        assert all(now.get(key) == value for key, value in filled.items())
        assert not now or len(now) == ROWS
    else:
        assert inspect_schema(url) == before
        cli(directory, "upgrade")
        assert cli(directory, "diff", check=False).returncode == 0


@pytest.mark.parametrize(("backend", "kill", "action"), _kills(ADD_COLUMN))
def test_kill_around_the_backfill_of_an_added_column(backend: str, kill: str, action: str, fresh_db: str,
                                                    tmp_path: Path) -> None:
    """ADD COLUMN d NOT NULL DEFAULT <volatile> on a large table: killed at each statement around the backfill."""
    directory = _project(tmp_path, fresh_db, VOLATILE[backend])
    _kill_and_repair(directory, fresh_db, kill, action)
    assert len(_filled(fresh_db)) == ROWS


@pytest.mark.parametrize(("backend", "kill", "action"), _kills(SET_NOT_NULL))
def test_kill_inside_set_not_null(backend: str, kill: str, action: str, fresh_db: str, tmp_path: Path) -> None:
    """SET NOT NULL on an existing table: killed at each statement of its safe form."""
    directory = _project(tmp_path, fresh_db, "", b=", nullable=False")
    _kill_and_repair(directory, fresh_db, kill, action)


# -- locate with traces, no database ----------------------------------------------------------------------------


def test_locate_reads_the_position_from_the_trace() -> None:
    """SET NOT NULL's safe statements each declare a trace; with the journal and whether the one in doubt ran,
    `locate` resumes at the right statement and takes back the helper CHECK it added."""
    from crash.test_repair_safety import _Migration, _row
    from schemashift.dialects import get_dialect
    from schemashift.migration import AlterColumn, CheckConstraint, Column, PrimaryKey, Table, Type
    from schemashift.model.schema import Schema
    from schemashift.planning.plan import up_step
    from schemashift.planning.safe import SafeSettings, safe_step
    from schemashift.runtime.repair import locate

    dialect = get_dialect("postgresql")
    nullable = Column("b", Type("integer"))
    table = Table("t", (Column("id", Type("integer"), nullable=False), nullable), primary_key=PrimaryKey(("id",)))
    change = AlterColumn("t", "b", new=nullable.evolve(nullable=False), old=nullable)
    step = safe_step(up_step(dialect, _Migration([change]), Schema.of([table])),  # type: ignore[arg-type]
                     SafeSettings(0.5, 3, 0.05))
    traces = [statement.trace for statement in step.statements]
    assert [trace.kind for trace in traces if trace] == ["check", "validated", "not_null", "no_check"], traces
    helper = CheckConstraint("b IS NOT NULL", name=traces[0].name if traces[0] else None)
    checked = table.evolve(checks=(helper,))

    def where(done: int, ran: bool, live: Table) -> tuple[int, int, list[str]]:
        position = locate(step, _row("running", done), Schema.of([live]), dialect, ran)
        return position.ops_done, position.resume_at, [op.describe() for op in position.unwind]

    drop = f"drop check {helper.name} (b is not null) on t"
    assert where(0, False, table) == (0, 0, [])
    assert where(0, True, checked) == (0, 1, [drop])
    assert where(1, False, checked) == (0, 1, [drop])
    assert where(2, True, checked.evolve(columns=(table.columns[0], change.new))) == \
        (0, 3, [drop, "alter column t.b (nullable)"])
    assert where(3, True, table.evolve(columns=(table.columns[0], change.new))) == (1, 4, [])
