"""The command-line shell: parsing, `init`, help, start-up cost, config errors and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemashift import cli
from schemashift.errors import DifferencesFound, RevisionError

REPO = Path(__file__).resolve().parents[2]


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m schemashift ARGS` in `cwd`."""
    environ = {k: v for k, v in os.environ.items() if k != "SCHEMASHIFT_ENV"}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "schemashift", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=60)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("schemashift: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


# --------------------------------------------------------------------------- subprocess


def test_help_lists_commands(tmp_path: Path) -> None:
    result = run(tmp_path, "--help")
    assert result.returncode == 0
    for name in ("init", "generate", "check", "upgrade", "downgrade", "status", "history", "diff", "envs",
                 "verify", "repair", "test-migrations", "backups", "--config", "--env", "--url", "--debug"):
        assert name in result.stdout
    sub = run(tmp_path, "upgrade", "--help")
    assert sub.returncode == 0 and "--allow-data-loss" in sub.stdout and "--config" in sub.stdout


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "schemashift", "--help"], cwd=tmp_path, capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60,
    )
    assert result.returncode == 0
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in modules if m.split(".")[0] == "sqlalchemy"}
    assert {m for m in modules if m.startswith("schemashift")} <= {"schemashift", "schemashift.cli",
                                                                   "schemashift.__main__", "schemashift.support", "schemashift.version",
                                                                   "schemashift.support.gcpause"}


def run_probe(tmp_path: Path, source: str, *args: str, env: dict[str, str] | None = None,
              **options: Any) -> subprocess.CompletedProcess[str]:
    """Run `source` as a script (with this checkout's schemashift importable) and `args`; `options` go to
    `subprocess.run`."""
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    return subprocess.run([sys.executable, str(probe), *args], text=True, timeout=60,
                          env={**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}, **options)


def test_the_command_ends_after_its_exit_hooks_with_its_exit_code(tmp_path: Path) -> None:
    """`cli.run` skips the interpreter's teardown, but only once every exit hook the command registered ran and
    its output was flushed; the process exits with the command's code."""
    result = run_probe(tmp_path, "import atexit, sys\n"
                                 "from schemashift import cli\n"
                                 "def main():\n"
                                 "    atexit.register(lambda: open(sys.argv[1], 'w').write('saved'))\n"
                                 "    print('unflushed output', end='')\n"
                                 "    return 7\n"
                                 "cli.main = main\n"
                                 "cli.run()\n", str(tmp_path / "hook"), capture_output=True)
    assert (result.returncode, result.stdout) == (7, "unflushed output"), result.stderr
    assert (tmp_path / "hook").read_text() == "saved"


