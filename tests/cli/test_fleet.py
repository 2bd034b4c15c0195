"""Tenant fleets end to end: one history, many tenants (PostgreSQL schemas, or databases of their own).

One project on a throw-away PostgreSQL database whose environment lists three
tenant schemas, one of which already holds a table the migrations create (so it
fails while the others are upgraded); the summary, `--json`, exit codes, a
re-run that continues, `--tenant`, `--parallel`, `status`/`diff`/`verify` on the
fleet, `tenants_query`, the Python API, and database-per-tenant on SQLite and
MariaDB. The tests of this module run in order, each on the state the last left.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import schemashift
from conftest import create_database, drop_database, require_backend
from helpers import cli, execute, run_in_pty, scalar, write_project
from schemashift import api
from schemashift import config as cfg
from schemashift.errors import ConfigError
from schemashift.services.fleet import FleetFailed

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Item(Base):
    __tablename__ = "item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
"""

TENANTS = ["acme", "globex", "initech"]


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away PostgreSQL database for the module."""
    require_backend("postgresql")
    name = f"ss_test_fleet_{uuid.uuid4().hex[:8]}"
    url = create_database("postgresql", name, tmp_path_factory.mktemp(name))
    yield url
    drop_database("postgresql", name)


@pytest.fixture(scope="module")
def project(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project: env `test` lists the tenants, env `bytable` reads them from a table."""
    directory = tmp_path_factory.mktemp("fleet")
    names = ", ".join(f'"{name}"' for name in TENANTS)
    write_project(directory, pg_url, MODELS, extra_config=f"tenants = [{names}]\n\n[env.bytable]\nurl = \"{pg_url}\"\n"
                  "tenants_query = \"SELECT schema_name FROM public.tenants ORDER BY 1\"\n")
    cli(directory, "generate", "-m", "items")
    return directory


def summary(result: object) -> dict[str, dict[str, object]]:
    """The --json summary's rows by tenant."""
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    return {row["tenant"]: row for row in data["results"]}


# -- configuration -------------------------------------------------------------------


def config_error(directory: Path, env_text: str) -> str:
    (directory / "schemashift.toml").write_text(f'models = "a:B"\n[env.x]\nurl = "sqlite://"\n{env_text}\n')
    with pytest.raises(ConfigError) as caught:
        cfg.load_config(directory / "schemashift.toml").env("x")
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_config_forms(tmp_path: Path) -> None:
    (tmp_path / "schemashift.toml").write_text(
        'models = "a:B"\n[env.names]\nurl = "postgresql://h/db"\ntenants = ["acme", "globex"]\n'
        '[env.dbs]\ntenants = [{ name = "a", url = "sqlite:///a.db" }, { name = "b", url = "sqlite:///b.db" }]\n'
        '[env.query]\nurl = "postgresql://h/db"\ntenants_query = "SELECT name FROM tenants"\n'
        '[env.code]\ntenants_from = "app.tenants:all_tenants"\n[env.child]\nextends = "names"\n')
    config = cfg.load_config(tmp_path / "schemashift.toml")
    assert [t.name for t in config.env("names").tenants] == ["acme", "globex"]
    assert config.env("names").tenants[0].url is None
    dbs = config.env("dbs").tenants
    assert [t.name for t in dbs] == ["a", "b"] and dbs[0].url == f"sqlite:///{tmp_path / 'a.db'}"
    assert config.env("query").tenants_query == "SELECT name FROM tenants"
    assert config.env("code").tenants_from == "app.tenants:all_tenants"
    assert [t.name for t in config.env("child").tenants] == ["acme", "globex"]


@pytest.mark.parametrize(("text", "expected"), [
    ('tenants = "acme"', "tenants must be a list"),
    ('tenants = ["acme", ""]', "non-empty name"),
    ('tenants = ["acme", "acme"]', "'acme' is listed twice"),
    ('tenants = [{ name = "a", host = "x" }]', "unknown key 'host' in a tenant"),
    ('tenants = [{ name = "a", url = 3 }]', "a tenant's url must be a string"),
    ('tenants = ["a"]\ntenants_query = "SELECT 1"', "set only one of tenants, tenants_query"),
    ('tenants_from = "nocolon"', "tenants_from must look like"),
    ('tenants_query = "  "', "tenants_query must be an SQL query"),
])
def test_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in config_error(tmp_path, text)


