"""A three-node MariaDB Galera cluster on loopback ports, for tests of multi-primary behaviour.

Each node is a `mariadbd` with its own data directory, client port and Galera ports
(group communication, IST, SST by rsync). The first node bootstraps the cluster; the
others start from a copy of its fresh data directory and catch up by IST, one after the
other. Nodes can be killed (SIGKILL) and restarted (they rejoin by rsync SST plus IST), and
after a full outage `heal()` bootstraps again from the most advanced node.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pymysql  # type: ignore[import-untyped]

from services.processes import (
    alive,
    find_binary,
    free_port,
    kill_hard,
    log_tail,
    stop,
    wait_for,
)

PROVIDER = "/usr/lib/galera/libgalera_smm.so"
NODES = 3
#: The account mariadbd runs as: as root, the SST rsync daemon would drop to `nobody` and fail.
RUN_AS = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
#: Generous: a node that joins by SST on a loaded two-core machine can take a while.
START_TIMEOUT = 120.0


def binaries() -> tuple[str, str] | None:
    """(mariadbd, mariadb-install-db), or None when either is missing."""
    server = find_binary("mariadbd", "/usr/sbin/mariadbd")
    installer = find_binary("mariadb-install-db", "/usr/bin/mariadb-install-db")
    return (server, installer) if server and installer else None


def missing() -> str | None:
    """None when a Galera cluster can be started here, else why not."""
    if binaries() is None:
        return "mariadbd / mariadb-install-db not installed (apt-get install mariadb-server)"
    if not os.path.exists(PROVIDER):
        return f"Galera provider {PROVIDER} missing (apt-get install galera-4)"
    if find_binary("rsync") is None:
        return "rsync not installed (needed for state transfer; apt-get install rsync)"
    return None


@dataclass
class Node:
    """One cluster member: its ports, files and (while running) its process."""

    index: int
    directory: Path
    port: int
    gcomm_port: int
    ist_port: int
    sst_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    @property
    def defaults_file(self) -> Path:
        return self.directory / "my.cnf"

    @property
    def log(self) -> Path:
        return self.directory / "error.log"

    def synced(self, size: int) -> bool:
        """True when this node answers, is synced and sees a primary cluster of `size` nodes."""
        status = self.wsrep_status()
        return (status.get("wsrep_local_state_comment") == "Synced" and status.get("wsrep_cluster_size") == str(size)
                and status.get("wsrep_cluster_status") == "Primary")

    def wsrep_status(self) -> dict[str, str]:
        """This node's `wsrep_%` status values (empty when it does not answer)."""
        try:
            conn = self.connect()
        except pymysql.MySQLError:
            return {}
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep%'")
                return {str(name): str(value) for name, value in cur.fetchall()}
        except pymysql.MySQLError:
            return {}
        finally:
            conn.close()

    @property
    def running(self) -> bool:
        return self.process is not None and alive(self.process.pid)

    def url(self, database: str = "mysql") -> str:
        """A SQLAlchemy URL for `database` on this node (root, no password, over TCP)."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str | None = None, **kwargs: object) -> pymysql.connections.Connection:
        """A raw PyMySQL connection to this node."""
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", database=database,
                               connect_timeout=2, autocommit=True, **kwargs)


@dataclass
class GaleraCluster:
    """Three nodes in one cluster; `urls()` gives their SQLAlchemy URLs."""

    name: str
    directory: Path
    nodes: list[Node] = field(default_factory=list)
    startup_seconds: float = 0.0

    def urls(self, database: str = "mysql") -> list[str]:
        """One SQLAlchemy URL per node, for `database`."""
        return [node.url(database) for node in self.nodes]

    def execute(self, statement: str) -> None:
        """Run `statement` on the first running node (DDL reaches the others by replication)."""
        node = next(node for node in self.nodes if node.running)
        conn = node.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def config(self, node: Node) -> str:
        """The node's option file."""
        members = ",".join(f"127.0.0.1:{other.gcomm_port}" for other in self.nodes)
        options = ";".join([
            f"gmcast.listen_addr=tcp://127.0.0.1:{node.gcomm_port}",
            f"ist.recv_addr=127.0.0.1:{node.ist_port}",
            "gcache.size=32M",
            "evs.suspect_timeout=PT3S",
            "evs.inactive_timeout=PT6S",
            "evs.install_timeout=PT6S",
        ])
        return "\n".join([
            "[mysqld]",
            f"datadir={node.datadir}",
            f"socket={node.directory / 'mysqld.sock'}",
            f"pid-file={node.directory / 'mysqld.pid'}",
            f"log-error={node.log}",
            f"port={node.port}",
            "bind-address=127.0.0.1",
            f"user={RUN_AS}",
            "skip-name-resolve",
            "performance_schema=OFF",
            "innodb_buffer_pool_size=32M",
            "innodb_log_file_size=16M",
            "innodb_flush_log_at_trx_commit=2",
            "innodb_autoinc_lock_mode=2",
            "binlog_format=ROW",
            "default_storage_engine=InnoDB",
            "wsrep_on=ON",
            f"wsrep_provider={PROVIDER}",
            f"wsrep_cluster_name={self.name}",
            f"wsrep_cluster_address=gcomm://{members}",
            "wsrep_node_address=127.0.0.1",
            f"wsrep_node_name=node{node.index + 1}",
            f'wsrep_provider_options="{options}"',
            "wsrep_sst_method=rsync",
            f"wsrep_sst_receive_address=127.0.0.1:{node.sst_port}",
            "",
        ])

    def start_node(self, node: Node, *extra: str) -> subprocess.Popen[bytes]:
        """Launch `node`'s mariadbd with `extra` options (not waiting for it)."""
        found = binaries()
        assert found is not None
        node.process = subprocess.Popen([found[0], f"--defaults-file={node.defaults_file}", *extra],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True, cwd=node.directory)
        return node.process

    def wait_synced(self, nodes: list[Node] | None = None, size: int = NODES, timeout: float = START_TIMEOUT) -> None:
        """Wait until each of `nodes` (default: all) is synced and sees a cluster of `size`."""
        waiting = self.nodes if nodes is None else nodes

        def probe() -> bool | None:
            for node in waiting:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"galera node{node.index + 1} exited with {node.process.returncode}"
                                       f"{log_tail(node.log)}")
            return True if all(node.synced(size) for node in waiting) else None
        names = ", ".join(f"node{node.index + 1}" for node in waiting)
        wait_for(f"galera {names} synced in a cluster of {size}", probe, timeout, None, waiting[-1].log)

    def join(self, node: Node, *extra: str) -> None:
        """Start `node` and wait until the running members count it in (its state transfer may still run).

        Joiners started at the same moment can form a non-primary component of their own and
        only merge after the group's install timeout, so each waits for the one before.
        """
        members = [other for other in self.nodes if other is not node and other.running]
        expected = str(len(members) + 1)
        self.start_node(node, *extra)

        def probe() -> bool | None:
            return True if any(m.wsrep_status().get("wsrep_cluster_size") == expected for m in members) else None
        wait_for(f"galera node{node.index + 1} joining", probe, START_TIMEOUT, node.process, node.log)

    def kill(self, index: int) -> None:
        """SIGKILL node `index` (0-based), as a crash would, and reap it."""
        node = self.nodes[index]
        assert node.process is not None
        kill_hard(node.process)

    def restart(self, index: int, wait: bool = True) -> None:
        """Start a killed node `index` again; it rejoins the running nodes by state transfer."""
        node = self.nodes[index]
        if node.running:
            raise RuntimeError(f"node{index + 1} is still running")
        self._reap(node)
        self.join(node, f"--wsrep-start-position={self.recovered_position(node)}")
        if wait:
            self.wait_synced()

    def heal(self) -> None:
        """Bring every node back (bootstrapping from the most advanced one if all are down) and wait."""
        down = [node for node in self.nodes if not node.running]
        if len(down) == NODES:
            first = self.bootstrap()
            down.remove(first)
        for node in down:
            self.restart(node.index, wait=False)  # one at a time: joiners started together split off
        self.wait_synced()

    def bootstrap(self) -> Node:
        """With every node down: start the one with the latest recovered position as a new cluster."""
        for node in self.nodes:
            self._reap(node)
        first = max(self.nodes, key=self.recovered_seqno)
        grastate = first.datadir / "grastate.dat"
        grastate.write_text(re.sub(r"safe_to_bootstrap: *0", "safe_to_bootstrap: 1", grastate.read_text()))
        self.start_node(first, "--wsrep-new-cluster")
        self.wait_synced([first], size=1)
        return first

    def recovered_seqno(self, node: Node) -> int:
        """The last committed seqno InnoDB holds for a stopped `node`."""
        return int(self.recovered_position(node).rsplit(":", 1)[1])

    def recovered_position(self, node: Node) -> str:
        """`uuid:seqno` of the last transaction InnoDB committed on a stopped `node` (`mariadbd --wsrep-recover`).

        Started with it, a node killed by SIGKILL rejoins by IST instead of a full SST.
        """
        process = self.start_node(node, "--wsrep-recover")
        process.wait(timeout=START_TIMEOUT)
        node.process = None
        found = re.findall(r"Recovered position: *([0-9a-f-]+:-?\d+)", node.log.read_text(errors="replace"))
        return str(found[-1]) if found else "00000000-0000-0000-0000-000000000000:-1"

    @staticmethod
    def _reap(node: Node) -> None:
        if node.process is not None:
            stop(node.process, timeout=5, sig=signal.SIGKILL)  # and any SST helper left in its group
            node.process = None

    def stop(self) -> None:
        """Kill every node by its pid (the data is thrown away) and remove the files."""
        for node in self.nodes:
            self._reap(node)
        shutil.rmtree(self.directory, ignore_errors=True)


