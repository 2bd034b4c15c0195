"""The GC pause: switches the collector off inside, back on after, nests, and leaves an application's choice alone."""

from __future__ import annotations

import gc
from typing import Iterator

import pytest

from schemashift.support import gcpause


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    enabled, thresholds, freeze = gc.isenabled(), gc.get_threshold(), gcpause._freeze_after_pause
    yield
    gc.set_threshold(*thresholds)
    gcpause._freeze_after_pause = freeze
    (gc.enable if enabled else gc.disable)()


def test_paused_block_nests_and_restores() -> None:
    gc.enable()
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_paused_restores_after_an_error_and_works_as_decorator() -> None:
    gc.enable()

    @gcpause.paused()
    def fails() -> None:
        assert not gc.isenabled()
        raise ValueError("boom")

    with pytest.raises(ValueError):
        fails()
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_application_stays_off() -> None:
    gc.disable()
    with gcpause.paused():
        pass
    assert not gc.isenabled()


def test_relax_for_process_never_lowers_thresholds() -> None:
    gc.set_threshold(700, 10, 500)
    gcpause.relax_for_process()
    assert gc.get_threshold() == (100_000, 50, 500)
    assert gcpause._freeze_after_pause


def test_compare_reports_the_differences() -> None:
    import sqlalchemy as sa

    from schemashift.api import compare

    engine = sa.create_engine("sqlite://")
    metadata = sa.MetaData()
    sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)))
    with engine.connect() as connection:
        with_pause = [op.describe() for op in compare(connection, metadata)]
        metadata.create_all(connection)
        connection.commit()
        assert compare(connection, metadata) == []
    assert with_pause == ["create table t"]


def test_overlapping_blocks_in_many_threads_leave_the_collector_on() -> None:
    """One shared decorator used from 8 threads whose blocks overlap: the collector is on afterwards."""
    import threading

    gc.enable()
    inside = threading.Barrier(8)
    leave = threading.Event()

    @gcpause.paused()
    def work(index: int) -> None:
        inside.wait(timeout=10)
        assert not gc.isenabled()
        if index % 2:
            leave.wait(timeout=10)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    leave.set()
    for thread in threads:
        thread.join(timeout=10)
    assert gc.isenabled()
