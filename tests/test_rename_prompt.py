"""The rename question at a real terminal, and the refusal to guess without one.

`generate` runs as a subprocess on a pseudo-terminal (``os.openpty``), so it sees
a TTY exactly as at a user's shell; the test reads its prompt and types the
answer. Without a terminal, a possible rename with no decision stops `generate`
with exit 2, a message naming the flags, and no file written.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import cli, set_models, write_project

V1 = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
'''
V2_COLUMN = V1.replace("name: Mapped[str]", "full_name: Mapped[str]")
V2_TABLE = V1.replace('"users"', '"people"')
PROMPT = b"[y/N]"


def run_in_terminal(directory: Path, args: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``python -m schemashift ARGS`` on a pseudo-terminal, typing one answer per ``[y/N]`` prompt."""
    master, slave = os.openpty()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "TERM": "dumb"}
    env.pop("SCHEMASHIFT_ENV", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "schemashift", *args], cwd=directory, stdin=slave, stdout=slave, stderr=slave,
        env=env, close_fds=True,
    )
    os.close(slave)
    output = b""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if output.count(PROMPT) > answered and answered < len(answers):
                    os.write(master, answers[answered].encode() + b"\n")
                    answered += 1
            elif process.poll() is not None:
                break
        else:
            process.kill()
            raise AssertionError(f"schemashift {' '.join(args)} did not finish:\n{output.decode(errors='replace')}")
        return process.wait(timeout=30), output.decode(errors="replace").replace("\r\n", "\n")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project at v1 with its first migration; no database is needed to generate."""
    directory = write_project(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", V1)
    cli(directory, "generate", "-m", "users")
    return directory


def migrations(directory: Path) -> list[Path]:
    return sorted((directory / "migrations").glob("0*.py"))


def newest(directory: Path) -> str:
    return migrations(directory)[-1].read_text()


def test_terminal_yes_renames_the_column(project: Path) -> None:
    set_models(project, V2_COLUMN)
    code, output = run_in_terminal(project, ["generate", "-m", "rename"], ["y"])
    assert code == 0, output
    assert "Did you rename users.name to users.full_name? [y/N]" in output
    text = newest(project)
    assert "RenameColumn(" in text and "DropColumn(" not in text and "AddColumn(" not in text, text


def test_terminal_no_drops_and_adds(project: Path) -> None:
    set_models(project, V2_COLUMN)
    code, output = run_in_terminal(project, ["generate", "-m", "replace"], ["n"])
    assert code == 0, output
    assert "Did you rename users.name to users.full_name?" in output
    text = newest(project)
    assert "DropColumn(" in text and "AddColumn(" in text and "RenameColumn(" not in text, text


def test_terminal_table_rename(project: Path) -> None:
    set_models(project, V2_TABLE)
    code, output = run_in_terminal(project, ["generate", "-m", "rename table"], ["yes"])
    assert code == 0, output
    assert "Did you rename users to people? [y/N]" in output
    text = newest(project)
    assert "RenameTable(" in text and "DropTable(" not in text, text


def test_terminal_asks_again_on_other_answers(project: Path) -> None:
    set_models(project, V2_COLUMN)
    code, output = run_in_terminal(project, ["generate", "-m", "rename"], ["maybe", "y"])
    assert code == 0, output
    assert "Please answer y or n." in output
    assert "RenameColumn(" in newest(project)


@pytest.mark.parametrize(("models", "flag"), [(V2_COLUMN, "--rename-column"), (V2_TABLE, "--rename-table")])
def test_no_terminal_no_decision_refuses(project: Path, models: str, flag: str) -> None:
    set_models(project, models)
    before = migrations(project)
    result = cli(project, "generate", "-m", "guess", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    assert flag in message and "--no-rename" in message, message
    assert migrations(project) == before


def test_no_terminal_rename_column_flag(project: Path) -> None:
    set_models(project, V2_COLUMN)
    cli(project, "generate", "-m", "rename", "--rename-column", "users.name:full_name")
    text = newest(project)
    assert "RenameColumn(" in text and "DropColumn(" not in text, text


def test_no_terminal_rename_table_flag(project: Path) -> None:
    set_models(project, V2_TABLE)
    cli(project, "generate", "-m", "rename", "--rename-table", "users:people")
    text = newest(project)
    assert "RenameTable(" in text and "DropTable(" not in text, text


def test_no_terminal_no_rename_drops_and_adds(project: Path) -> None:
    set_models(project, V2_COLUMN)
    cli(project, "generate", "-m", "replace", "--no-rename")
    text = newest(project)
    assert "DropColumn(" in text and "AddColumn(" in text and "RenameColumn(" not in text, text


def test_wrong_rename_flag_is_a_one_line_error(project: Path) -> None:
    set_models(project, V2_COLUMN)
    result = cli(project, "generate", "-m", "rename", "--rename-column", "users.name:nope", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "nope" in result.stderr and "Traceback" not in result.stderr
