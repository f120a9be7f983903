"""The beat lease seam, run unchanged on every lease: the embedded SQLite file, Redis,
PostgreSQL and memory://. One owner at a time; renewal; takeover after expiry; release."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.beat.lease import BeatLease
from celeriac.beat.lease_stores import MemoryLease, PostgresLease, RedisLease, SQLiteLease
from tests.servers import (
    delete_redis_keys,
    redis_namespace,
    require_postgres,
    run_database,
)

REDIS_DB = 10  # the worker tests' broker DB; every key here is under this test's prefix


def _make(kind: str, tmp_path: Path) -> tuple[BeatLease, BeatLease]:
    name = f"proj-{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        return SQLiteLease(str(tmp_path / "b.sqlite"), name), SQLiteLease(
            str(tmp_path / "b.sqlite"), name
        )
    if kind == "redis":
        prefix = f"celeriac-lease-{os.getpid()}-"
        url = redis_namespace(REDIS_DB, prefix + "*")
        return RedisLease(url, name, prefix), RedisLease(url, name, prefix)
    if kind == "postgres":
        require_postgres()
        url = run_database("postgres")
        return PostgresLease(url, name), PostgresLease(url, name)
    return MemoryLease("lease-test", name), MemoryLease("lease-test", name)


@pytest.fixture(params=["sqlite", "redis", "postgres", "memory"])
def leases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BeatLease, BeatLease]]:
    first, second = _make(request.param, tmp_path)
    yield first, second
    first.release("a")
    second.release("b")
    first.close()
    second.close()
    if request.param == "redis":
        delete_redis_keys(REDIS_DB, f"celeriac-lease-{os.getpid()}-*")


def test_one_owner_at_a_time(leases: tuple[BeatLease, BeatLease]) -> None:
    a, b = leases
    assert a.holder() is None
    assert a.acquire("a", 5.0)
    assert not b.acquire("b", 5.0)
    assert a.acquire("a", 5.0)  # renewed
    assert b.holder() == "a"


def test_expired_lease_is_taken_over(leases: tuple[BeatLease, BeatLease]) -> None:
    a, b = leases
    assert a.acquire("a", 0.3)
    assert not b.acquire("b", 0.3)
    time.sleep(0.4)  # let the lease's time to live pass (what is tested is the expiry)
    assert b.acquire("b", 5.0)
    assert not a.acquire("a", 5.0)  # the old holder learns it lost the lease
    assert a.holder() == "b"


def test_release_hands_over_at_once(leases: tuple[BeatLease, BeatLease]) -> None:
    a, b = leases
    assert a.acquire("a", 30.0)
    b.release("a-impostor")  # only the holder can release
    assert not b.acquire("b", 30.0)
    a.release("a")
    assert b.acquire("b", 30.0)


def test_racing_beats_get_one_lease(leases: tuple[BeatLease, BeatLease]) -> None:
    a, b = leases
    won: list[str] = []
    barrier = threading.Barrier(2)

    def race(lease: BeatLease, owner: str) -> None:
        barrier.wait()
        for _ in range(20):
            if lease.acquire(owner, 30.0):
                won.append(owner)
                return

    threads = [threading.Thread(target=race, args=(x, o)) for x, o in ((a, "a"), (b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(won) == 1
