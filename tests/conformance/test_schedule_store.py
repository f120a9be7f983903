"""The schedule store seam, run unchanged on every store: the SQLite file, Redis, PostgreSQL
and memory://. Entries added, changed (runs kept), paused, resumed, asked to run now,
recorded and removed; unknown names named; two apps on one database kept apart."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from celeriac.beat.store import ScheduleStore
from celeriac.beat.store_backends import (
    MemoryScheduleStore,
    PostgresScheduleStore,
    RedisScheduleStore,
    SQLiteScheduleStore,
)
from celeriac.schedules import crontab, solar
from tests.servers import delete_redis_keys, redis_namespace, require_postgres, run_database

REDIS_DB = 10  # the worker tests' broker DB; every key here is under this test's prefix
T0 = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)


def _make(kind: str, tmp_path: Path, app: str) -> ScheduleStore:
    if kind == "sqlite":
        return SQLiteScheduleStore(str(tmp_path / "b.sqlite"), app)
    if kind == "redis":
        prefix = f"celeriac-store-{os.getpid()}-"
        return RedisScheduleStore(redis_namespace(REDIS_DB, prefix + "*"), app, prefix)
    if kind == "postgres":
        require_postgres()
        return PostgresScheduleStore(run_database("postgres"), app)
    return MemoryScheduleStore("store-test", app)


@pytest.fixture(params=["sqlite", "redis", "postgres", "memory"])
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param
    if request.param == "redis":
        delete_redis_keys(REDIS_DB, f"celeriac-store-{os.getpid()}-*")


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[ScheduleStore]:
    store = _make(kind, tmp_path, f"proj-{uuid.uuid4().hex[:8]}")
    yield store
    store.close()


def test_add_list_change_remove(store: ScheduleStore) -> None:
    assert store.entries() == {}
    store.add("every-30", "proj.add", 30, args=(1, 2), options={"queue": "q"})
    store.add("nightly", "proj.report", crontab(minute=30, hour="2-4", day_of_week="mon-fri"))
    store.add("dusk", "proj.lights", solar("dusk_civil", 59.9, 10.7), kwargs={"on": True})
    entries = store.entries()
    assert set(entries) == {"every-30", "nightly", "dusk"}
    every = entries["every-30"]
    assert (every.task, every.args, every.options) == ("proj.add", [1, 2], {"queue": "q"})
    assert every.make_schedule().seconds == 30
    assert entries["nightly"].make_schedule() == crontab(30, "2-4", "mon-fri")
    assert entries["dusk"].make_schedule() == solar("dusk_civil", 59.9, 10.7)
    assert every.last_run_at is None and every.total_run_count == 0

    store.record_run("every-30", T0, 7)
    store.add("every-30", "proj.add", 60, args=(3, 4))  # changed: its runs are kept
    every = store.entries()["every-30"]
    assert (every.args, every.last_run_at, every.total_run_count) == ([3, 4], T0, 7)
    assert every.make_schedule().seconds == 60

    store.remove("dusk")
    assert set(store.entries()) == {"every-30", "nightly"}


def test_pause_resume_run_now(store: ScheduleStore) -> None:
    store.add("e", "proj.add", 10)
    store.pause("e")
    store.run_now("e")
    entry = store.entries()["e"]
    assert entry.paused and entry.run_now
    store.record_run("e", T0, 1)  # the run asked for: the flag is cleared, the pause stays
    entry = store.entries()["e"]
    assert entry.paused and not entry.run_now and entry.total_run_count == 1
    store.resume("e")
    assert not store.entries()["e"].paused


@pytest.mark.parametrize("action", ["remove", "pause", "resume", "run_now"])
def test_unknown_names_are_named(store: ScheduleStore, action: str) -> None:
    store.add("known", "proj.add", 10)
    with pytest.raises(KeyError, match="no schedule entry named 'nope' \\(entries: known\\)"):
        getattr(store, action)("nope")


def test_bad_entries_are_refused(store: ScheduleStore) -> None:
    with pytest.raises(ValueError, match="must be JSON"):
        store.add("e", "proj.add", 10, args=(object(),))
    with pytest.raises(TypeError, match="not a schedule"):
        store.add("e", "proj.add", "often")
    assert store.entries() == {}


def test_apps_on_one_database_keep_apart(kind: str, tmp_path: Path) -> None:
    one, two = _make(kind, tmp_path, "one-" + uuid.uuid4().hex), _make(kind, tmp_path, "two")
    try:
        one.add("e", "one.task", 10)
        assert "e" not in two.entries()
    finally:
        one.close()
        two.close()
