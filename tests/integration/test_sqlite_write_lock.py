"""SQLite files every process of a worker writes to (the result store, the cluster store)
when another connection holds the write lock: a write refused the lock tries again in short
steps of its own (SQLite's busy handler sleeps 1, 2, 5, 10... ms at a time, so one process
kept losing the lock to another), then writes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from celeriac import Celery, states
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.drivers import sqlite as sqlite_driver
from celeriac.extras.cluster_store import SQLiteClusterStore


def _single(backend: SQLiteBackend) -> None:
    backend.mark_as_done("t-1", 1)


def _batch(backend: SQLiteBackend) -> None:
    assert backend.open_write_batch()
    with backend.deferring():
        backend.mark_as_done("t-1", 1)
        backend.mark_as_done("t-2", 2)
    backend.flush_writes(close=True)


def _refused_then_released(
    path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[], object]
) -> list[float]:
    """Run ``write`` while another connection holds ``path``'s write lock, released once the
    write has come back to ``retry_locked`` 20 times; the waits it asked for."""
    retries: list[float] = []
    real_sleep = sqlite_driver.time.sleep
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process writing

    def sleep(seconds: float) -> None:
        retries.append(seconds)
        if len(retries) == 20:
            holder.execute("COMMIT")
        real_sleep(seconds)

    monkeypatch.setattr(sqlite_driver.time, "sleep", sleep)
    writer = threading.Thread(target=write)
    writer.start()
    writer.join(30)
    assert not writer.is_alive()
    holder.close()
    assert len(retries) >= 20  # SQLite's own busy handler never returned to Python
    assert max(retries) <= 0.0075  # steps of at most 5 ms (with jitter)
    return retries


@pytest.mark.parametrize("store", [_single, _batch], ids=["single", "batch"])
def test_a_store_refused_the_lock_retries_then_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Callable[[SQLiteBackend], None]
) -> None:
    path = tmp_path / "results.sqlite"
    app = Celery("lock", broker="memory://", backend=f"db+sqlite:///{path}")
    backend = app.backend
    assert isinstance(backend, SQLiteBackend)
    backend.open()  # the tables exist
    _refused_then_released(path, monkeypatch, lambda: store(backend))
    reader = Celery("lock", broker="memory://", backend=f"db+sqlite:///{path}").backend
    assert reader.get_task_meta("t-1")["status"] == states.SUCCESS
    backend.close()


def test_a_cluster_store_write_refused_the_lock_retries_then_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "broker.sqlite"
    store = SQLiteClusterStore(str(path))
    store.add_revoked(["before"], ttl=60)  # the tables exist
    _refused_then_released(path, monkeypatch, lambda: store.add_revoked(["t-1"], ttl=60))
    reader = SQLiteClusterStore(str(path))
    assert set(reader.revoked()) == {"before", "t-1"}
    reader.close()
    store.close()
