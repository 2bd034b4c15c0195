"""The README's Commands table names every command and the options a new user meets; `repair --help` names its
two actions; the `init` template explains `extends`; the README explains kept data."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from schemashift import cli

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands() -> list[str]:
    parser = cli.build_parser()
    found = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return sorted(found[0].choices)


def test_every_command_is_in_the_commands_table() -> None:
    table = README[README.index("## Commands"):]
    table = table[:table.index("\n\n", table.index("| command |"))]
    named = set(re.findall(r"^\| `schemashift ([a-z-]+)", table, flags=re.MULTILINE))
    assert set(_commands()) <= named, set(_commands()) - named
    for option in ("--yes", "--allow-data-loss", "--json", "--sql", "--dry-run", "--step-by-step"):
        assert option in README, option


def test_repair_help_names_continue_and_undo(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["repair", "--help"])
    shown = capsys.readouterr().out
    assert "`continue`" in shown and "`undo`" in shown and "interrupted fresh build" in " ".join(shown.split())


def test_init_template_explains_extends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["init", "--models", "app.models:Base", "--url", "sqlite:///app.db"]) == 0
    text = (tmp_path / "schemashift.toml").read_text()
    assert "extends" in text and "start from env.local's settings" in text


def test_kept_data_is_explained() -> None:
    assert "_schemashift_bk_" in README and "keep_data = false" in README and "backups prune" in README
