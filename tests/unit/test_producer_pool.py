"""broker_pool_limit: the producer's pool of broker connections."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from celeriac import Celery
from celeriac.app.producer import ConnectionPool
from celeriac.transports.memory import MemoryTransport


class Counted:
    """A factory of memory transports that records what was made and closed."""

    def __init__(self) -> None:
        self.made: list[MemoryTransport] = []
        self.closed: list[MemoryTransport] = []

    def __call__(self) -> MemoryTransport:
        made = MemoryTransport("memory://pool-test")
        real_close = made.close

        def close() -> None:
            self.closed.append(made)
            real_close()

        made.close = close  # type: ignore[method-assign]
        self.made.append(made)
        return made


def test_one_thread_reuses_one_connection() -> None:
    factory = Counted()
    pool = ConnectionPool(factory, 10)
    for _ in range(5):
        with pool.acquire():
            pass
    assert len(factory.made) == 1
    assert factory.closed == []
    pool.close()
    assert factory.closed == factory.made


def test_no_pool_opens_and_closes_a_connection_per_use() -> None:
    for limit in (0, None):
        factory = Counted()
        pool = ConnectionPool(factory, limit)
        for _ in range(3):
            with pool.acquire():
                pass
        assert len(factory.made) == 3
        assert factory.closed == factory.made


def test_threads_never_hold_more_than_the_limit() -> None:
    factory = Counted()
    pool = ConnectionPool(factory, 2)
    inside = threading.Semaphore(0)
    release = threading.Event()
    peak: list[int] = []

    def use() -> None:
        with pool.acquire():
            peak.append(pool.in_use)
            inside.release()
            release.wait(10)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert inside.acquire(timeout=10) and inside.acquire(timeout=10)
    assert not inside.acquire(timeout=0.2)  # the third thread waits for a connection
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(factory.made) == 2
    assert max(peak) == 2 and len(peak) == 4


def test_a_failed_connect_frees_its_place() -> None:
    calls: list[int] = []

    def make() -> Any:
        calls.append(1)
        raise ConnectionError("broker down")

    pool = ConnectionPool(make, 1)
    for _ in range(2):  # the second attempt does not wait for the failed one's place
        with pytest.raises(ConnectionError), pool.acquire():
            pass
    assert len(calls) == 2 and pool.in_use == 0


def test_close_while_in_use_closes_on_give_back() -> None:
    factory = Counted()
    pool = ConnectionPool(factory, 3)
    with pool.acquire():
        pool.close()
        assert factory.closed == []
    assert factory.closed == factory.made


def test_app_reads_broker_pool_limit() -> None:
    app = Celery("pooled", broker="memory://pool-app", set_as_current=False)
    app.conf.broker_pool_limit = 3
    assert app.producer.pool.limit == 3
    app.close()


def test_a_forked_child_makes_its_own_connections() -> None:
    factory = Counted()
    pool = ConnectionPool(factory, 2)
    with pool.acquire() as parents:
        pass
    pid = os.fork()
    if pid == 0:  # the child: a connection of its own, the parent's left alone
        with pool.acquire() as childs:
            ok = childs is not parents and factory.closed == []
        os._exit(0 if ok and len(factory.made) == 2 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with pool.acquire() as again:
        assert again is parents


def test_cached_pid_is_the_childs_own_after_fork() -> None:
    from celeriac.utils import forksafe

    assert forksafe.pid() == os.getpid()
    pid = os.fork()
    if pid == 0:
        os._exit(0 if forksafe.pid() == os.getpid() != os.getppid() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert forksafe.pid() == os.getpid()
