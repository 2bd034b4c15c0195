"""The README's quick start is two commands, and the demo's printed commands work when copied.

The demo runs end to end (in a scratch folder); every ``$ schemashift …`` line it
prints is split as a shell would split it and must give exactly the arguments the
demo ran, which the CLI's parser accepts.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from schemashift import cli

ROOT = Path(__file__).resolve().parents[2]


def test_quick_start_is_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quick start"):readme.index("\n## ", readme.index("## Quick start") + 1)]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]


def test_demo_runs_and_its_commands_copy_paste(tmp_path: Path) -> None:
    demo = subprocess.run([sys.executable, str(ROOT / "examples" / "demo" / "run_demo.py")], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "SCHEMASHIFT_DEMO_DIR": str(tmp_path / "demo")})
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr
    shown = [line[len("$ "):] for line in demo.stdout.splitlines() if line.startswith("$ schemashift ")]
    assert len(shown) >= 10
    for line in shown:
        argv = shlex.split(line)[1:]
        assert all(" " not in arg or f"'{arg}'" in line or f'"{arg}"' in line for arg in argv), line
        cli.parse_args(argv)  # SystemExit on a usage error
    assert "generate -m 'create authors'" in demo.stdout
