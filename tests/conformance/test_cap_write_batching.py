"""The ``WriteBatching`` capability: a thread's final result writes held and sent together."""

from __future__ import annotations

import pytest

from celeriac import states
from celeriac.backends.capabilities import WriteBatching, write_batching
from tests.conformance.backend_kinds import Store, backend, kind_ids, kinds_where, store

__all__ = ["backend", "store"]  # the fixtures are used by name below

CLAIMERS = kinds_where(lambda cls: issubclass(cls, WriteBatching))
on_claimers = pytest.mark.parametrize("store", CLAIMERS, indirect=True)


def test_the_stores_that_claim_it() -> None:
    assert kind_ids(CLAIMERS) == {
        "sqlite",
        "redis",
        "redis-plain",
        "db+postgresql",
        "db+mysql+pymysql",
    }


@on_claimers
def test_writes_inside_deferring_wait_for_flush(store: Store) -> None:
    backend = store.connect()
    assert isinstance(backend, WriteBatching)
    assert write_batching(backend) is backend  # the worker's cached form of the same question
    assert backend.open_write_batch()
    with backend.deferring():
        for n in range(3):
            backend.mark_as_done(f"t-{n}", n)
    assert backend.pending_writes() == 3
    assert store.connect().get_task_meta("t-0")["status"] == states.PENDING
    backend.mark_as_done("now", 1)  # outside deferring: at once
    assert store.connect().get_task_meta("now")["status"] == states.SUCCESS
    backend.flush_writes()
    assert backend.pending_writes() == 0
    for n in range(3):
        meta = store.connect().get_task_meta(f"t-{n}")
        assert (meta["status"], meta["result"]) == (states.SUCCESS, n)


@on_claimers
def test_flush_with_close_ends_the_batch(store: Store) -> None:
    backend = store.connect()
    assert isinstance(backend, WriteBatching)
    assert backend.open_write_batch()
    with backend.deferring():
        backend.mark_as_done("held", 1)
    backend.flush_writes(close=True)
    assert store.connect().get_task_meta("held")["status"] == states.SUCCESS
    with backend.deferring():  # no batch open: written at once
        backend.mark_as_done("after", 2)
    assert backend.pending_writes() == 0
    assert store.connect().get_task_meta("after")["status"] == states.SUCCESS


@on_claimers
def test_held_writes_keep_their_guard_and_order(store: Store) -> None:
    backend = store.connect()
    assert isinstance(backend, WriteBatching)
    backend.mark_as_done("done", 1)
    assert backend.open_write_batch()
    with backend.deferring():
        backend.store_result("done", ValueError("late"), states.FAILURE)  # SUCCESS stays
        backend.store_result("twice", None, states.RETRY)
        backend.mark_as_done("twice", 2)  # the same task twice in one batch: the last wins
    backend.flush_writes(close=True)
    reader = store.connect()
    assert (reader.get_task_meta("done")["status"], reader.get_task_meta("done")["result"]) == (
        states.SUCCESS,
        1,
    )
    assert reader.get_task_meta("twice")["result"] == 2
