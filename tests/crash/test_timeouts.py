"""A server that accepts the connection but never answers: every command gives up in time, with one line."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from helpers import cli, write_project

MODELS = '''
import sqlalchemy as sa

Base = sa.MetaData()
item = sa.Table("item", Base, sa.Column("id", sa.Integer, primary_key=True))
'''


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback listener that accepts connections and never sends a byte (closed after the test)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.mark.parametrize("scheme", ["mysql+pymysql://root", "postgresql+psycopg://postgres"])
@pytest.mark.parametrize("command", [["status"], ["upgrade"]])
def test_silent_server_fails_within_the_connect_timeout(tmp_path: Path, silent_port: int, scheme: str,
                                                        command: list[str]) -> None:
    url = f"{scheme}@127.0.0.1:{silent_port}/app"
    directory = write_project(tmp_path, url, MODELS, extra_config="connect_timeout = 2\n")
    cli(directory, "generate", "-m", "create item")
    started = time.monotonic()
    result = cli(directory, *command, check=False)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect" in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert elapsed < 25, elapsed  # the fast path and the full path each give up after about 2 s


def test_statements_may_outlast_the_connect_timeout_on_mariadb(tmp_path: Path) -> None:
    """The connect bound covers the handshake only: a 3 s statement runs under a 1 s connect_timeout."""
    from conftest import create_database, drop_database, require_backend

    require_backend("mysql")
    name = f"ss_timeouts_{int(time.time() * 1000) % 10**8}"
    url = create_database("mysql", name, tmp_path)
    try:
        directory = write_project(tmp_path, url, MODELS, extra_config="connect_timeout = 1\n")
        cli(directory, "generate", "--empty", "-m", "slow")
        path = next((directory / "migrations").glob("0001_*.py"))
        text = path.read_text().replace("operations = []", 'operations = [ExecuteSQL("SELECT SLEEP(3)", reverse="")]')
        path.write_text(text)
        cli(directory, "manifest")
        started = time.monotonic()
        cli(directory, "upgrade")
        assert time.monotonic() - started >= 3
    finally:
        drop_database("mysql", name)
