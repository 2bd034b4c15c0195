"""Shared fixtures: throw-away databases on SQLite, PostgreSQL and MariaDB.

Each test module that asks for `db_url` gets one fresh database per backend,
dropped afterwards. A backend whose server does not answer is skipped with a
visible reason, unless SCHEMASHIFT_REQUIRE_SERVERS=1 (CI), where it fails.
The same holds for the squawk binary (`squawk`) and the services the suite starts itself (tests/services/):
`pgbouncer_url` (a database behind a transaction-mode PgBouncer) and
`galera_cluster` / `galera` / `galera_urls` (a three-node MariaDB Galera cluster).
"""

from __future__ import annotations

import os
import re
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from services import galera as galera_service
from services import pgbouncer as pgbouncer_service
from services import server_log

SERVER_URLS = {
    "postgresql": os.environ.get("SCHEMASHIFT_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mysql": os.environ.get("SCHEMASHIFT_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/mysql"),
}
BACKENDS = ("sqlite", "postgresql", "mysql")
REQUIRE_SERVERS = os.environ.get("SCHEMASHIFT_REQUIRE_SERVERS") == "1"
#: how a skip for a missing service reads (the notice at the end of the run finds them by it)
SERVICE_SKIP = re.compile(r"(?P<name>[\w-]+) not available \((?P<error>.*)\)$")


@lru_cache(maxsize=None)
def server_error(backend: str) -> str | None:
    """None when the backend's server answers, else why not."""
    if backend == "sqlite":
        return None
    try:
        engine = sa.create_engine(SERVER_URLS[backend], connect_args=_timeout_args(backend))
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return None


def _timeout_args(backend: str) -> dict[str, object]:
    return {"connect_timeout": 3}


def require_backend(backend: str) -> None:
    """Skip (or fail in CI) when `backend`'s server is not reachable."""
    error = server_error(backend)
    if error is None:
        return
    _unavailable(f"{backend} server not reachable ({error})")


def require_service(name: str, error: str | None) -> None:
    """Skip (or fail in CI) when service `name` cannot be started here (`error` says why)."""
    if error is None:
        return
    _unavailable(f"{name} not available ({error})")


def _unavailable(message: str) -> None:
    if REQUIRE_SERVERS:
        pytest.fail(f"SCHEMASHIFT_REQUIRE_SERVERS=1 but {message}")
    pytest.skip(message)


def _db_name(request: pytest.FixtureRequest) -> str:
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.split(".")[-1].lower())[:30]
    return f"ss_{module}_{uuid.uuid4().hex[:8]}"


def create_database(backend: str, name: str, tmp_dir: Path) -> str:
    """Create database `name` on `backend` and return its URL."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_dir / (name + '.db')}"
    admin = sa.create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return str(sa.make_url(SERVER_URLS[backend]).set(database=name).render_as_string(hide_password=False))


def drop_database(backend: str, name: str) -> None:
    """Drop database `name` (ignoring connections still open on PostgreSQL)."""
    if backend == "sqlite":
        return
    admin = sa.create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    admin.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend name; skips when its server is not reachable."""
    require_backend(request.param)
    return request.param


@pytest.fixture(scope="module")
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database on `backend` for this test module."""
    name = _db_name(request)
    url = create_database(backend, name, tmp_path_factory.mktemp(name))
    yield url
    drop_database(backend, name)


@pytest.fixture
def fresh_db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on `backend` for one test (use sparingly)."""
    name = _db_name(request)
    url = create_database(backend, name, tmp_path)
    yield url
    drop_database(backend, name)


@pytest.fixture(scope="module", autouse=True)
def _servers_outlive_the_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the module during whose run a database server stopped answering, naming it (a server that crashes
    mid-run then says which tests were running, not only that every later one failed)."""
    answering = [backend for backend in ("postgresql", "mysql")
                 if backend not in LOST_DURING and server_error(backend) is None]
    yield
    for backend in answering:
        error = server_error.__wrapped__(backend)
        if error is not None:
            LOST_DURING[backend] = request.module.__name__  # named once: the modules after it fail on their own
            pytest.fail(f"the {backend} server stopped answering while {request.module.__name__} ran: {error}",
                        pytrace=False)


#: backend -> the module during which its server stopped answering (in this test process)
LOST_DURING: dict[str, str] = {}


@pytest.fixture(scope="session")
def squawk() -> str:
    """The squawk binary (squawk-cli, a test dependency: the lint and safe-mode oracle); skipped when it is not
    installed, failed in CI (SCHEMASHIFT_REQUIRE_SERVERS=1)."""
    import shutil
    import sys

    local = Path(sys.executable).parent / "squawk"
    found = shutil.which("squawk") or (str(local) if local.exists() else None)
    require_service("squawk", None if found else "squawk-cli is not installed: pip install squawk-cli")
    return str(found)


@pytest.fixture(scope="module")
def pgbouncer_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database for this module, reached through a PgBouncer in transaction mode.

    Connect with `connect_args=services.pgbouncer.CONNECT_ARGS` (psycopg 3 must not prepare there).
    """
    require_backend("postgresql")
    require_service("pgbouncer", pgbouncer_service.missing())
    name = _db_name(request)
    server = sa.make_url(SERVER_URLS["postgresql"])
    create_database("postgresql", name, Path("."))
    try:
        with pgbouncer_service.running(server.host or "127.0.0.1", server.port or 5432, server.username or "postgres") as bouncer:
            yield bouncer.url(name, server.username or "postgres")
    finally:
        drop_database("postgresql", name)


