"""Credentials are never printed: every output path is grepped for a known password.

A PostgreSQL role and a MariaDB user are created with a password full of URL
special characters (so it appears percent-encoded in URLs). With URLs carrying
it — or a wrong one — through `--url`, the config file and a ``${VAR}`` in it,
the test collects everything schemashift writes: error messages (bad password,
unreachable host, unparsable URLs, a missing driver), ``--debug`` tracebacks,
``status``/``status --json``, ``envs --json``, ``history --applied --json``,
``upgrade --sql`` and ``--dry-run``, the log records of a Python-API run, the
tracebacks a Python caller would log, and the error columns of the version and
history tables after a migration whose error quotes the URL. Neither the
password nor its encoded form may appear anywhere.

Remembered secrets are process-wide, so each test starts with none remembered.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import subprocess
import sys
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa

import schemashift
from conftest import SERVER_URLS, create_database, drop_database
from schemashift import cli, errors
from schemashift.migration import AddColumn, Column, CreateTable, PrimaryKey, Table, Type
from schemashift.history.writer import write_migration



def _word() -> str:
    """Five random letters no hex id, checksum or SQL keyword is made of."""
    return "".join(random.choice("ghjkmnpqrstvwxyz") for _ in range(5))


#: Passwords whose every piece between URL special characters is a random word: finding any piece in an
#: output means (part of) a password leaked, even when masking cut the password at one of its '@'.
PASSWORD = f"{_word()}@{_word()}:{_word()}/{_word()}%{_word()}"
WRONG = f"{_word()}@{_word()}"
PIECES = tuple(re.split(r"[@:/%]", PASSWORD + "@" + WRONG))


def assert_clean(text: str, where: str) -> None:
    """No piece of either password, raw or percent-encoded, appears in `text`."""
    for piece in PIECES:
        assert piece not in text, f"password piece {piece!r} leaked in {where}:\n{text}"


@pytest.fixture(autouse=True)
def forget_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test with no remembered secrets, so each path must mask on its own."""
    monkeypatch.setattr(errors, "_known_secrets", set())
    monkeypatch.delenv("SCHEMASHIFT_ENV", raising=False)


@dataclass
class Account:
    """A database and a login with PASSWORD on `backend`."""

    backend: str
    user: str
    database: str

    def url(self, password: str = PASSWORD, *, port: int | None = None) -> str:
        server = sa.make_url(SERVER_URLS[self.backend])
        host = f"{server.host}:{port or server.port}"
        return f"{server.drivername}://{self.user}:{quote(password, safe='')}@{host}/{self.database}"


def _admin(backend: str, database: str | None = None) -> sa.Engine:
    url = sa.make_url(SERVER_URLS[backend])
    return sa.create_engine(url.set(database=database) if database else url, isolation_level="AUTOCOMMIT",
                            poolclass=sa.pool.NullPool)