def test_exit_hooks_registered_before_the_command_still_run(tmp_path: Path) -> None:
    """A hook registered before `cli.run` (coverage's subprocess measurement, a sitecustomize, a program that calls
    `run` itself) would run after the fast end: then the interpreter ends the process normally."""
    result = run_probe(tmp_path, "import atexit, sys\n"
                                 "atexit.register(lambda: open(sys.argv[1], 'w').write('saved'))\n"
                                 "from schemashift import cli\n"
                                 "cli.main = lambda: 5\n"
                                 "cli.run()\n", str(tmp_path / "hook"), capture_output=True)
    assert result.returncode == 5, result.stderr
    assert (tmp_path / "hook").read_text() == "saved"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_the_command_fails_when_its_buffered_output_cannot_be_written(tmp_path: Path) -> None:
    """Output still buffered when the command ends (stdout a file, not a terminal) and that cannot be written (a
    full disk): the exit code says so, as the interpreter's own end does (120), never 0 with the output lost."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:
        result = run_probe(tmp_path, "from schemashift import cli\n"
                                     "def main():\n"
                                     "    print('{\"findings\": []}')\n"
                                     "    return 0\n"
                                     "cli.main = main\n"
                                     "cli.run()\n", env=env, stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 120, result.stderr
    assert "No space left on device" in result.stderr


def test_init_creates_project_and_refuses_overwrite(tmp_path: Path) -> None:
    result = run(tmp_path, "init", "--models", "app.models:Base", "--url", "sqlite:///dev.db")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "schemashift.toml").read_text()
    assert 'models = "app.models:Base"' in text and 'url = "sqlite:///dev.db"' in text
    assert (tmp_path / "migrations" / ".keep").is_file()
    again = run(tmp_path, "init")
    assert again.returncode == 2 and "already exists" in one_error_line(again)


def test_missing_config(tmp_path: Path) -> None:
    result = run(tmp_path, "status")
    assert result.returncode == 2
    line = one_error_line(result)
    assert "schemashift.toml" in line and "schemashift init" in line


@pytest.mark.parametrize(
    ("text", "args", "needles"),
    [
        ("[env.local]\n[env.prod]\n", ("status", "--env", "staging"), ("unknown environment 'staging'", "local, prod")),
        ('models = "a:B"\n\n[env.local\n', ("status",), ("schemashift.toml:3:", "invalid TOML")),
        ('[env.local]\nurl = "sqlite://"\ncolor = 1\n', ("status",), ("schemashift.toml:3:", "'color'")),
        ('[env.a]\nextends = "b"\n[env.b]\nextends = "a"\n', ("status",), ("cycle in extends",)),
        ('[env.prod]\nurl = "${SS_CLI_UNDEFINED_VAR}"\n', ("--env", "prod", "status"),
         ("schemashift.toml:2:", "SS_CLI_UNDEFINED_VAR")),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, text: str, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    (tmp_path / "schemashift.toml").write_text(text)
    result = run(tmp_path, *args)
    assert result.returncode == 2
    line = one_error_line(result)
    for needle in needles:
        assert needle in line


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run(tmp_path).returncode == 2
    assert run(tmp_path, "frobnicate").returncode == 2
    result = run(tmp_path, "generate", "-m", "x", "--rename-table", "nocolon")
    assert result.returncode == 2 and "OLD:NEW" in result.stderr


# --------------------------------------------------------------------------- in-process parsing


def test_global_options_before_or_after_command() -> None:
    before = cli.parse_args(["--config", "c.toml", "--env", "prod", "--url", "sqlite://", "--debug", "status"])
    after = cli.parse_args(["status", "--config", "c.toml", "--env", "prod", "--url", "sqlite://", "--debug"])
    for args in (before, after):
        assert (args.command, args.config, args.env, args.url, args.debug) == (
            "status", "c.toml", "prod", "sqlite://", True)
    plain = cli.parse_args(["check"])
    assert (plain.config, plain.env, plain.url, plain.debug) == (None, None, None, False)
    mixed = cli.parse_args(["--env", "a", "backups", "prune", "--older-than", "30d", "--url", "sqlite://"])
    assert (mixed.env, mixed.url, mixed.backups_command, mixed.older_than) == ("a", "sqlite://", "prune", "30d")


def test_command_arguments() -> None:
    args = cli.parse_args(["generate", "-m", "rename", "--rename-table", "old:new", "--rename-column",
                           "app.users.name:full_name", "--rename-column", "t.a:b", "--no-rename"])
    assert args.rename_tables == [("old", "new")]
    assert args.rename_columns == [("app.users", "name", "full_name"), ("t", "a", "b")]
    assert args.no_rename and not args.empty
    up = cli.parse_args(["upgrade"])
    assert (up.target, up.sql, up.dry_run, up.yes, up.allow_data_loss) == ("head", False, False, False, False)
    down = cli.parse_args(["downgrade", "abc", "--sql", "--yes", "--allow-data-loss", "--dry-run"])
    assert (down.target, down.sql, down.dry_run, down.yes, down.allow_data_loss) == ("abc", True, True, True, True)
    assert cli.parse_args(["diff", "--against", "migrations", "--json"]).against == "migrations"
    assert cli.parse_args(["history", "--applied", "--json"]).applied
    assert cli.parse_args(["verify", "--accept"]).accept
    assert cli.main(["downgrade"]) == 2
    assert cli.main(["diff", "--against", "nowhere"]) == 2


@pytest.mark.parametrize(
    ("exc", "code", "prefix"),
    [
        (RevisionError("no revision 'x' (postgresql://u:pw_cli42@h/db)"), 2, "schemashift: error: "),
        (DifferencesFound("models differ"), 1, "schemashift: error: "),
        (RuntimeError("bad\nthing at postgresql://u:pw_cli43@h/db"), 3, "schemashift: internal error: RuntimeError: "),
        (KeyboardInterrupt(), 130, "schemashift: interrupted"),
    ],
)
def test_exit_codes_and_masking(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                exc: BaseException, code: int, prefix: str) -> None:
    def handler(args: object) -> int:
        raise exc

    monkeypatch.setitem(cli.HANDLERS, "check", handler)
    assert cli.main(["check"]) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(prefix)
    assert "pw_cli4" not in err
    assert cli.main(["check", "--debug"]) == code
    err = capsys.readouterr().err
    if code != 130:
        assert "Traceback" in err and "pw_cli4" not in err


@pytest.mark.parametrize("args", [["upgrade", "--frm", "x"], ["nosuch"], ["generate"], ["downgrade"]])
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str]) -> None:
    result = run(tmp_path, *args)
    assert result.returncode == 2
    assert "--help" in one_error_line(result)


def test_an_unusable_migrations_path_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("import sqlalchemy as sa\nBase = sa.MetaData()\n")
    (tmp_path / "schemashift.toml").write_text('models = "m:Base"\n[env.a]\nurl = "sqlite:///a.db"\n')
    (tmp_path / "migrations").write_text("not a folder")
    result = run(tmp_path, "generate", "--empty", "-m", "x", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2 and "migrations" in one_error_line(result)
