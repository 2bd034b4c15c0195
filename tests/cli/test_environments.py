"""Environments end to end: one migration history, many databases (SQLite, PostgreSQL, MariaDB).

One project whose environments point at real databases: `extends` chains, a
`.env` file, vars read by a data migration, an environment left behind, one
that drifts, one that is unreachable and one with an unset variable. `envs`
(table and JSON) must report each correctly; `confirm` environments are driven
through a real pseudo-terminal; no command may ever print the URL password.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from conftest import create_database, drop_database, require_backend, server_error
from helpers import cli, execute, fetch_rows, run_in_pty, scalar, write_project

from schemashift import api
from schemashift.dialects import get_dialect

PASSWORD = "Zq7-h6-Sekr1t"
VERSION_TABLES = {"schemashift_version", "schemashift_version_history"}

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Item(Base):
    __tablename__ = "item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    region: Mapped[str | None] = mapped_column(sa.String(20))
    tier: Mapped[str | None] = mapped_column(sa.String(20))
"""

SEED = '''"""Seed one row from the environment's vars."""
from schemashift.migration import *  # noqa: F401,F403

revision = "seed0002"
parent = {parent!r}
message = "seed from vars"


def seed(ctx):
    ctx.execute("INSERT INTO item (name, region, tier) VALUES (:n, :r, :t)",
                {{"n": ctx.env, "r": ctx.vars["region"], "t": ctx.vars["tier"]}})


def unseed(ctx):
    ctx.execute("DELETE FROM item WHERE name = :n", {{"n": ctx.env}})


operations = [RunPython(seed, reverse=unseed)]
'''

CONFIG = """\
models = "app.models:Base"
migrations = "migrations"
default_env = "local"

[env.base]
url = "${{SS_H6_BASE_URL:-sqlite:///base.db}}"
statement_timeout = 30
vars = {{ region = "eu", tier = "gold" }}

[env.local]
url = "sqlite:///${{SS_H6_LOCAL_DB}}"
vars = {{ region = "local", tier = "dev" }}

[env.drifted]
extends = "local"
url = "sqlite:///drifted.db"

[env.behind]
extends = "local"
url = "sqlite:///behind.db"

[env.guarded]
extends = "local"
url = "sqlite:///${{SS_H6_GUARD_DB:-guarded.db}}"
confirm = true

[env.down]
extends = "base"
url = "postgresql+psycopg://app:{password}@127.0.0.1:1/nowhere"

[env.unset]
url = "${{SS_H6_NEVER_SET}}"
{servers}"""


# --------------------------------------------------------------------------- helpers


def run(directory: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`helpers.cli`, asserting that the password appears in neither stdout nor stderr."""
    result = cli(directory, *args, check=check, env=env, input=input)
    assert PASSWORD not in result.stdout + result.stderr, (args, result.stdout, result.stderr)
    return result


def envs_json(directory: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`schemashift envs --json`, by environment name."""
    return {row["name"]: row for row in json.loads(run(directory, "envs", "--json", env=env).stdout)}


def with_password(url: str) -> str:
    """`url` carrying PASSWORD (trust auth ignores it) unless it already has one of its own."""
    parsed = sa.make_url(url)
    if parsed.password:
        return url
    return parsed.set(password=PASSWORD).render_as_string(hide_password=False)


def live_shape(url: str) -> dict[str, Any]:
    """Tables, columns (name, kind, length, nullable) and primary keys of the database, normalised."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            dialect = get_dialect(connection.dialect.name)
            schema = dialect.normalize(dialect.reflect(connection, exclude=VERSION_TABLES))
    finally:
        engine.dispose()
    return {
        key: ([(c.name, c.type.kind, c.type.length, c.nullable) for c in table.columns],
              table.primary_key.columns if table.primary_key else None)
        for key, table in sorted(schema.tables.items())
    }


def sqlite_url(directory: Path, name: str) -> str:
    return f"sqlite:///{directory / name}"


def table_count(url: str) -> int:
    """How many tables an SQLite database holds (0 when the file does not exist)."""
    path = Path(sa.make_url(url).database or "")
    return int(scalar(url, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_schemashift\\_%' ESCAPE '\\'")) if path.exists() else 0


def make_migrations(directory: Path) -> tuple[str, str]:
    """Generate the first migration from MODELS, add the hand-written data migration; their revisions."""
    run(directory, "generate", "-m", "create item")
    rev1 = api.open_project(directory / "schemashift.toml").history().head
    assert rev1 is not None
    (directory / "migrations" / "0002_seed.py").write_text(SEED.format(parent=rev1))
    return rev1, "seed0002"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Fresh databases on the reachable servers: {"pg": url, "maria": url}."""
    made: dict[str, str] = {}
    names: list[tuple[str, str]] = []
    tmp = tmp_path_factory.mktemp("h6servers")
    for env_name, backend in (("pg", "postgresql"), ("maria", "mysql")):
        if server_error(backend) is None:
            name = f"ss_envs_{backend[:5]}_{os.urandom(4).hex()}"
            made[env_name] = create_database(backend, name, tmp)
            names.append((backend, name))
    yield made
    for backend, name in names:
        drop_database(backend, name)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, servers: dict[str, str]) -> Path:
    """The project: config with every environment, a `.env`, two migrations."""
    directory = write_project(tmp_path_factory.mktemp("h6proj"), "sqlite:///gen.db", MODELS)
    dotenv = ["# read by schemashift", "SS_H6_LOCAL_DB=local.db"]
    extra = ""
    if "pg" in servers:
        dotenv.append(f"export SS_H6_PG_URL='{with_password(servers['pg'])}'")
        extra += '\n[env.pg]\nextends = "base"\nurl = "${SS_H6_PG_URL}"\n'
    if "maria" in servers:
        extra += f'\n[env.maria]\nextends = "base"\nurl = "{servers["maria"]}"\nvars = {{ region = "us-east" }}\n'
    (directory / ".env").write_text("\n".join(dotenv) + "\n")
    (directory / "schemashift.toml").write_text(CONFIG.format(password=PASSWORD, servers=extra))
    return directory


