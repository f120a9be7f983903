"""The schedule store on each database: the embedded SQLite file, Redis, PostgreSQL, and
memory:// (in-process). :func:`store_for` picks the one of ``beat_schedule_store``."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celeriac.beat.store import ScheduleStore, StoredEntry, entry_from_row
from celeriac.drivers.sqlite import retry_locked
from celeriac.drivers.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured
from celeriac.transports.sqlite.transport import path_from_url

if TYPE_CHECKING:
    from celeriac.app.base import Celery

TABLE = "celeriac_beat_schedule"
_COLUMNS = "name, definition, paused, run_now, last_run_at, total_run_count"


class SQLiteScheduleStore(ScheduleStore):
    """A table in a SQLite file (by default the embedded broker's)."""

    def __init__(self, path: str, name: str) -> None:
        super().__init__(name)
        self.path = path
        self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._run(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (app TEXT NOT NULL, name TEXT NOT NULL, "
            "definition TEXT NOT NULL, paused INTEGER NOT NULL DEFAULT 0, "
            "run_now INTEGER NOT NULL DEFAULT 0, last_run_at TEXT, "
            "total_run_count INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (app, name))"
        )

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return retry_locked(lambda: self._db.execute(sql, params), 10.0)

    def entries(self) -> dict[str, StoredEntry]:
        rows = self._run(f"SELECT {_COLUMNS} FROM {TABLE} WHERE app = ?", (self.name,)).fetchall()
        return {row[0]: entry_from_row(*row) for row in rows}

    def _put(self, name: str, definition: str) -> None:
        self._run(
            f"INSERT INTO {TABLE} (app, name, definition) VALUES (?, ?, ?) "
            "ON CONFLICT (app, name) DO UPDATE SET definition = excluded.definition",
            (self.name, name, definition),
        )

    def _delete(self, name: str) -> bool:
        cur = self._run(f"DELETE FROM {TABLE} WHERE app = ? AND name = ?", (self.name, name))
        return cur.rowcount > 0

    def _flag(self, name: str, flag: str, value: bool) -> bool:
        column = {"paused": "paused", "run_now": "run_now"}[flag]
        cur = self._run(
            f"UPDATE {TABLE} SET {column} = ? WHERE app = ? AND name = ?",
            (int(value), self.name, name),
        )
        return cur.rowcount > 0

    def record_run(self, name: str, last_run_at: datetime, total_run_count: int) -> None:
        self._run(
            f"UPDATE {TABLE} SET last_run_at = ?, total_run_count = ?, run_now = 0 "
            "WHERE app = ? AND name = ?",
            (last_run_at.isoformat(), total_run_count, self.name, name),
        )

    def close(self) -> None:
        self._db.close()


class PostgresScheduleStore(ScheduleStore):
    """The same table in PostgreSQL (the PostgreSQL broker's database, or any URL)."""

    def __init__(self, url: str, name: str) -> None:
        import psycopg  # lazy: psycopg is the optional extra celeriac[postgres]

        super().__init__(name)
        self._conn = psycopg.connect(url, autocommit=True)
        self._lock = threading.Lock()
        self._run(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (app TEXT NOT NULL, name TEXT NOT NULL, "
            "definition TEXT NOT NULL, paused BOOLEAN NOT NULL DEFAULT FALSE, "
            "run_now BOOLEAN NOT NULL DEFAULT FALSE, last_run_at TEXT, "
            "total_run_count INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (app, name))"
        )

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            return self._conn.execute(sql.replace("?", "%s"), params)

    def entries(self) -> dict[str, StoredEntry]:
        rows = self._run(f"SELECT {_COLUMNS} FROM {TABLE} WHERE app = ?", (self.name,)).fetchall()
        return {row[0]: entry_from_row(*row) for row in rows}

    def _put(self, name: str, definition: str) -> None:
        self._run(
            f"INSERT INTO {TABLE} (app, name, definition) VALUES (?, ?, ?) "
            "ON CONFLICT (app, name) DO UPDATE SET definition = EXCLUDED.definition",
            (self.name, name, definition),
        )

    def _delete(self, name: str) -> bool:
        cur = self._run(f"DELETE FROM {TABLE} WHERE app = ? AND name = ?", (self.name, name))
        return bool(cur.rowcount)

    def _flag(self, name: str, flag: str, value: bool) -> bool:
        column = {"paused": "paused", "run_now": "run_now"}[flag]
        cur = self._run(
            f"UPDATE {TABLE} SET {column} = ? WHERE app = ? AND name = ?",
            (value, self.name, name),
        )
        return bool(cur.rowcount)

    def record_run(self, name: str, last_run_at: datetime, total_run_count: int) -> None:
        self._run(
            f"UPDATE {TABLE} SET last_run_at = ?, total_run_count = ?, run_now = FALSE "
            "WHERE app = ? AND name = ?",
            (last_run_at.isoformat(), total_run_count, self.name, name),
        )

    def close(self) -> None:
        self._conn.close()


class RedisScheduleStore(ScheduleStore):
    """Hashes under ``celeriac:beat:schedule:<app>``: definitions, runs, paused, run-now
    (one hash each, so a pause and a recorded run never overwrite each other)."""

    def __init__(self, url: str, name: str, keyprefix: str = "") -> None:
        import redis  # lazy: redis-py is the optional extra celeriac[redis]

        super().__init__(name)
        self.client = redis.Redis.from_url(url, decode_responses=True)
        base = f"{keyprefix}celeriac:beat:schedule:{name}"
        self.keys = {part: f"{base}:{part}" for part in ("defs", "runs", "paused", "run_now")}

    def entries(self) -> dict[str, StoredEntry]:
        pipe = self.client.pipeline()
        for key in self.keys.values():
            pipe.hgetall(key)
        defs, runs, paused, run_now = pipe.execute()
        found = {}
        for name, definition in defs.items():
            run = json.loads(runs[name]) if name in runs else {}
            found[name] = entry_from_row(
                name,
                definition,
                name in paused,
                name in run_now,
                run.get("last_run_at"),
                run.get("total_run_count", 0),
            )
        return found

    def _put(self, name: str, definition: str) -> None:
        self.client.hset(self.keys["defs"], name, definition)

    def _delete(self, name: str) -> bool:
        pipe = self.client.pipeline()
        for key in self.keys.values():
            pipe.hdel(key, name)
        return bool(pipe.execute()[0])

    def _flag(self, name: str, flag: str, value: bool) -> bool:
        if not self.client.hexists(self.keys["defs"], name):
            return False
        if value:
            self.client.hset(self.keys[flag], name, "1")
        else:
            self.client.hdel(self.keys[flag], name)
        return True

    def record_run(self, name: str, last_run_at: datetime, total_run_count: int) -> None:
        run = {"last_run_at": last_run_at.isoformat(), "total_run_count": total_run_count}
        pipe = self.client.pipeline()
        pipe.hset(self.keys["runs"], name, json.dumps(run))
        pipe.hdel(self.keys["run_now"], name)
        pipe.execute()

    def close(self) -> None:
        self.client.close()


_MEMORY: dict[str, dict[str, StoredEntry]] = {}
_MEMORY_LOCK = threading.Lock()


class MemoryScheduleStore(ScheduleStore):
    """In this process (memory:// brokers and tests)."""

    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(name)
        self.key = f"{namespace}/{name}"

    def _table(self) -> dict[str, StoredEntry]:
        return _MEMORY.setdefault(self.key, {})

    def entries(self) -> dict[str, StoredEntry]:
        with _MEMORY_LOCK:
            return {
                n: entry_from_row(
                    n,
                    e.definition(),
                    e.paused,
                    e.run_now,
                    e.last_run_at.isoformat() if e.last_run_at else None,
                    e.total_run_count,
                )
                for n, e in self._table().items()
            }

    def _put(self, name: str, definition: str) -> None:
        with _MEMORY_LOCK:
            old = self._table().get(name)
            new = entry_from_row(name, definition, False, False, None, 0)
            if old is not None:
                new.paused, new.run_now = old.paused, old.run_now
                new.last_run_at, new.total_run_count = old.last_run_at, old.total_run_count
            self._table()[name] = new

    def _delete(self, name: str) -> bool:
        with _MEMORY_LOCK:
            return self._table().pop(name, None) is not None

    def _flag(self, name: str, flag: str, value: bool) -> bool:
        with _MEMORY_LOCK:
            entry = self._table().get(name)
            if entry is None:
                return False
            setattr(entry, flag, value)
            return True

    def record_run(self, name: str, last_run_at: datetime, total_run_count: int) -> None:
        with _MEMORY_LOCK:
            entry = self._table().get(name)
            if entry is not None:
                entry.last_run_at, entry.total_run_count = last_run_at, total_run_count
                entry.run_now = False

    def close(self) -> None:
        """Nothing to close: the store lives in this process."""


def store_for(app: Celery) -> ScheduleStore | None:
    """The store ``beat_schedule_store`` names: None (off), ``True`` (on the broker), or a
    ``sqlite:///``, ``redis://``, ``postgresql://`` or ``memory://`` URL."""
    conf = app.conf
    setting = conf.beat_schedule_store
    if not setting:
        return None
    name = app.main or "default"
    prefix = ""
    if setting is True:
        url = str(conf.broker_url or "").split(";")[0]
        if not url:
            return SQLiteScheduleStore(conf.sqlite_broker_path, name)
        prefix = str((conf.broker_transport_options or {}).get("global_keyprefix") or "")
    else:
        url = str(setting)
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        return SQLiteScheduleStore(path_from_url(url), name)
    if scheme in ("redis", "rediss", "redis+socket", "unix"):
        return RedisScheduleStore(url, name, prefix)
    if scheme in ("postgres", "postgresql"):
        return PostgresScheduleStore(url, name)
    if scheme == "memory":
        return MemoryScheduleStore(url.partition("://")[2], name)
    raise ImproperlyConfigured(
        f"beat_schedule_store: {mask_url(url)!r} cannot hold a schedule store; use True (the "
        "broker, not RabbitMQ), or a sqlite:///, redis:// or postgresql:// URL"
    )


__all__ = [
    "MemoryScheduleStore",
    "PostgresScheduleStore",
    "RedisScheduleStore",
    "SQLiteScheduleStore",
    "store_for",
]