@pytest.fixture(scope="module")
def account(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    """A fresh database owned by a fresh login whose password is PASSWORD (PostgreSQL, MariaDB)."""
    if backend == "sqlite":
        pytest.skip("SQLite URLs carry no password")
    suffix = uuid.uuid4().hex[:8]
    user, database = f"ss_secret_{suffix}", f"ss_secrets_{suffix}"
    create_database(backend, database, tmp_path_factory.mktemp("secrets"))
    admin = _admin(backend)
    literal = PASSWORD.replace("'", "''").replace("%", "%%")  # the drivers format even parameterless SQL
    with admin.connect() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql(f"CREATE ROLE {user} LOGIN PASSWORD '{literal}'")
            conn.exec_driver_sql(f"ALTER DATABASE {database} OWNER TO {user}")
        else:
            conn.exec_driver_sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{literal}'")
            conn.exec_driver_sql(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{literal}'")
            conn.exec_driver_sql(f"GRANT ALL ON {database}.* TO '{user}'@'127.0.0.1', '{user}'@'localhost'")
    yield Account(backend, user, database)
    drop_database(backend, database)
    with admin.connect() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {user}")
        else:
            conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'127.0.0.1', '{user}'@'localhost'")
    admin.dispose()


FAILING = '''"""fails, quoting its URL."""
import os

from schemashift.migration import *  # noqa: F401,F403

revision = "{revision}"
parent = "{parent}"
message = "fails"


def boom(ctx):
    raise RuntimeError("cannot reach " + os.environ["SS_TEST_SECRET_URL"] + " as " + os.environ["SS_TEST_SECRET"])


operations = [RunPython(boom)]
'''


def write_project(directory: Path, url: str, *, failing: bool = False) -> Path:
    """Two good migrations (and optionally a third that fails quoting the URL); the env's URL is `url`."""
    folder = directory / "migrations"
    if not folder.exists():
        key = Column("id", Type("integer"), nullable=False, autoincrement=True)
        label = Column("label", Type("string", length=40))
        vault = Table("vault", columns=(key, label), primary_key=PrimaryKey(("id",)))
        first = write_migration(folder, "create vault", [CreateTable(vault)], None)
        second = write_migration(folder, "add note", [AddColumn("vault", Column("note", Type("text")))], first.revision)
        if failing:
            (folder / "0003_fails.py").write_text(FAILING.format(revision="f00dfeed0003", parent=second.revision))
    config = directory / "schemashift.toml"
    config.write_text(
        'migrations = "migrations"\ndefault_env = "prod"\n\n'
        f'[env.prod]\nurl = "{url}"\n\n'
        '[env.fromvar]\nurl = "${SS_TEST_SECRET_URL}"\n\n'
        '[env.down]\nurl = "${SS_TEST_DOWN_URL}"\n'
    )
    return config


class Run:
    """In-process CLI runs whose stdout and stderr are all kept for grepping."""

    def __init__(self, capsys: pytest.CaptureFixture[str], config: Path) -> None:
        self.capsys = capsys
        self.config = config
        self.seen: list[str] = []

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        self.seen.append(f"$ schemashift {' '.join(args)}\n{out}{err}")
        assert_clean(out + err, f"`schemashift {' '.join(args)}`")
        return code, out, err


# -- connection failures and unparsable URLs -----------------------------------------


def test_wrong_password_is_masked(account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if account.backend == "postgresql" and _trusts_everyone():
        pytest.skip("the PostgreSQL server trusts every connection from 127.0.0.1: no password is checked")
    config = write_project(tmp_path, account.url(WRONG))
    run = Run(capsys, config)
    for args in (["status"], ["status", "--json"], ["upgrade", "--debug"], ["history", "--applied", "--json"],
                 ["--url", account.url(WRONG), "upgrade", "--dry-run"]):
        code, _, err = run(*args)
        assert code == 2 and "cannot connect" in err and "***" in err, err
    monkeypatch.setenv("SS_TEST_SECRET_URL", account.url(WRONG))
    code, _, err = run("--env", "fromvar", "upgrade", "--sql", "--debug")
    assert code == 2 and "Traceback" in err, err


def _trusts_everyone() -> bool:
    """True when PostgreSQL accepts any password (trust authentication for TCP from localhost)."""
    probe = sa.make_url(SERVER_URLS["postgresql"]).set(username="postgres", password=WRONG)
    try:
        with sa.create_engine(probe, poolclass=sa.pool.NullPool).connect():
            return True
    except sa.exc.OperationalError:
        return False


def test_unreachable_host_is_masked(account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    down = account.url(port=1)  # nothing listens on port 1
    config = write_project(tmp_path, down)
    monkeypatch.setenv("SS_TEST_DOWN_URL", down)
    run = Run(capsys, config)
    for args in (["status"], ["upgrade", "--debug"], ["--env", "down", "verify", "--debug"],
                 ["--url", down, "diff", "--json"]):
        code, _, err = run(*args)
        assert code == 2 and "cannot connect" in err, err
    code, out, _ = run("envs", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["prod"]["reachable"] is False and "***" in rows["prod"]["url"]
    code, out, _ = run("envs")
    assert "prod" in out


@pytest.mark.parametrize("template", [
    "postgresql+psycopg://ss_user:{password}@127.0.0.1:notaport/db",
    "mysql+pymysql://ss_user:{password}@[::1/db",
    "nosuchdatabase://ss_user:{password}@127.0.0.1/db",
    "postgresql+nosuchdriver://ss_user:{password}@127.0.0.1/db",
    "ss_user:{password}@127.0.0.1/db",
])
@pytest.mark.parametrize("encoded", [True, False], ids=["encoded", "raw"])
def test_unparsable_url_is_masked(template: str, encoded: bool, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = template.format(password=quote(PASSWORD, safe="") if encoded else PASSWORD)
    config = write_project(tmp_path, "sqlite:///unused.db")
    run = Run(capsys, config)
    for args in (["--url", url, "status"], ["--url", url, "upgrade", "--debug"], ["--url", url, "envs", "--json"]):
        code, out, err = run(*args)
        assert code in (0, 2), (code, err)
    config.write_text(config.read_text().replace("sqlite:///unused.db", url.replace("\\", "\\\\")))
    for args in (["status", "--json"], ["envs", "--json"], ["upgrade", "--sql", "--debug"]):
        run(*args)
    with pytest.raises(Exception) as caught:
        schemashift.upgrade(url, config=config)
    where = "a Python caller's traceback"
    assert_clean(str(caught.value), where)
    assert_clean("".join(traceback.format_exception(caught.value)), where)


def test_debug_traceback_of_a_real_process_is_masked(account: Account, tmp_path: Path) -> None:
    config = write_project(tmp_path, account.url(port=1))
    environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    environ.pop("SCHEMASHIFT_ENV", None)
    result = subprocess.run([sys.executable, "-m", "schemashift", "--config", str(config), "--debug", "upgrade"],
                            capture_output=True, text=True, env=environ, timeout=120)
    assert result.returncode == 2 and "Traceback" in result.stderr
    assert_clean(result.stdout + result.stderr, "a --debug run")


# -- working URLs: every output of a normal session --------------------------------


def _reset(account: Account) -> None:
    engine = sa.create_engine(account.url(), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            metadata = sa.MetaData()
            metadata.reflect(conn)
            metadata.drop_all(conn)
    finally:
        engine.dispose()


def test_every_output_of_a_session_is_masked(account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    _reset(account)
    config = write_project(tmp_path, account.url())
    monkeypatch.setenv("SS_TEST_SECRET_URL", account.url())
    run = Run(capsys, config)
    caplog.set_level(logging.DEBUG)
    for args in (["upgrade", "--sql"], ["upgrade", "--dry-run"], ["status"], ["status", "--json"],
                 ["--env", "fromvar", "status", "--json"], ["envs"], ["envs", "--json"]):
        code, out, err = run(*args)
        assert code == (1 if args[-2:] in (["status"], ["status", "--json"]) else 0), err  # status: 1 = pending
    schemashift.upgrade(account.url(), config=config)  # the Python API logs to the `schemashift` logger
    assert any(record.name == "schemashift" for record in caplog.records)
    for args in (["history", "--applied", "--json"], ["history", "--applied"], ["verify"],
                 ["diff", "--against", "migrations", "--json"], ["downgrade", "-1", "--sql"],
                 ["downgrade", "-1", "--dry-run"], ["--url", account.url(), "status"]):
        code, out, err = run(*args)
        assert code == 0, err
    assert "***" in "".join(run.seen)
    assert_clean(caplog.text, "log records")


@pytest.mark.parametrize("bind", ["url", "engine"])
def test_a_failing_migration_quoting_the_url_is_masked(bind: str, account: Account, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    _reset(account)
    # with an Engine, the password is known only to that Engine: the configured URL has none
    config = write_project(tmp_path, account.url() if bind == "url" else "sqlite:///unused.db", failing=True)
    monkeypatch.setenv("SS_TEST_SECRET_URL", sa.make_url(account.url()).render_as_string(hide_password=False))
    monkeypatch.setenv("SS_TEST_SECRET", PASSWORD)
    caplog.set_level(logging.DEBUG)
    engine = sa.create_engine(account.url(), poolclass=sa.pool.NullPool)
    try:
        with pytest.raises(errors.ExecutionError) as caught:
            schemashift.upgrade(account.url() if bind == "url" else engine, config=config)
    finally:
        engine.dispose()
    assert "cannot reach" in str(caught.value), caught.value
    assert_clean(str(caught.value), "the ExecutionError")
    assert_clean("".join(traceback.format_exception(caught.value)), "a Python caller's traceback")
    assert_clean(caplog.text, "log records")
    errors_stored = _error_columns(account)
    assert any("cannot reach" in text for text in errors_stored), errors_stored
    assert_clean("\n".join(errors_stored), "the error columns of the version and history tables")
    assert "***" in "\n".join(errors_stored)

    run = Run(capsys, config)
    for args in (["status"], ["status", "--json"], ["history", "--applied", "--json"], ["upgrade", "--debug"],
                 ["verify"], ["repair", "undo"], ["history", "--applied", "--json"]):
        run("--url", account.url(), *args)


def _error_columns(account: Account) -> list[str]:
    engine = sa.create_engine(account.url(), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            found = [row[0] for row in conn.exec_driver_sql(
                "SELECT error FROM schemashift_version_history WHERE error IS NOT NULL")]
            found += [row[0] for row in conn.exec_driver_sql(
                "SELECT coalesce(error, '') || coalesce(failed_statement, '') FROM schemashift_version"
                if account.backend == "postgresql" else
                "SELECT concat(coalesce(error, ''), coalesce(failed_statement, '')) FROM schemashift_version")]
    finally:
        engine.dispose()
    return found
