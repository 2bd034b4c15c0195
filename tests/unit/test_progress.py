"""Progress of upgrade/downgrade/repair: live at a terminal (rich), plain lines otherwise, --quiet (SQLite)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli, run_in_pty as pty_run, scalar, set_models, write_project

V1 = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
'''

V2 = V1 + '''
class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
'''

PLAIN = re.compile(r"applied 0001_create_author \(\w+\) in \d+ ms\n"
                   r"applied 0002_add_book \((\w+)\) in \d+ ms\nDatabase is at \1\.\n")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def last_line(shown: str) -> str:
    """The last line left on the screen (escape sequences and carriage returns removed)."""
    lines = [line.split("\r")[-1].strip() for line in ANSI.sub("", shown).replace("\r\n", "\n").split("\n")]
    return [line for line in lines if line][-1]


def run_in_pty(directory: Path, args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI on a 100-column colour terminal (NO_COLOR only when `env` sets it); (exit code, what it showed)."""
    drop = ("SCHEMASHIFT_ENV",) if "NO_COLOR" in (env or {}) else ("SCHEMASHIFT_ENV", "NO_COLOR")
    return pty_run(directory, args, env={"TERM": "xterm-256color", "COLUMNS": "100", **(env or {})}, drop=drop)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two migrations (create author, add book), database at base; every migration runs (no fresh build)."""
    directory = write_project(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", V1, extra_config="step_by_step = true\n")
    cli(directory, "generate", "-m", "create author")
    set_models(directory, V2)
    cli(directory, "generate", "-m", "add book")
    return directory


def url(project: Path) -> str:
    return f"sqlite:///{project / 'app.db'}"


def tables(project: Path) -> int:
    return scalar(url(project), "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                "AND name IN ('author', 'book')")  # type: ignore[return-value]


def test_terminal_shows_migration_statement_and_elapsed_then_the_plain_result(project: Path) -> None:
    code, shown = run_in_pty(project, ["upgrade"])
    assert code == 0, shown
    assert "migration 1 of 2" in shown and "migration 2 of 2" in shown, shown
    assert "CREATE TABLE book" in shown, shown  # the statement running now
    assert re.search(r"\d:\d\d:\d\d", shown), shown  # elapsed time
    assert re.search(r"applied 0001_create_author \(\w+\) in \d+ ms", shown), shown
    assert re.search(r"applied 0002_add_book \(\w+\) in \d+ ms", shown), shown
    assert last_line(shown).startswith("Database is at ") and not shown.endswith("\x1b[2K"), repr(shown)
    assert "Traceback" not in shown and tables(project) == 2
    code, shown = run_in_pty(project, ["downgrade", "base"])
    assert code == 0 and "migration 2 of 2" in shown and "DROP TABLE book" in shown, shown
    assert last_line(shown) == "Database is at base.", repr(shown)
    assert tables(project) == 0


def test_statement_is_cut_to_the_terminal_width(project: Path) -> None:
    code, shown = run_in_pty(project, ["upgrade"], {"COLUMNS": "60"})
    assert code == 0, shown
    assert "…" in shown, shown  # CREATE TABLE author (... does not fit beside the bar at 60 columns
    assert all(len(line) <= 60 for line in ANSI.sub("", shown).replace("\r", "\n").splitlines()), shown


def test_no_color_and_no_terminal_print_the_plain_lines(project: Path) -> None:
    code, shown = run_in_pty(project, ["upgrade"], {"NO_COLOR": "1"})
    assert code == 0 and PLAIN.fullmatch(shown.replace("\r\n", "\n")), repr(shown)
    cli(project, "downgrade", "base")
    piped = cli(project, "upgrade")
    assert PLAIN.fullmatch(piped.stdout), repr(piped.stdout)
    assert piped.stderr == ""


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_prints_only_the_final_line(project: Path, where: str) -> None:
    args = ["--quiet", "upgrade"] if where == "before" else ["upgrade", "--quiet"]
    piped = cli(project, *args)
    assert re.fullmatch(r"Database is at \w+\.\n", piped.stdout), repr(piped.stdout)
    code, shown = run_in_pty(project, ["downgrade", "base", "-q"])
    assert code == 0 and shown.replace("\r\n", "\n") == "Database is at base.\n", repr(shown)
    assert tables(project) == 0


def test_quiet_still_prints_errors(project: Path) -> None:
    failed = cli(project, "--quiet", "downgrade", "nosuchrevision", check=False)
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr.startswith("schemashift: error: ") and len(failed.stderr.splitlines()) == 1


def test_without_rich_a_terminal_gets_the_plain_lines(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """rich is an optional extra: when it cannot be imported, a terminal shows the plain lines."""
    shadow = tmp_path_factory.mktemp("norich")
    (shadow / "rich").mkdir()
    (shadow / "rich" / "__init__.py").write_text("raise ImportError('rich is not installed')\n")
    path = os.pathsep.join(filter(None, [str(shadow), os.environ.get("PYTHONPATH", "")]))
    code, shown = run_in_pty(project, ["upgrade"], {"PYTHONPATH": path})
    assert code == 0 and PLAIN.fullmatch(shown.replace("\r\n", "\n")), repr(shown)


def test_help_does_not_import_rich(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "schemashift", "upgrade", "--help"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--quiet" in result.stdout
    assert "rich" not in {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                          if line.startswith("import time:")}


def test_a_failure_at_a_terminal_ends_the_display_then_prints_the_error(project: Path) -> None:
    cli(project, "generate", "--empty", "-m", "broken")
    path = next((project / "migrations").glob("0003_*.py"))
    text = path.read_text()
    path.write_text(re.sub(r"operations = \[\s*\]", 'operations = [ExecuteSQL("SELECT * FROM no_such_table",'
                                                     ' reverse="SELECT 1")]', text))
    assert "no_such_table" in path.read_text(), text
    code, shown = run_in_pty(project, ["upgrade"])
    assert code == 2 and "migration 3 of 3" in shown and "SELECT * FROM no_such_table" in shown, repr(shown)
    assert last_line(shown).startswith("schemashift: error: ") and "Traceback" not in shown, repr(shown)
    assert tables(project) == 2  # the first two migrations stay applied


def test_dry_run_and_sql_print_their_output_whatever_the_mode(project: Path) -> None:
    """The plan of --dry-run and the SQL of --sql are the output, not progress: --quiet keeps them whole."""
    plain = cli(project, "upgrade", "--dry-run").stdout
    assert cli(project, "upgrade", "--dry-run", "--quiet").stdout == plain and len(plain.splitlines()) > 1
    sql = cli(project, "upgrade", "--sql").stdout
    assert cli(project, "-q", "upgrade", "--sql").stdout == sql and "CREATE TABLE book" in sql
    code, shown = run_in_pty(project, ["upgrade", "--dry-run"])
    assert code == 0 and shown.replace("\r\n", "\n") == plain, repr(shown)
    assert tables(project) == 0