def _install(node: Node) -> None:
    """Create the system tables in `node`'s data directory (root@localhost and 127.0.0.1, no password)."""
    found = binaries()
    assert found is not None
    result = subprocess.run(
        [found[1], f"--defaults-file={node.defaults_file}", "--auth-root-authentication-method=normal",
         "--skip-test-db", f"--user={RUN_AS}", f"--datadir={node.datadir}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed:\n{result.stdout.decode(errors='replace')[-2000:]}")


def _hand_over(directory: Path) -> None:
    """Give the cluster's files to the account mariadbd runs as."""
    account = pwd.getpwnam(RUN_AS)
    for path in (directory, *directory.rglob("*")):
        os.chown(path, account.pw_uid, account.pw_gid)


def new_cluster() -> GaleraCluster:
    """Lay out three nodes' directories and option files on fresh free ports (nothing started)."""
    directory = Path(tempfile.mkdtemp(prefix="ss-galera-"))
    cluster = GaleraCluster(name=f"ss_{uuid.uuid4().hex[:8]}", directory=directory)
    for index in range(NODES):
        node_dir = directory / f"node{index + 1}"
        (node_dir / "data").mkdir(parents=True)
        cluster.nodes.append(Node(index, node_dir, free_port(), free_port(), free_port(), free_port()))
    for node in cluster.nodes:
        node.defaults_file.write_text(cluster.config(node))
    _hand_over(directory)
    return cluster


def _seed(cluster: GaleraCluster) -> None:
    """Copy the first node's data directory, cleanly shut down, to the joiners.

    The copies carry the cluster's identity and position, so the joiners catch up by a short
    IST from the first node's write-set cache instead of a full rsync SST (about 8 s each).
    """
    first = cluster.nodes[0]
    for node in cluster.nodes[1:]:
        shutil.rmtree(node.datadir)
        shutil.copytree(first.datadir, node.datadir, symlinks=True)
        grastate = node.datadir / "grastate.dat"
        grastate.write_text(re.sub(r"safe_to_bootstrap: *1", "safe_to_bootstrap: 0", grastate.read_text()))
    _hand_over(cluster.directory)


#: Fresh starts tried before giving up: a joiner now and then leaves a forming cluster (a final non-primary view)
#: and never comes back; a second cluster from scratch comes up.
START_ATTEMPTS = 2


def start() -> GaleraCluster:
    """Start a fresh three-node cluster and wait until it has three synced members (from scratch once more when
    the first one does not come up: what the tests check is the tool on a cluster, not Galera's start)."""
    for _ in range(START_ATTEMPTS - 1):
        try:
            return _start_once()
        except (TimeoutError, RuntimeError):
            continue
    return _start_once()


def _start_once() -> GaleraCluster:
    """One try of `start`: every node stopped and its files removed when it fails."""
    began = time.monotonic()
    cluster = new_cluster()
    try:
        first = cluster.nodes[0]
        _install(first)
        process = cluster.start_node(first, "--wsrep-new-cluster")
        cluster.wait_synced([first], size=1)
        stop(process, timeout=START_TIMEOUT)  # a clean shutdown leaves safe_to_bootstrap: 1 and its position
        _seed(cluster)
        cluster.start_node(first, "--wsrep-new-cluster")
        cluster.wait_synced([first], size=1)
        for node in cluster.nodes[1:]:
            cluster.join(node)
        cluster.wait_synced()
    except BaseException:
        cluster.stop()
        raise
    cluster.startup_seconds = time.monotonic() - began
    return cluster