@pytest.fixture(scope="session")
def galera_cluster() -> Iterator[galera_service.GaleraCluster]:
    """A three-node MariaDB Galera cluster on loopback ports, started once per test process on first use."""
    require_service("galera", galera_service.missing())
    cluster = galera_service.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def galera(galera_cluster: galera_service.GaleraCluster) -> galera_service.GaleraCluster:
    """The cluster with all three nodes up and synced (restarts any node an earlier test killed)."""
    galera_cluster.heal()
    return galera_cluster


@pytest.fixture(scope="module")
def galera_urls(galera_cluster: galera_service.GaleraCluster, request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """A fresh database on the cluster for this module: one SQLAlchemy URL per node."""
    galera_cluster.heal()
    name = _db_name(request)
    galera_cluster.execute(f"CREATE DATABASE {name}")
    yield galera_cluster.urls(name)
    galera_cluster.heal()
    galera_cluster.execute(f"DROP DATABASE IF EXISTS {name}")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """Say loudly which database servers were missing."""
    missing = [b for b in ("postgresql", "mysql") if server_error.cache_info().currsize and server_error(b)]
    for backend in missing:
        terminalreporter.write_line(
            f"NOTICE: {backend} tests were SKIPPED: {server_error(backend)}", yellow=True, bold=True
        )
    missing_services: dict[str, str] = {}
    for report in terminalreporter.stats.get("skipped", []):  # also the skips reported by xdist workers
        found = SERVICE_SKIP.search(str(report.longrepr[2])) if isinstance(report.longrepr, tuple) else None
        if found:
            missing_services[found["name"]] = found["error"]
    for name, error in missing_services.items():
        terminalreporter.write_line(f"NOTICE: {name} tests were SKIPPED: {error}", yellow=True, bold=True)
    _report_lost_servers(terminalreporter)


#: What a failure says when a server stopped answering during the run, and where that server logs.
LOST_SERVER = {"mysql": (("Can't connect to MySQL server", "Lost connection to MySQL server",
                          "MySQL server has gone away", "the mysql server stopped answering"),
                         ("/var/log/mysql/error.log",)),
               "postgresql": (("port 5432 failed: Connection refused", "the postgresql server stopped answering"), ())}
#: Where the run lists its failures (JSON: "lost", those that say a server stopped answering, and "other"), for
#: `.ci/run`, which runs the lost ones once more after restarting a server that crashed mid-run.
FAILURES_FILE = os.environ.get("SCHEMASHIFT_FAILURES_FILE")


def _report_lost_servers(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """When tests failed because a server stopped answering mid-run: say so, with the end of its error log."""
    failures = [*terminalreporter.stats.get("failed", []), *terminalreporter.stats.get("error", [])]
    if FAILURES_FILE and not hasattr(terminalreporter.config, "workerinput"):  # the whole run's, not a worker's
        _list_failures(failures, Path(FAILURES_FILE))
    for backend, (signs, logs) in LOST_SERVER.items():
        lost = [report.nodeid for report in failures if _says_lost(report, signs)]
        if not lost:
            continue
        terminalreporter.write_line(f"NOTICE: {backend} stopped answering during the run ({len(lost)} failures, "
                                    f"first {lost[0]}); it answers now: {server_error.__wrapped__(backend) is None}",
                                    red=True, bold=True)
        for log in logs:
            try:
                text = Path(log).read_text(errors="replace")
            except OSError:
                continue
            terminalreporter.write_line(f"--- what {log} says of its last crash:")
            for line in server_log.crash_report(text):
                terminalreporter.write_line(line)


def _says_lost(report: pytest.TestReport, signs: tuple[str, ...]) -> bool:
    text = str(report.longrepr)
    return any(sign in text for sign in signs)


def _list_failures(failures: list[pytest.TestReport], path: Path) -> None:
    """Write the failed tests' ids to `path`: those that say a server stopped answering, and the others."""
    import json

    signs = tuple(sign for backend_signs, _ in LOST_SERVER.values() for sign in backend_signs)
    lost = sorted({report.nodeid for report in failures if _says_lost(report, signs)})
    other = sorted({report.nodeid for report in failures} - set(lost))
    path.write_text(json.dumps({"lost": lost, "other": other}, indent=1))
