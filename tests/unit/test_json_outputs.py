"""Every reporting command's ``--json`` carries exactly the keys docs/json.md documents (SQLite, through the CLI).

A project with three migrations (the last drops a column that holds a row, so `lint`
has a finding and `backups list` a backup) is upgraded; each command's output is
parsed and its keys compared with the table under the command's heading.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers import cli, execute, set_models, write_project

DOC = Path(__file__).resolve().parents[2] / "docs" / "json.md"

V1 = """import sqlalchemy as sa
Base = sa.MetaData()
authors = sa.Table("authors", Base, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))
"""
V2 = V1 + 'books = sa.Table("books", Base, sa.Column("id", sa.Integer, primary_key=True))\n'
V3 = V2.replace(', sa.Column("name", sa.String(50))', "")


def documented() -> dict[str, set[str]]:
    """The keys of each ``### `command``` table of docs/json.md."""
    sections = re.split(r"^### `([^`]+)`$", DOC.read_text(), flags=re.MULTILINE)[1:]
    return {name: set(re.findall(r"^\| `([a-z_]+)` \|", body, flags=re.MULTILINE))
            for name, body in zip(sections[::2], sections[1::2], strict=True)}


def test_json_keys_are_the_documented_ones(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    project = write_project(tmp_path, url, V1)
    cli(project, "generate", "-m", "authors")
    set_models(project, V2)
    cli(project, "generate", "-m", "books")
    cli(project, "upgrade")
    execute(url, "INSERT INTO authors (id, name) VALUES (1, 'kept')")
    set_models(project, V3)
    cli(project, "generate", "-m", "drop name")
    cli(project, "upgrade")

    def keys(*args: str) -> set[str]:
        data = json.loads(cli(project, *args, "--json", check=False).stdout)
        rows = data if isinstance(data, list) else [data]
        assert rows, args
        return set().union(*(set(row) for row in rows))

    found = {
        "status": keys("status"),
        "history": keys("history"),
        "history --applied": keys("history", "--applied"),
        "diff": keys("diff"),
        "envs": keys("envs"),
        "lint": keys("lint", "--all"),
        "verify": keys("verify"),
        "backups list": keys("backups", "list"),
    }
    assert found == documented()


def test_history_text_calls_a_note_a_note(tmp_path: Path) -> None:
    """`history --applied` shows the fresh build's note as ``note=``, not ``error=`` (the column holds both)."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    project = write_project(tmp_path, url, V1)
    cli(project, "generate", "-m", "authors")
    set_models(project, V2)
    cli(project, "generate", "-m", "books")
    cli(project, "upgrade")
    text = cli(project, "history", "--applied").stdout
    assert "note=fresh build from the schema at" in text and "error=" not in text, text
