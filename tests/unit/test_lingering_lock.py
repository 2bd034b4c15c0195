"""The lingering lock: uses in quick succession take it once, its thread releases it once idle, close releases it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from schemashift.runtime.locks import LingeringLock


class Counted:
    """A fake lock that counts how often it was taken and released."""

    def __init__(self) -> None:
        self.taken = self.released = 0

    @contextmanager
    def take(self) -> Iterator[None]:
        self.taken += 1
        try:
            yield
        finally:
            self.released += 1


def _use(lock: LingeringLock) -> bool:
    with lock.mutex:
        fresh = lock.acquire()
        lock.linger()
    return fresh


def _wait_for(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_uses_in_quick_succession_take_it_once() -> None:
    counted = Counted()
    lock = LingeringLock(counted.take, linger=30.0)
    try:
        assert [_use(lock) for _ in range(5)] == [True, False, False, False, False]
        assert (counted.taken, counted.released) == (1, 0) and lock.held
    finally:
        lock.close()
    assert (counted.taken, counted.released) == (1, 1) and not lock.held


def test_the_thread_releases_it_once_idle_and_the_next_use_takes_it_again() -> None:
    counted = Counted()
    lock = LingeringLock(counted.take, linger=0.05)
    try:
        assert _use(lock)
        assert _wait_for(lambda: counted.released == 1)
        assert not lock.held
        assert _use(lock)
        assert _wait_for(lambda: counted.released == 2)
    finally:
        lock.close()
    assert (counted.taken, counted.released) == (2, 2)


def test_not_released_while_in_use() -> None:
    counted = Counted()
    lock = LingeringLock(counted.take, linger=0.01)
    try:
        with lock.mutex:
            assert lock.acquire()
            time.sleep(0.1)  # a long use: no deadline runs, and the thread cannot take the mutex
            assert counted.released == 0
            lock.linger()
        assert _wait_for(lambda: counted.released == 1)
    finally:
        lock.close()


def test_release_and_close_without_a_use() -> None:
    counted = Counted()
    lock = LingeringLock(counted.take, linger=1.0)
    with lock.mutex:
        lock.release()
    lock.close()
    assert (counted.taken, counted.released) == (0, 0)
