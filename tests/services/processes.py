"""Process and port helpers shared by the services: free ports, liveness, polling, stopping."""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

POLL_INTERVAL = 0.1


#: Where free_port() keeps one lock file per port it hands out, so parallel test processes never share one.
PORT_LOCKS = Path(tempfile.gettempdir()) / "schemashift-test-ports"
_held_port_locks: list[int] = []


def free_port() -> int:
    """A loopback TCP port for a service to listen on, reserved for this process.

    Taken below the kernel's ephemeral range (so no outgoing connection can grab it before the
    service binds it), checked by binding it, and locked by a file lock that lasts as long as
    this process, so other test workers skip it.
    """
    low, high = _port_range()
    for _ in range(1000):
        port = random.randrange(low, high)
        if _bindable(port) and _reserve(port):
            return port
    raise RuntimeError(f"no free loopback port in {low}-{high}")


def _port_range() -> tuple[int, int]:
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    return max(1024, ephemeral_low - 12000), ephemeral_low


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _reserve(port: int) -> bool:
    PORT_LOCKS.mkdir(mode=0o1777, exist_ok=True)
    fd = os.open(PORT_LOCKS / str(port), os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held_port_locks.append(fd)
    return True


def find_binary(*candidates: str) -> str | None:
    """The first of `candidates` (a name on PATH or an absolute path) that exists."""
    for candidate in candidates:
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    return None


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (killed, not yet reaped) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, process: subprocess.Popen[bytes] | None = None,
             log: Path | None = None) -> T:
    """Poll `probe` until it returns something other than None; fail after `timeout` seconds or when `process` exits."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {process.returncode}{log_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s{log_tail(log)}")
        time.sleep(POLL_INTERVAL)


def log_tail(log: Path | None, lines: int = 15) -> str:
    """The last lines of `log`, to explain a failed start."""
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- " + str(log) + "\n" + "\n".join(tail)


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL `process` (only its pid) and reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Stop `process` and whatever it spawned in its own session: `sig` first, SIGKILL after `timeout`."""
    for current in (sig, signal.SIGKILL):
        if process.poll() is None:
            _signal_group(process.pid, current)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
        _signal_group(process.pid, signal.SIGKILL)  # helpers left in its group (e.g. an SST rsync daemon)
        return
    process.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
