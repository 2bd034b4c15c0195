"""Facts about PgBouncer and MariaDB Galera that the lock design of issue 16 rests on, shown on real services.

These prove the test services (tests/services/) work and pin down the behaviours a pooler-
and cluster-safe migration lock must handle: session advisory locks leak through a
transaction-mode PgBouncer, GET_LOCK is local to one Galera node, certification lets exactly
one of two conflicting transactions commit, DDL replicates in total order, and a killed node
rejoins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from services import pgbouncer
from services.galera import GaleraCluster, Node

LOCK_KEY = 424242
#: advisory locks of the current database only (other test processes use the same server)
THIS_DATABASE = "locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
#: MariaDB's ER_LOCK_DEADLOCK: what a Galera certification failure or brute-force abort reports
DEADLOCK = 1213


# --- PgBouncer (transaction pooling) ----------------------------------------------------------------


def pg_connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A raw psycopg connection for a SQLAlchemy URL (autocommit unless told otherwise)."""
    parsed = sa.make_url(url)
    options = {"autocommit": True, "prepare_threshold": None, **kwargs}
    return psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database,
                           **options)


def one(conn: psycopg.Connection[Any], sql: str) -> tuple[Any, ...]:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture
def direct(pgbouncer_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A direct connection to the same database on the real server (bypassing the pooler)."""
    from conftest import SERVER_URLS
    server = sa.make_url(SERVER_URLS["postgresql"])
    conn = pg_connect(str(server.set(database=sa.make_url(pgbouncer_url).database)))
    yield conn
    conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_locks WHERE {THIS_DATABASE} AND pid <> pg_backend_pid()")
    conn.close()


def advisory_holders(direct: psycopg.Connection[Any]) -> list[int]:
    rows = direct.execute(f"SELECT pid FROM pg_locks WHERE {THIS_DATABASE} AND objid = %s AND granted",
                          (LOCK_KEY,)).fetchall()
    return [row[0] for row in rows]


def test_pgbouncer_session_advisory_lock_belongs_to_the_server_connection(
        pgbouncer_url: str, direct: psycopg.Connection[Any]) -> None:
    owner, other, pinner = pg_connect(pgbouncer_url), pg_connect(pgbouncer_url), pg_connect(pgbouncer_url)
    locked, backend = one(owner, f"SELECT pg_advisory_lock({LOCK_KEY}) IS NOT NULL, pg_backend_pid()")
    assert locked
    # a second client, handed the same idle server connection, "gets" the lock too
    got, other_backend = one(other, f"SELECT pg_try_advisory_lock({LOCK_KEY}), pg_backend_pid()")
    assert (got, other_backend) == (True, backend)
    # while that server connection is busy in someone's transaction, the owner's unlock runs elsewhere and fails
    pinner.execute("BEGIN")
    assert one(pinner, "SELECT pg_backend_pid()")[0] == backend
    released, unlock_backend = one(owner, f"SELECT pg_advisory_unlock({LOCK_KEY}), pg_backend_pid()")
    assert (released, unlock_backend != backend) == (False, True)
    pinner.execute("COMMIT")
    for conn in (owner, other, pinner):
        conn.close()
    # and the lock outlives every client: the pooled server connection still holds it
    assert advisory_holders(direct) == [backend]


def test_pgbouncer_transaction_advisory_lock_behaves(pgbouncer_url: str, direct: psycopg.Connection[Any]) -> None:
    holder, other = pg_connect(pgbouncer_url), pg_connect(pgbouncer_url)
    holder.execute("BEGIN")
    assert one(holder, f"SELECT pg_try_advisory_xact_lock({LOCK_KEY})")[0] is True
    assert one(other, f"SELECT pg_try_advisory_xact_lock({LOCK_KEY})")[0] is False
    holder.execute("COMMIT")
    assert advisory_holders(direct) == []
    assert one(other, f"SELECT pg_try_advisory_xact_lock({LOCK_KEY})")[0] is True
    holder.close()
    other.close()


def test_pgbouncer_needs_prepared_statements_off(pgbouncer_url: str) -> None:
    preparing, pinner = pg_connect(pgbouncer_url, prepare_threshold=0), pg_connect(pgbouncer_url)
    preparing.execute("SELECT %s::int", (1,))  # prepared on the one server connection in use
    pinner.execute("BEGIN")
    pinner.execute("SELECT 1")  # now that server connection is taken
    with pytest.raises(psycopg.errors.InvalidSqlStatementName):
        preparing.execute("SELECT %s::int", (2,))
    pinner.execute("COMMIT")
    engine = sa.create_engine(pgbouncer_url, connect_args=pgbouncer.CONNECT_ARGS, poolclass=sa.NullPool)
    for _ in range(10):
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT :n"), {"n": 7}).scalar() == 7
    engine.dispose()
    preparing.close()
    pinner.close()


# --- MariaDB Galera (3 nodes) -----------------------------------------------------------------------


def connect(node: Node, database: str, sync_wait: bool = True) -> pymysql.connections.Connection:
    """A connection to `node` whose reads wait for replication to catch up (wsrep_sync_wait: 1 for SELECT and
    BEGIN, 8 for SHOW, e.g. SHOW CREATE TABLE: without it a node may answer before applying a DDL just ordered)."""
    conn = node.connect(database)
    if sync_wait:
        with conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 9")
    return conn


def query(conn: pymysql.connections.Connection, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return [tuple(row) for row in cur.fetchall()]


def database_of(urls: list[str]) -> str:
    return str(sa.make_url(urls[0]).database)


def test_galera_get_lock_is_local_to_each_node(galera: GaleraCluster, galera_urls: list[str]) -> None:
    engines = [sa.create_engine(url, poolclass=sa.NullPool) for url in galera_urls[:2]]
    with engines[0].connect() as first, engines[1].connect() as second:
        assert first.exec_driver_sql("SELECT GET_LOCK('x', 0)").scalar() == 1
        assert second.exec_driver_sql("SELECT GET_LOCK('x', 0)").scalar() == 1  # the same name, at the same time
        assert first.exec_driver_sql("SELECT @@wsrep_on, @@wsrep_provider <> 'none'").one() == (1, 1)
    for engine in engines:
        engine.dispose()


def test_galera_same_key_inserts_on_two_nodes_exactly_one_commits(galera: GaleraCluster,
                                                                   galera_urls: list[str]) -> None:
    database = database_of(galera_urls)
    galera.execute(f"CREATE TABLE {database}.claim (id INT PRIMARY KEY, owner VARCHAR(20) NOT NULL)")
    conns = [connect(node, database) for node in galera.nodes[:2]]
    for index, conn in enumerate(conns):
        query(conn, "BEGIN")
        query(conn, "INSERT INTO claim VALUES (1, %s)", (f"node{index + 1}",))
    outcomes: list[int] = []
    for conn in conns:
        try:
            conn.commit()
            outcomes.append(0)
        except pymysql.MySQLError as exc:
            outcomes.append(exc.args[0])
    assert sorted(outcomes) == [0, DEADLOCK]
    winner = f"node{outcomes.index(0) + 1}"
    for node in galera.nodes:
        conn = connect(node, database)
        assert query(conn, "SELECT id, owner FROM claim") == [(1, winner)]
        conn.close()
    for conn in conns:
        conn.close()


def test_galera_ddl_reaches_every_node_and_aborts_open_transactions(galera: GaleraCluster,
                                                                     galera_urls: list[str]) -> None:
    database = database_of(galera_urls)
    first, second, third = (connect(node, database) for node in galera.nodes)
    query(first, "CREATE TABLE ddl_seen (id INT PRIMARY KEY, note VARCHAR(10))")
    query(second, "INSERT INTO ddl_seen VALUES (1, 'before')")
    query(second, "BEGIN")
    query(second, "INSERT INTO ddl_seen VALUES (2, 'open')")
    query(first, "ALTER TABLE ddl_seen ADD COLUMN extra INT")  # total-order isolation: runs everywhere now
    with pytest.raises(pymysql.MySQLError) as aborted:
        second.commit()
    assert aborted.value.args[0] == DEADLOCK
    expected = query(first, "SHOW CREATE TABLE ddl_seen")
    for conn in (second, third):
        assert query(conn, "SHOW CREATE TABLE ddl_seen") == expected
        assert query(conn, "SELECT id FROM ddl_seen") == [(1,)]
    for conn in (first, second, third):
        conn.close()


def cluster_size(node: Node) -> int | None:
    size = node.wsrep_status().get("wsrep_cluster_size")
    return None if size is None else int(size)


def wait_until(predicate: Any, timeout: float = 60.0) -> float:
    """Poll `predicate` until true; return the seconds it took."""
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < timeout, "timed out"
        time.sleep(0.1)
    return time.monotonic() - began


def test_galera_killed_node_loses_its_open_transaction_and_rejoins(galera: GaleraCluster,
                                                                   galera_urls: list[str]) -> None:
    database = database_of(galera_urls)
    galera.execute(f"CREATE TABLE {database}.journal (id INT PRIMARY KEY, note VARCHAR(20))")
    victim = connect(galera.nodes[2], database)
    query(victim, "BEGIN")
    query(victim, "INSERT INTO journal VALUES (1, 'uncommitted')")
    galera.kill(2)
    with pytest.raises(pymysql.MySQLError):
        query(victim, "COMMIT")
    survivor = connect(galera.nodes[0], database)
    query(survivor, "INSERT INTO journal VALUES (2, 'while down')")  # the cluster keeps working
    wait_until(lambda: cluster_size(galera.nodes[0]) == 2)
    galera.restart(2)
    assert [cluster_size(node) for node in galera.nodes] == [3, 3, 3]
    rejoined = connect(galera.nodes[2], database)
    assert query(rejoined, "SELECT id, note FROM journal") == [(2, "while down")]
    for conn in (survivor, rejoined):
        conn.close()