@pytest.fixture(scope="module")
def revisions(project: Path) -> tuple[str, str]:
    return make_migrations(project)


@pytest.fixture(scope="module")
def upgraded(project: Path, revisions: tuple[str, str], servers: dict[str, str]) -> list[str]:
    """Every full environment at head, `behind` at the first revision, `drifted` changed by hand."""
    full = ["local", "drifted", *servers]
    for name in full:
        result = run(project, "upgrade", "--env", name)
        assert "Database is at seed0002" in result.stdout, result.stdout
    run(project, "upgrade", revisions[0], "--env", "behind")
    execute(sqlite_url(project, "drifted.db"), "ALTER TABLE item ADD COLUMN extra INTEGER")
    return full


def env_url(project: Path, servers: dict[str, str], name: str) -> str:
    if name in servers:
        return servers[name]
    return sqlite_url(project, {"local": "local.db"}.get(name, f"{name}.db"))


# --------------------------------------------------------------------------- the same schema everywhere


def test_same_migrations_give_every_database_the_same_schema(
    project: Path, servers: dict[str, str], upgraded: list[str]
) -> None:
    shapes = {name: live_shape(env_url(project, servers, name)) for name in ("local", *servers)}
    assert list(shapes["local"]) == ["item"]
    for name, shape in shapes.items():
        assert shape == shapes["local"], name
        result = run(project, "diff", "--against", "migrations", "--env", name, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_vars_and_extends_reach_data_migrations(project: Path, servers: dict[str, str], upgraded: list[str]) -> None:
    expected = {"local": ("local", "dev"), "drifted": ("local", "dev"), "pg": ("eu", "gold"),
                "maria": ("us-east", "gold")}
    for name in upgraded:
        url = env_url(project, servers, name)
        assert scalar(url, f"SELECT region FROM item WHERE name = '{name}'") == expected[name][0]
        assert scalar(url, f"SELECT tier FROM item WHERE name = '{name}'") == expected[name][1]
    assert scalar(sqlite_url(project, "behind.db"), "SELECT count(*) FROM item") == 0


# --------------------------------------------------------------------------- envs


def test_envs_json_reports_each_environment(project: Path, revisions: tuple[str, str], servers: dict[str, str],
                                            upgraded: list[str]) -> None:
    rows = envs_json(project)
    assert list(rows) == ["base", "local", "drifted", "behind", "guarded", "down", "unset", *servers]
    assert [name for name, row in rows.items() if row["selected"]] == ["local"]
    for name in ("local", *servers):
        row = rows[name]
        assert (row["reachable"], row["error"], row["current"], row["pending"], row["drift"]) == (
            True, None, "seed0002", 0, False), row
        assert row["head"] == "seed0002"
    assert rows["local"]["url"] == sqlite_url(project, "local.db")
    behind = rows["behind"]
    assert (behind["reachable"], behind["current"], behind["pending"], behind["drift"]) == (True, revisions[0], 1, False)
    assert (rows["drifted"]["current"], rows["drifted"]["pending"], rows["drifted"]["drift"]) == ("seed0002", 0, True)
    down = rows["down"]
    assert down["reachable"] is False and down["current"] is None and down["pending"] is None
    assert "cannot connect" in down["error"]
    assert down["url"] == "postgresql+psycopg://app:***@127.0.0.1:1/nowhere"
    unset = rows["unset"]
    assert unset["reachable"] is None and unset["url"] is None
    assert "SS_H6_NEVER_SET" in unset["error"] and "schemashift.toml" in unset["error"]
    if "pg" in servers:
        assert ":***@" in rows["pg"]["url"] and rows["pg"]["url"].endswith(sa.make_url(servers["pg"]).database)


def test_envs_table(project: Path, servers: dict[str, str], upgraded: list[str]) -> None:
    lines = run(project, "envs").stdout.splitlines()
    assert lines[0].split() == ["ENV", "URL", "REVISION", "PENDING", "DRIFT", "NOTE"]
    by_name = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in lines[1:]}
    assert by_name["local"].startswith("* local")
    assert by_name["local"].split()[3:7] == ["seed0002", "0", "no", "up"]
    assert by_name["behind"].split()[-3:] == ["1", "no", "behind"]
    assert "DRIFT" in by_name["drifted"]
    assert "unreachable: cannot connect" in by_name["down"] and "app:***@" in by_name["down"]
    assert "SS_H6_NEVER_SET" in by_name["unset"]
    for name in servers:
        assert by_name[name].split()[2:5] == ["seed0002", "0", "no"], by_name[name]
    selected = run(project, "envs", "--env", "behind").stdout
    assert "* behind" in selected and "* local" not in selected
    unknown = run(project, "envs", "--env", "nope", check=False)
    assert unknown.returncode == 2 and "unknown environment 'nope'" in unknown.stderr


