"""The rename and fill questions at a real terminal, and the refusal to guess without one.

`generate` runs as a subprocess on a pseudo-terminal (``os.openpty``), so it sees
a TTY exactly as at a user's shell; the test reads its prompt and types the
answer. Without a terminal, a possible rename with no decision (or a NOT NULL
column added to an existing table with no value for its rows) stops `generate`
with exit 2, a message naming the flags, and no file written. Only plausible
renames are asked.
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
PROMPTS = (b"[y/N]", b"empty to stop: ")


def run_in_terminal(directory: Path, args: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``python -m schemashift ARGS`` on a pseudo-terminal, typing one answer per prompt (rename or fill)."""
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
                if sum(output.count(prompt) for prompt in PROMPTS) > answered and answered < len(answers):
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
    code, output = run_in_terminal(project, ["generate", "-m", "replace"], ["n", "nobody"])
    assert code == 0, output
    assert "Did you rename users.name to users.full_name?" in output
    text = newest(project)
    assert "DropColumn(" in text and "AddColumn(" in text and "RenameColumn(" not in text, text
    assert 'fill="nobody"' in text, text


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


def test_terminal_end_of_input_is_no_answer(project: Path) -> None:
    """Ctrl-D at the rename question answers nothing: generate stops naming the options (exit 2), writes nothing."""
    set_models(project, V2_COLUMN)
    before = migrations(project)
    code, output = run_in_terminal(project, ["generate", "-m", "rename"], ["\x04"])
    assert code == 2, output
    assert "possible column rename users.name -> users.full_name" in output and "--rename-column" in output
    assert "Traceback" not in output and migrations(project) == before


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
    cli(project, "generate", "-m", "replace", "--no-rename", "--default", "users.full_name=?")
    text = newest(project)
    assert "DropColumn(" in text and "AddColumn(" in text and "RenameColumn(" not in text, text


def test_wrong_rename_flag_is_a_one_line_error(project: Path) -> None:
    set_models(project, V2_COLUMN)
    result = cli(project, "generate", "-m", "rename", "--rename-column", "users.name:nope", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "nope" in result.stderr and "Traceback" not in result.stderr


# -- one-off values for the rows of an existing table (a NOT NULL column without a default) ------------

V2_NOT_NULL = V1 + "    age: Mapped[int]\n    joined: Mapped[str] = mapped_column(sa.String(20), server_default='-')\n"


def test_terminal_asks_a_value_for_existing_rows(project: Path) -> None:
    set_models(project, V2_NOT_NULL)
    code, output = run_in_terminal(project, ["generate", "-m", "age"], ["old", "42"])
    assert code == 0, output
    assert "users.age is added NOT NULL without a default" in output, output
    assert "an integer is needed" in output, output  # "old" is asked again
    assert output.count("empty to stop: ") == 2, output  # only age: joined has a server default
    text = newest(project)
    assert 'AddColumn("users", Column("age", Type("integer"), nullable=False), fill=42)' in text, text
    assert "fill=" not in text.split("joined")[1], text


@pytest.mark.parametrize("answer", ["", "\x04"], ids=["empty", "eof"])
def test_terminal_no_value_refuses(project: Path, answer: str) -> None:
    set_models(project, V2_NOT_NULL)
    before = migrations(project)
    code, output = run_in_terminal(project, ["generate", "-m", "age"], [answer])
    assert code == 2, output
    assert "Traceback" not in output and "--default users.age=VALUE" in output, output
    assert migrations(project) == before


def test_no_terminal_not_null_column_refuses(project: Path) -> None:
    set_models(project, V2_NOT_NULL)
    before = migrations(project)
    result = cli(project, "generate", "-m", "age", check=False, input="")
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    assert "users.age" in message and "server_default" in message and "--default users.age=VALUE" in message, message
    assert "joined" not in message, message
    assert migrations(project) == before


def test_no_terminal_default_flag(project: Path) -> None:
    set_models(project, V2_NOT_NULL)
    result = cli(project, "generate", "-m", "age", "--default", "users.age=7")
    assert "existing rows set to 7" in result.stdout, result.stdout
    assert "fill=7)" in newest(project)


@pytest.mark.parametrize(("flags", "expected"), [
    (["users.age=seven"], "an integer is needed"),
    (["users.age=1", "users.name=x"], "--default users.name: not a NOT NULL column"),
    (["age=7"], "expected TABLE.COLUMN=VALUE"),
])
def test_no_terminal_bad_default_flag(project: Path, flags: list[str], expected: str) -> None:
    set_models(project, V2_NOT_NULL)
    before = migrations(project)
    result = cli(project, "generate", "-m", "age", *[f"--default={flag}" for flag in flags], check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 or result.stderr.startswith("usage:"), result.stderr
    assert migrations(project) == before


def test_api_generate_defaults(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import schemashift
    from schemashift.autodetect.differ import FillUndecided

    set_models(project, V2_NOT_NULL)
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    with pytest.raises(FillUndecided):
        schemashift.generate("age", config=project / "schemashift.toml")
    path = schemashift.generate("age", config=project / "schemashift.toml", defaults={"users.age": 3})
    assert path is not None and "fill=3)" in path.read_text()


# -- only plausible renames are asked ------------------------------------------------------------------

UNRELATED = V1 + '''
class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(80))
    body: Mapped[str] = mapped_column(sa.Text)
'''
OTHER_ONLY = V1.split("class User")[0] + '''
class Other(Base):
    __tablename__ = "other"
    id: Mapped[int] = mapped_column(primary_key=True)
'''


def test_unrelated_tables_are_not_a_rename(tmp_path: Path) -> None:
    directory = write_project(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", UNRELATED)
    cli(directory, "generate", "-m", "users and posts")
    set_models(directory, OTHER_ONLY)
    result = cli(directory, "generate", "-m", "other", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    text = newest(directory)
    assert "RenameTable(" not in text and text.count("DropTable(") == 2 and "CreateTable(" in text, text


def test_column_changing_nullability_is_not_a_rename(project: Path) -> None:
    set_models(project, V1.replace("name: Mapped[str] = mapped_column(sa.String(50))",
                                   "label: Mapped[str | None] = mapped_column(sa.String(50))"))
    result = cli(project, "generate", "-m", "label", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    text = newest(project)
    assert "RenameColumn(" not in text and "DropColumn(" in text and "AddColumn(" in text, text


def test_plausible_renames_are_still_asked(project: Path) -> None:
    """A table keeping its columns, or a column keeping its type kind and nullability (a longer string), is asked."""
    set_models(project, V1.replace('"users"', '"people"') + "    email: Mapped[str | None]\n")
    result = cli(project, "generate", "-m", "people", check=False)
    assert result.returncode == 2 and "possible table rename users -> people" in result.stderr, result.stderr
    set_models(project, V1.replace("name: Mapped[str] = mapped_column(sa.String(50))",
                                   "title: Mapped[str] = mapped_column(sa.String(80))"))
    result = cli(project, "generate", "-m", "title", check=False)
    assert result.returncode == 2 and "possible column rename users.name -> users.title" in result.stderr, result.stderr
