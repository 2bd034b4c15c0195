"""`erd` (Mermaid and Graphviz diagrams of the models or the live database), `history --graph`, and --json."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli, write_project

MODELS = '''
import sqlalchemy as sa

Base = sa.MetaData()
users = sa.Table("users", Base, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("email", sa.String(80), nullable=False, unique=True))
posts = sa.Table("posts", Base, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("user_id", sa.ForeignKey("users.id"), nullable=False), sa.Column("price", sa.Numeric(10, 2)))
profile = sa.Table("profile", Base, sa.Column("user_id", sa.ForeignKey("users.id"), primary_key=True))
'''

EXPECTED_MERMAID = """erDiagram
    posts {
        integer id PK "NOT NULL"
        integer user_id FK "NOT NULL"
        numeric(10-2) price
    }
    profile {
        integer user_id PK, FK "NOT NULL"
    }
    users {
        integer id PK "NOT NULL"
        string(80) email UK "NOT NULL"
    }
    posts }o--|| users : "user_id"
    profile ||--|| users : "user_id"
"""


def test_erd_of_models_and_of_the_live_database(tmp_path: Path) -> None:
    directory = write_project(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", MODELS)
    assert cli(directory, "erd").stdout == EXPECTED_MERMAID
    cli(directory, "generate", "-m", "init")
    cli(directory, "upgrade")
    live = cli(directory, "erd", "--live").stdout
    assert live.startswith("erDiagram\n") and 'posts }o--|| users : "user_id"' in live
    assert "schemashift_version" not in live
    graph = cli(directory, "erd", "--format", "dot").stdout
    assert graph.startswith("digraph schema {") and '"posts" -> "users" [label="user_id"];' in graph


def test_history_graph_and_json_outputs(tmp_path: Path) -> None:
    directory = write_project(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", MODELS)
    cli(directory, "generate", "-m", "init")
    cli(directory, "generate", "--empty", "-m", "data")
    lines = cli(directory, "history", "--graph").stdout.splitlines()
    assert lines[0].startswith("* ") and lines[0].endswith("data (head)") and lines[1] == "|" and "init" in lines[2]
    cli(directory, "upgrade")
    verify = json.loads(cli(directory, "verify", "--json").stdout)
    assert verify["ok"] is True and verify["problems"] == []
    assert json.loads(cli(directory, "backups", "list", "--json").stdout) == []


def test_erd_leaves_out_excluded_tables(tmp_path: Path) -> None:
    directory = write_project(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", MODELS, extra_config='exclude = ["profile"]\n')
    cli(directory, "generate", "-m", "init")
    cli(directory, "upgrade")
    for args in (["erd"], ["erd", "--live"]):
        shown = cli(directory, *args).stdout
        assert "users {" in shown and "profile" not in shown, shown
