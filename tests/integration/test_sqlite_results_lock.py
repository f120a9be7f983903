"""The SQLite result store when another connection holds the file's write lock: a worker's
processes all write results to one file, and a store refused the lock tries again in short
steps of its own (SQLite's busy handler sleeps 1, 2, 5, 10... ms at a time, so one process
kept losing the lock to another), then stores."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from celeriac import Celery, states
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.drivers import sqlite as sqlite_driver


def _single(backend: SQLiteBackend) -> None:
    backend.mark_as_done("t-1", 1)


def _batch(backend: SQLiteBackend) -> None:
    assert backend.open_write_batch()
    with backend.deferring():
        backend.mark_as_done("t-1", 1)
        backend.mark_as_done("t-2", 2)
    backend.flush_writes(close=True)


@pytest.mark.parametrize("store", [_single, _batch], ids=["single", "batch"])
def test_a_store_refused_the_lock_retries_then_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Callable[[SQLiteBackend], None]
) -> None:
    path = tmp_path / "results.sqlite"
    app = Celery("lock", broker="memory://", backend=f"db+sqlite:///{path}")
    backend = app.backend
    assert isinstance(backend, SQLiteBackend)
    backend.open()  # the tables exist
    retries: list[float] = []
    real_sleep = sqlite_driver.time.sleep
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process writing

    def sleep(seconds: float) -> None:
        retries.append(seconds)
        if len(retries) == 20:  # the store has come back to retry_locked again and again
            holder.execute("COMMIT")
        real_sleep(seconds)

    monkeypatch.setattr(sqlite_driver.time, "sleep", sleep)
    writer = threading.Thread(target=store, args=(backend,))
    writer.start()
    writer.join(30)
    assert not writer.is_alive()
    holder.close()
    assert len(retries) >= 20  # SQLite's own busy handler never returned to Python
    assert max(retries) <= 0.0075  # steps of at most 5 ms (with jitter)
    reader = Celery("lock", broker="memory://", backend=f"db+sqlite:///{path}").backend
    assert reader.get_task_meta("t-1")["status"] == states.SUCCESS
    backend.close()