def test_dotenv_values_lose_to_the_process_environment(project: Path, upgraded: list[str]) -> None:
    rows = envs_json(project, env={"SS_H6_LOCAL_DB": "elsewhere.db"})
    assert rows["local"]["url"] == sqlite_url(project, "elsewhere.db")
    assert (rows["local"]["current"], rows["local"]["pending"]) == (None, 2)
    assert envs_json(project)["local"]["current"] == "seed0002"


def test_password_never_printed(project: Path, servers: dict[str, str], upgraded: list[str]) -> None:
    failed = run(project, "upgrade", "--env", "down", check=False)
    assert failed.returncode != 0 and "cannot connect" in failed.stderr and "***" in failed.stderr
    debug = run(project, "status", "--env", "down", "--debug", check=False)
    assert debug.returncode != 0
    if "pg" in servers:
        assert "Pending: 0" in run(project, "status", "--env", "pg").stdout
        run(project, "history", "--applied", "--env", "pg")
        run(project, "upgrade", "--env", "pg", "--dry-run")
        run(project, "upgrade", "--env", "pg", "--sql", check=False)


# --------------------------------------------------------------------------- per-environment settings


def test_statement_timeout_applied_on_connect(project: Path, servers: dict[str, str]) -> None:
    if not servers:
        pytest.skip("no PostgreSQL or MariaDB server")
    config = project / "schemashift.toml"
    if "pg" in servers:
        with api.open_project(config, "pg").connect() as connection:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "30s"
    if "maria" in servers:
        with api.open_project(config, "maria").connect() as connection:
            assert float(connection.exec_driver_sql("SELECT @@max_statement_time").scalar()) == 30.0
    with api.open_project(config, "local").connect() as connection:  # SQLite: ignored, no error
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1


