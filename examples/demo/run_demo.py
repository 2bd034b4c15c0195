"""The schemashift demo: one project, models in three versions, end to end on SQLite.

Run it with `make demo`. It works in ./demo-run (recreated each time; $SCHEMASHIFT_DEMO_DIR
elsewhere) and shows every command it runs with its real output, as a line to copy and paste.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("SCHEMASHIFT_DEMO_DIR") or HERE.parent.parent / "demo-run")


def say(text: str) -> None:
    """Narrate a step."""
    print("\n" + textwrap.fill(text, 100), flush=True)


def run(*args: str, expect: int = 0) -> None:
    """Run one schemashift command in the demo project and show it."""
    print(f"\n$ schemashift {shlex.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "schemashift", *args], cwd=WORK, text=True, capture_output=True)
    for line in (result.stdout + result.stderr).rstrip().splitlines():
        print(f"  {line}")
    if result.returncode != expect:
        sys.exit(f"demo failed: `schemashift {' '.join(args)}` exited {result.returncode}, expected {expect}")


def use_models(version: int) -> None:
    """Put models_v<version>.py in place as app/models.py."""
    shutil.copy(HERE / f"models_v{version}.py", WORK / "app" / "models.py")
    shutil.rmtree(WORK / "app" / "__pycache__", ignore_errors=True)


def sql(query: str, *params: object) -> list[tuple]:
    """Query the demo database directly."""
    with sqlite3.connect(WORK / "app.db") as conn:
        rows = conn.execute(query, params).fetchall()
    conn.close()
    return rows


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "app").mkdir(parents=True)
    (WORK / "app" / "__init__.py").write_text("")
    say(f"A fresh project in {WORK}. `init` writes schemashift.toml and the migrations folder.")
    run("init", "--models", "app.models:Base", "--url", "sqlite:///app.db")
    print(textwrap.indent((WORK / "schemashift.toml").read_text(), "  | "))

    say("Version 1 of the models: one `author` table. `generate` diffs the models against what the "
        "migrations already build (no database needed) and writes a migration file.")
    use_models(1)
    run("generate", "-m", "create authors")
    run("generate", "-m", "nothing new")
    run("upgrade")
    sql("INSERT INTO author (name, born) VALUES ('Ada Lovelace', 1815), ('Alan Turing', 1912)")
    say("Two authors inserted.")

    say("Version 2: a `book` table with a foreign key, `author.name` widened to 120 characters and "
        "indexed, a unique `email`. `check` (for CI) notices the models moved on.")
    use_models(2)
    run("check", expect=1)
    run("generate", "-m", "books and emails")
    run("upgrade", "--dry-run")
    run("upgrade")
    run("diff")
    sql("INSERT INTO book (title, author_id) VALUES ('Sketch of the Analytical Engine', 1)")

    say("Version 3 renames `author.name` to `full_name` (declared on the model with "
        "info={'renamed_from': 'name'}), so the data moves with it instead of being dropped.")
    use_models(3)
    run("generate", "-m", "rename name, pages")
    run("upgrade")
    print("  rows:", sql("SELECT full_name, born FROM author ORDER BY id"))
    run("status")
    run("history")

    say("Rolling back one revision: the down steps are derived from the operations themselves.")
    run("downgrade", "-1")
    print("  rows:", sql("SELECT name, born FROM author ORDER BY id"))
    run("upgrade", "head", "--sql")
    run("upgrade")
    run("status")
    say("Done: three model versions, generated, applied, rolled back and re-applied on SQLite.")


if __name__ == "__main__":
    main()
