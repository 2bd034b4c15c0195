"""A kill at each statement of a safe-mode sequence after a backfill, then `repair continue` or `repair undo`.

Safe mode runs NOT NULL on an existing table as several statements, each journaled
on its own (PostgreSQL: ``ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID``,
``VALIDATE CONSTRAINT``, ``SET NOT NULL``, ``DROP CONSTRAINT``; MariaDB: ``MODIFY …
NOT NULL``), after the batched backfill of a column added with a volatile default
or alone for ``SET NOT NULL``. The process is killed (``SCHEMASHIFT_FAULT_KILL_AT``)
just before and just after each of them; then `status` exits 2, and either `repair
continue` leaves the schema the models describe (what the plain form gives) with
every row's values as the kill left them, or `repair undo` leaves the schema as
before the migration, every row kept.
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
    return [pytest.param(backend, f"{index}{after}", action, id=f"{backend}-{index}{after}-{action}")
            for backend, indexes in statements.items() for index in indexes
            for after in ("", "+") for action in ("continue", "undo")]


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
