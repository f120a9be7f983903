"""The beat lease on each broker: the embedded SQLite file, Redis, PostgreSQL, memory://.

:func:`lease_for` picks the one of the app's broker (a literal table); RabbitMQ has none yet,
so a beat there runs without a lease and says so.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

from celeriac.beat.lease import BeatLease, lease_name
from celeriac.drivers.sqlite import immediate, retry_locked
from celeriac.transports.sqlite.transport import path_from_url

if TYPE_CHECKING:
    from celeriac.app.base import Celery

TABLE = "celeriac_beat_lease"


class SQLiteLease(BeatLease):
    """A row in a table of the broker's SQLite file, taken in one write transaction."""

    def __init__(self, path: str, name: str) -> None:
        super().__init__(name)
        self.path = path
        # One connection, used by one thread at a time (the beat's), under a lock.
        self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        retry_locked(
            lambda: self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} "
                "(name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL)"
            ),
            10.0,
        )

    def acquire(self, owner: str, ttl: float) -> bool:
        def take() -> bool:
            now = time.time()
            row = self._db.execute(
                f"SELECT owner, expires FROM {TABLE} WHERE name = ?", (self.name,)
            ).fetchone()
            free = row is None or row[0] == owner or row[1] <= now
            if free:
                self._db.execute(
                    f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?)",
                    (self.name, owner, now + ttl),
                )
            return free

        with self._lock:
            return retry_locked(lambda: immediate(self._db, take), 10.0)

    def release(self, owner: str) -> None:
        with self._lock:
            retry_locked(
                lambda: self._db.execute(
                    f"DELETE FROM {TABLE} WHERE name = ? AND owner = ?", (self.name, owner)
                ),
                10.0,
            )

    def holder(self) -> str | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT owner FROM {TABLE} WHERE name = ? AND expires > ?",
                (self.name, time.time()),
            ).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._db.close()


_REDIS_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_REDIS_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLease(BeatLease):
    """A key with the owner as value and the time to live as its expiry (one Lua script)."""

    KEY = "celeriac:beat:lease:"

    def __init__(self, url: str, name: str, keyprefix: str = "") -> None:
        import redis  # lazy: redis-py is the optional extra celeriac[redis]

        super().__init__(name)
        self.client = redis.Redis.from_url(url)
        self.key = keyprefix + self.KEY + name
        self._acquire = self.client.register_script(_REDIS_ACQUIRE)
        self._release = self.client.register_script(_REDIS_RELEASE)

    def acquire(self, owner: str, ttl: float) -> bool:
        return bool(self._acquire(keys=[self.key], args=[owner, max(int(ttl * 1000), 1)]))

    def release(self, owner: str) -> None:
        self._release(keys=[self.key], args=[owner])

    def holder(self) -> str | None:
        value: Any = self.client.get(self.key)
        return None if value is None else value.decode()

    def close(self) -> None:
        self.client.close()


class PostgresLease(BeatLease):
    """A row taken with one upsert that only overwrites an expired or own lease."""

    def __init__(self, url: str, name: str) -> None:
        import psycopg  # lazy: psycopg is the optional extra celeriac[postgres]

        super().__init__(name)
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} "
            "(name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires TIMESTAMPTZ NOT NULL)"
        )

    def acquire(self, owner: str, ttl: float) -> bool:
        row = self._conn.execute(
            f"INSERT INTO {TABLE} AS l VALUES (%s, %s, clock_timestamp() + %s * interval '1s') "
            "ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires = EXCLUDED.expires "
            "WHERE l.owner = EXCLUDED.owner OR l.expires <= clock_timestamp() RETURNING owner",
            (self.name, owner, ttl),
        ).fetchone()
        return row is not None

    def release(self, owner: str) -> None:
        self._conn.execute(
            f"DELETE FROM {TABLE} WHERE name = %s AND owner = %s", (self.name, owner)
        )

    def holder(self) -> str | None:
        row = self._conn.execute(
            f"SELECT owner FROM {TABLE} WHERE name = %s AND expires > clock_timestamp()",
            (self.name,),
        ).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._conn.close()


_MEMORY: dict[str, tuple[str, float]] = {}
_MEMORY_LOCK = threading.Lock()


class MemoryLease(BeatLease):
    """In this process (memory:// brokers: beats in threads of one process)."""

    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(name)
        self.key = f"{namespace}/{name}"

    def acquire(self, owner: str, ttl: float) -> bool:
        with _MEMORY_LOCK:
            held = _MEMORY.get(self.key)
            now = time.monotonic()
            if held is None or held[0] == owner or held[1] <= now:
                _MEMORY[self.key] = (owner, now + ttl)
                return True
            return False

    def release(self, owner: str) -> None:
        with _MEMORY_LOCK:
            if _MEMORY.get(self.key, ("", 0.0))[0] == owner:
                del _MEMORY[self.key]

    def holder(self) -> str | None:
        with _MEMORY_LOCK:
            held = _MEMORY.get(self.key)
            return held[0] if held is not None and held[1] > time.monotonic() else None

    def close(self) -> None:
        """Nothing to close: the lease lives in this process."""


def lease_for(app: Celery) -> BeatLease | None:
    """The lease on the app's broker; None where there is none (RabbitMQ)."""
    conf = app.conf
    name = lease_name(app)
    url = str(conf.broker_url or "").split(";")[0]
    if not url:
        return SQLiteLease(conf.sqlite_broker_path, name)
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        return SQLiteLease(path_from_url(url), name)
    if scheme in ("redis", "rediss", "redis+socket", "unix"):
        prefix = str((conf.broker_transport_options or {}).get("global_keyprefix") or "")
        return RedisLease(url, name, prefix)
    if scheme in ("postgres", "postgresql"):
        return PostgresLease(url, name)
    if scheme == "memory":
        return MemoryLease(url.partition("://")[2], name)
    return None


__all__ = ["MemoryLease", "PostgresLease", "RedisLease", "SQLiteLease", "lease_for"]