def test_schema_setting_on_postgresql(tmp_path: Path) -> None:
    require_backend("postgresql")
    name = f"ss_envs_schema_{os.urandom(4).hex()}"
    url = create_database("postgresql", name, tmp_path)
    try:
        directory = write_project(tmp_path / "proj", url, MODELS, extra_config="""
            schema = "tenant_a"
            vars = { region = "r", tier = "t" }
            """)
        make_migrations(directory)
        before = envs_json(directory)["test"]  # the schema does not exist yet: nothing applied, no drift
        assert (before["reachable"], before["current"], before["pending"], before["drift"]) == (True, None, 2, False)
        assert "Database is at seed0002" in run(directory, "upgrade").stdout
        tables = {row for (row,) in fetch_rows(url, "SELECT table_name FROM information_schema.tables "
                                                "WHERE table_schema = 'tenant_a'")}
        assert tables == {"item", *VERSION_TABLES}
        assert fetch_rows(url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") == [(0,)]
        assert "Live schema matches the migrations." in run(directory, "status").stdout
        assert run(directory, "diff", "--against", "migrations", check=False).returncode == 0
        row = envs_json(directory)["test"]
        assert (row["current"], row["pending"], row["drift"]) == ("seed0002", 0, False)
        run(directory, "downgrade", "base")
        assert scalar(url, "SELECT count(*) FROM tenant_a.schemashift_version") == 0
    finally:
        drop_database("postgresql", name)


def test_schema_setting_refused_on_sqlite(tmp_path: Path) -> None:
    directory = write_project(tmp_path, "sqlite:///app.db", MODELS, extra_config='schema = "tenant_a"\n')
    result = run(directory, "status", check=False)
    assert result.returncode == 2 and "`schema` is a PostgreSQL setting" in result.stderr


# --------------------------------------------------------------------------- confirm = true


@pytest.fixture
def guarded(project: Path, revisions: tuple[str, str], request: pytest.FixtureRequest) -> tuple[dict[str, str], str]:
    """An environment override giving `guarded` its own fresh SQLite file; (env vars, its URL)."""
    filename = f"guarded_{request.node.name}.db"
    return {"SS_H6_GUARD_DB": filename}, sqlite_url(project, filename)


def test_confirm_prompt_answered_no_leaves_database_untouched(project: Path, guarded: tuple[dict[str, str], str]) -> None:
    env, url = guarded
    code, shown = run_in_pty(project, ["upgrade", "--env", "guarded"], env=env, answer="n")
    assert "Upgrade to seed0002 (2 migrations) on environment 'guarded' (sqlite:///" in shown and "? [y/N]" in shown
    assert code == 2 and "aborted: not confirmed" in shown, shown
    assert PASSWORD not in shown
    assert table_count(url) == 0


def test_confirm_prompt_at_end_of_input_aborts_cleanly(project: Path, guarded: tuple[dict[str, str], str]) -> None:
    """Ctrl-D at the prompt is a "no": exit 2, no traceback, nothing changed."""
    env, url = guarded
    code, shown = run_in_pty(project, ["upgrade", "--env", "guarded"], env=env, answer="\x04")
    assert code == 2 and "aborted: not confirmed" in shown and "Traceback" not in shown, shown
    assert table_count(url) == 0


def test_confirm_prompt_answered_yes_migrates(project: Path, guarded: tuple[dict[str, str], str]) -> None:
    env, url = guarded
    code, shown = run_in_pty(project, ["upgrade", "--env", "guarded"], env=env, answer="y")
    assert code == 0 and "Database is at seed0002" in shown, shown
    assert PASSWORD not in shown
    assert scalar(url, "SELECT region FROM item WHERE name = 'guarded'") == "local"


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_confirm_prompt_names_the_server_database_masked(project: Path, revisions: tuple[str, str], backend: str,
                                                         tmp_path: Path) -> None:
    """On a server the prompt shows the URL with its password masked and how many migrations would run."""
    require_backend(backend)
    name = f"ss_confirm_{backend[:5]}_{os.urandom(4).hex()}"
    url = create_database(backend, name, tmp_path)
    try:
        url = with_password(url) if backend == "postgresql" else url  # MariaDB's root has no password
        guarded = write_project(tmp_path / "guarded", url, MODELS, extra_config="confirm = true\n")
        for path in (project / "migrations").glob("*.py"):
            (guarded / "migrations" / path.name).write_bytes(path.read_bytes())
        code, shown = run_in_pty(guarded, ["upgrade", revisions[0]], answer="n")
        assert code == 2 and "aborted: not confirmed" in shown, shown
        masked = sa.make_url(url).render_as_string(hide_password=True)
        assert f"Upgrade to {revisions[0]} (1 migration) on environment 'test' ({masked})? [y/N]" in shown, shown
        assert PASSWORD not in shown
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            assert not sa.inspect(engine).has_table("item")
        finally:
            engine.dispose()
    finally:
        drop_database(backend, name)


def test_confirm_with_stdin_closed_is_a_refusal(project: Path, guarded: tuple[dict[str, str], str]) -> None:
    """A closed stdin (``<&-``) cannot answer: exit 2 asking for --yes, no traceback, nothing changed."""
    env, url = guarded
    environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env}
    environ.pop("SCHEMASHIFT_ENV", None)
    refused = subprocess.run(["sh", "-c", 'exec "$0" -m schemashift upgrade --env guarded <&-', sys.executable],
                             cwd=project, env=environ, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2, refused.stderr
    assert "requires confirmation: pass --yes to upgrade to seed0002 (2 migrations)" in refused.stderr
    assert "Traceback" not in refused.stderr and "internal error" not in refused.stderr
    assert table_count(url) == 0


def test_confirm_refuses_without_a_terminal(project: Path, guarded: tuple[dict[str, str], str]) -> None:
    env, url = guarded
    refused = run(project, "upgrade", "--env", "guarded", check=False, env=env, input="y\n")
    assert refused.returncode == 2
    assert "requires confirmation: pass --yes" in refused.stderr and "Traceback" not in refused.stderr
    assert table_count(url) == 0
    run(project, "upgrade", "--env", "guarded", "--yes", env=env)
    assert scalar(url, "SELECT count(*) FROM item") == 1
    again = run(project, "downgrade", "base", "--env", "guarded", check=False, env=env)
    assert again.returncode == 2 and scalar(url, "SELECT count(*) FROM item") == 1
    run(project, "downgrade", "base", "--env", "guarded", "--yes", env=env)
    assert table_count(url) == 2  # the version tables stay