def test_unknown_tenant_and_bad_options_are_one_line_errors(project: Path) -> None:
    for args, expected in ((["status", "--tenant", "nope"], "unknown tenant 'nope'"),
                           (["upgrade", "--all-tenants", "--sql"], "not with --tenant or --all-tenants"),
                           (["status", "--parallel", "2"], "--parallel goes with"),
                           (["status", "--all-tenants", "--parallel", "0"], "at least 1")):
        result = cli(project, *args, check=False)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- a schema per tenant ---------------------------------------------------------------


def test_one_failing_tenant_does_not_stop_the_others(project: Path, pg_url: str) -> None:
    execute(pg_url, "CREATE SCHEMA initech", "CREATE TABLE initech.item (id integer)")
    result = cli(project, "upgrade", "--all-tenants", "--yes", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TENANT", "RESULT", "REVISION", "TIME", "DETAIL"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["acme"][1] == rows["globex"][1] == "ok" and rows["initech"][1] == "FAILED"
    assert "already holds 1 table(s)" in lines[3]
    assert "upgrade: 2 of 3 tenant(s) succeeded, 1 failed" in lines[-1]
    assert scalar(pg_url, "SELECT count(*) FROM acme.item") == 0
    assert scalar(pg_url, "SELECT count(*) FROM globex.schemashift_version") == 1
    assert scalar(pg_url, "SELECT to_regclass('initech.schemashift_version')") is None

    again = cli(project, "upgrade", "--all-tenants", "--yes", "--json", check=False)
    assert again.returncode == 2
    data = json.loads(again.stdout)
    assert (data["command"], data["tenants"], data["failed"], data["exit_code"]) == ("upgrade", 3, 1, 2)
    rows_json = summary(again)
    assert rows_json["acme"]["detail"] == "nothing to do" and rows_json["acme"]["revision"]
    assert rows_json["initech"]["ok"] is False and "baseline" in str(rows_json["initech"]["error"])
    assert {"duration_s", "revision", "error"} <= set(rows_json["globex"])
    quiet = cli(project, "upgrade", "--all-tenants", "--yes", "-q", check=False).stdout.splitlines()
    assert [line.split()[0] for line in quiet] == ["initech", "upgrade:"]


def test_progress_at_a_terminal(project: Path) -> None:
    code, shown = run_in_pty(project, ["status", "--all-tenants"])
    assert code == 2
    assert "[3/3] initech: FAILED" in shown and "status: 2 of 3 tenant(s) succeeded" in shown


def test_status_of_the_fleet_exits_0_only_when_all_at_head(project: Path) -> None:
    result = cli(project, "status", "--all-tenants", "--json", check=False)
    assert result.returncode == 2
    rows = summary(result)
    assert rows["acme"]["ok"] and rows["globex"]["ok"] and rows["acme"]["detail"] == "at head"
    assert not rows["initech"]["ok"]


def test_a_rerun_continues_where_the_fleet_stopped(project: Path, pg_url: str) -> None:
    execute(pg_url, "DROP TABLE initech.item")
    result = cli(project, "upgrade", "--all-tenants", "--yes", "--json")
    rows = summary(result)
    assert rows["acme"]["detail"] == rows["globex"]["detail"] == "nothing to do"
    assert str(rows["initech"]["detail"]).startswith("Database is at")
    assert cli(project, "status", "--all-tenants").returncode == 0


def test_one_tenant_then_parallel(project: Path, pg_url: str) -> None:
    down = cli(project, "downgrade", "base", "--tenant", "acme", "--yes")
    assert "downgrade: 1 of 1 tenant(s) succeeded" in down.stdout
    assert scalar(pg_url, "SELECT to_regclass('acme.item')") is None
    assert scalar(pg_url, "SELECT count(*) FROM globex.item") == 0
    status = cli(project, "status", "--all-tenants", "--json", check=False)
    assert status.returncode == 1 and summary(status)["acme"]["detail"] == "1 pending"
    assert cli(project, "status", "--tenant", "globex", "--tenant", "initech").returncode == 0
    assert cli(project, "verify", "--all-tenants").returncode == 0
    diff = cli(project, "diff", "--all-tenants", "--json", check=False)
    assert diff.returncode == 1
    rows = summary(diff)
    assert "create table item" in str(rows["acme"]["detail"]) and rows["globex"]["ok"]
    result = cli(project, "upgrade", "--all-tenants", "--parallel", "3", "--yes", "--json")
    rows = summary(result)
    assert [rows[name]["ok"] for name in TENANTS] == [True, True, True]
    assert str(rows["acme"]["detail"]).startswith("Database is at")
    assert cli(project, "status", "--all-tenants", "--parallel", "2").returncode == 0


# -- tenants from a query, and the Python API ----------------------------------------------------


def test_tenants_query_and_the_python_api(project: Path, pg_url: str) -> None:
    execute(pg_url, "CREATE TABLE public.tenants (schema_name text)",
            "INSERT INTO public.tenants VALUES ('hooli'), ('piedpiper')")
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        report = schemashift.upgrade(engine, config=str(project / "schemashift.toml"), env="bytable", tenants=True,
                                     out=lambda line: None)
        assert report is not None and [r.tenant for r in report.results] == ["hooli", "piedpiper"]
        assert report.exit_code == 0
        assert scalar(pg_url, "SELECT count(*) FROM piedpiper.item") == 0
        execute(pg_url, "CREATE SCHEMA umbrella", "CREATE TABLE umbrella.item (id integer)",
                "INSERT INTO public.tenants VALUES ('umbrella')")
        with pytest.raises(FleetFailed) as caught:
            schemashift.upgrade(engine, config=str(project / "schemashift.toml"), env="bytable", tenants="all",
                                out=lambda line: None)
        assert "1 of 3 tenant(s): umbrella" in str(caught.value)
        assert caught.value.report.failed[0].tenant == "umbrella"
    finally:
        engine.dispose()
    fleet_project = api.open_project(project / "schemashift.toml", env="bytable")
    assert [t.name for t in api.tenants(fleet_project)] == ["hooli", "piedpiper", "umbrella"]
    status = api.fleet_status(fleet_project, tenants=["hooli", "piedpiper"])
    assert status.exit_code == 0 and status.results[0].revision is not None
    assert api.fleet_verify(fleet_project, tenants=["hooli"]).exit_code == 0


# -- a database per tenant ------------------------------------------------------------------------


def test_database_per_tenant_sqlite_and_mariadb(tmp_path: Path) -> None:
    require_backend("mysql")
    name = f"ss_test_fleet_{uuid.uuid4().hex[:8]}"
    maria = create_database("mysql", name, tmp_path)
    try:
        write_project(tmp_path, "sqlite:///unused.db", MODELS,
                      extra_config=f'tenants = [{{ name = "lite", url = "sqlite:///lite.db" }}, '
                                   f'{{ name = "maria", url = "{maria}" }}]\n')
        cli(tmp_path, "generate", "-m", "items", "--url", "sqlite:///gen.db")
        result = cli(tmp_path, "upgrade", "--all-tenants", "--yes", "--json")
        rows = summary(result)
        assert rows["lite"]["ok"] and rows["maria"]["ok"] and rows["lite"]["revision"] == rows["maria"]["revision"]
        assert scalar(f"sqlite:///{tmp_path / 'lite.db'}", "SELECT count(*) FROM item") == 0
        assert scalar(maria, "SELECT count(*) FROM item") == 0
        assert cli(tmp_path, "status", "--all-tenants").returncode == 0
        again = summary(cli(tmp_path, "upgrade", "--all-tenants", "--yes", "--json"))
        assert str(again["maria"]["detail"]).startswith("Nothing to do")
        down = cli(tmp_path, "downgrade", "base", "--tenant", "maria", "--yes")
        assert "1 of 1" in down.stdout
        assert cli(tmp_path, "status", "--all-tenants", check=False).returncode == 1
    finally:
        drop_database("mysql", name)
