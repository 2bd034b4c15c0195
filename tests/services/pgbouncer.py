"""A PgBouncer in transaction-pooling mode in front of the test PostgreSQL server.

Started from Debian's `pgbouncer` in a private temporary directory on a free loopback port;
every database name is passed through to the real server, so a URL for any database
created there works through the pooler too.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.processes import find_binary, free_port, port_open, stop, wait_for

#: What psycopg 3 needs through a transaction-mode PgBouncer 1.18 (no server-side prepared statements).
CONNECT_ARGS: dict[str, object] = {"prepare_threshold": None}

STARTUP_TIMEOUT = 20.0


def binary() -> str | None:
    """The pgbouncer executable, or None when it is not installed."""
    return find_binary("pgbouncer", "/usr/sbin/pgbouncer")


def missing() -> str | None:
    """None when PgBouncer can be started here, else why not."""
    return None if binary() else "pgbouncer not installed (apt-get install pgbouncer)"


@dataclass
class PgBouncer:
    """A running PgBouncer: its port and process."""

    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    def url(self, database: str, user: str = "postgres") -> str:
        """A SQLAlchemy URL for `database` through this pooler (psycopg 3 driver)."""
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"


def config(port: int, directory: Path, server_host: str, server_port: int, user: str) -> str:
    """The ini text: transaction pooling, trust auth, every database forwarded to the server."""
    return "\n".join([
        "[databases]",
        f"* = host={server_host} port={server_port}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        f"logfile = {directory / 'pgbouncer.log'}",
        "auth_type = trust",
        f"auth_file = {directory / 'userlist.txt'}",
        f"admin_users = {user}",
        "pool_mode = transaction",
        "max_client_conn = 500",
        "default_pool_size = 20",
        "ignore_startup_parameters = extra_float_digits,options",
        "",
    ])


def _run_as() -> str | None:
    """The user to drop to: pgbouncer refuses to run as root."""
    return "postgres" if os.geteuid() == 0 else None


def _prepare(directory: Path, port: int, server_host: str, server_port: int, user: str, run_as: str | None) -> Path:
    ini = directory / "pgbouncer.ini"
    ini.write_text(config(port, directory, server_host, server_port, user))
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    if run_as is not None:
        account = pwd.getpwnam(run_as)
        for path in (directory, ini, directory / "userlist.txt"):
            os.chown(path, account.pw_uid, account.pw_gid)
    return ini


@contextmanager
def running(server_host: str = "127.0.0.1", server_port: int = 5432, user: str = "postgres") -> Iterator[PgBouncer]:
    """Start a PgBouncer in front of `server_host:server_port`, yield it, stop it by its pid."""
    executable = binary()
    if executable is None:
        raise RuntimeError(missing())
    directory = Path(tempfile.mkdtemp(prefix="ss-pgbouncer-"))
    run_as = _run_as()
    port = free_port()
    ini = _prepare(directory, port, server_host, server_port, user, run_as)
    command = [executable, *(["-u", run_as] if run_as else []), str(ini)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for("pgbouncer", lambda: True if port_open(port) else None, STARTUP_TIMEOUT, process,
                 directory / "pgbouncer.log")
        yield PgBouncer(port, process, directory)
    finally:
        stop(process)
        shutil.rmtree(directory, ignore_errors=True)
