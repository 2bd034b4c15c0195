"""The framework recipes under examples/recipes, end to end on SQLite and PostgreSQL.

Each recipe folder is copied, its first migration generated with the CLI, then the
application is started twice in a fresh process (FastAPI's TestClient runs the
lifespan; Flask's factory runs at creation): the first start migrates, a note is
written and read back through the app, the second start finds the database at head.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from conftest import create_database, drop_database, require_backend
from helpers import cli

RECIPES = Path(__file__).resolve().parents[2] / "examples" / "recipes"

STARLETTE = '''
from fastapi.testclient import TestClient
import app as module
with TestClient(module.app) as client:
    assert client.post("/notes", params={"text": "hello"}).status_code == 200
    print("NOTES", client.get("/notes").json())
'''
FLASK = '''
import app as module
client = module.create_app().test_client()
assert client.post("/notes", query_string={"text": "hello"}).status_code == 200
print("NOTES", client.get("/notes").get_json())
'''
CASES = {"fastapi_async": ("fastapi", STARLETTE, "sqlite+aiosqlite", "postgresql+asyncpg"),
         "flask_sqlalchemy": ("flask_sqlalchemy", FLASK, "sqlite", "postgresql+psycopg"),
         "sqlmodel_app": ("sqlmodel", STARLETTE, "sqlite", "postgresql+psycopg")}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(backend, URL of a fresh database)."""
    name = f"ss_recipes_{os.getpid()}_{abs(hash(request.node.name)) % 10**8}"
    if request.param != "sqlite":
        require_backend(request.param)
    url = create_database(request.param, name, tmp_path)
    yield request.param, url
    drop_database(request.param, name)


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_recipe_end_to_end(recipe: str, database: tuple[str, str], tmp_path: Path) -> None:
    needs, client, sqlite_driver, pg_driver = CASES[recipe]
    pytest.importorskip(needs)
    backend, url = database
    driver = sqlite_driver if backend == "sqlite" else pg_driver
    url = sa.make_url(url).set(drivername=driver).render_as_string(hide_password=False)
    folder = tmp_path / recipe
    shutil.copytree(RECIPES / recipe, folder, ignore=shutil.ignore_patterns("migrations", "*.db", "__pycache__"))
    env = {"DATABASE_URL": url}
    cli(folder, "generate", "-m", "initial", env=env)
    for start in (1, 2):
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(client)], cwd=folder, capture_output=True,
                                text=True, env={**os.environ, **env, "PYTHONPATH": str(folder)}, timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"NOTES {['hello'] * start}".replace("'", '"') in result.stdout.replace("'", '"'), result.stdout
    status = cli(folder, "status", env=env)
    assert "Pending: 0" in status.stdout
