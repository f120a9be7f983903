"""State shared by every worker of a cluster: rate-limit token buckets and revoked task ids.

Beyond Celery. A :class:`ClusterStore` holds (1) token buckets for tasks whose rate limit is
cluster-wide (``rate_limit_scope='cluster'``), so ten workers together run ``10/m`` tasks at 10
per minute, and (2) revoked task ids with a time to live, so a worker that was offline (or
restarted without ``--statedb``) when ``revoke`` was broadcast still honours it.

Implementations: the embedded SQLite file (the default with the SQLite broker; tables live next
to the broker's), Redis through redis-py with a Lua token bucket (atomic, one round trip), and
process memory (the ``memory://`` broker). ``worker_cluster_store`` picks one by URL; unset,
it follows the broker URL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from celeriac.app.cluster import ClusterStore
from celeriac.drivers.sqlite import immediate, retry_locked
from celeriac.drivers.urls import mask_url
from celeriac.execution.hooks import Hook
from celeriac.transports.sqlite.transport import path_from_url

if TYPE_CHECKING:
    from celeriac.app.base import Celery


def _refill(tokens: float, last: float, now: float, rate: float, capacity: float) -> float:
    return min(capacity, tokens + max(0.0, now - last) * rate)


class MemoryClusterStore(ClusterStore):
    """Per process, shared by name: what a ``memory://`` broker's workers see."""

    _shared: dict[str, tuple[threading.Lock, dict[str, Any]]] = {}
    _shared_lock = threading.Lock()

    def __init__(self, name: str = "") -> None:
        with self._shared_lock:
            self._lock, self._data = self._shared.setdefault(
                name, (threading.Lock(), {"buckets": {}, "revoked": {}})
            )

    def acquire(self, key: str, rate: float, capacity: float = 1.0) -> float:
        now = time.time()
        with self._lock:
            tokens, last = self._data["buckets"].get(key, (capacity, now))
            tokens = _refill(tokens, last, now, rate, capacity)
            if tokens >= 1.0:
                self._data["buckets"][key] = (tokens - 1.0, now)
                return 0.0
            self._data["buckets"][key] = (tokens, now)
            return (1.0 - tokens) / rate

    def add_revoked(self, task_ids: Iterable[str], ttl: float) -> None:
        now = time.time()
        with self._lock:
            for task_id in task_ids:
                self._data["revoked"][task_id] = (now, now + ttl)

    def revoked(self) -> dict[str, float]:
        now = time.time()
        with self._lock:
            table = self._data["revoked"]
            for task_id in [k for k, (_, exp) in table.items() if exp <= now]:
                del table[task_id]
            return {k: at for k, (at, _) in table.items()}


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS celeriac_rate_buckets (
    key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS celeriac_revoked (
    task_id TEXT PRIMARY KEY, revoked_at REAL NOT NULL, expires REAL NOT NULL);
"""


class SQLiteClusterStore(ClusterStore):
    """Two small tables in a SQLite file (by default the embedded broker's own file)."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # timeout=0: a refused lock comes back to retry_locked (short steps), not to
            # SQLite's busy handler (1, 2, 5, 10 ms sleeps) while every worker process writes.
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            retry_locked(lambda: conn.executescript(_SQLITE_SCHEMA), self.timeout)
            self._local.conn = conn
        return conn

    def _transaction(self, body: Any) -> Any:
        conn = self._conn()
        return retry_locked(lambda: immediate(conn, lambda: body(conn)), self.timeout)

    def acquire(self, key: str, rate: float, capacity: float = 1.0) -> float:
        def take(conn: sqlite3.Connection) -> float:
            now = time.time()
            row = conn.execute(
                "SELECT tokens, updated FROM celeriac_rate_buckets WHERE key = ?", (key,)
            ).fetchone()
            tokens = capacity if row is None else _refill(row[0], row[1], now, rate, capacity)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
            if not wait:
                tokens -= 1.0
            conn.execute(
                "INSERT OR REPLACE INTO celeriac_rate_buckets (key, tokens, updated) "
                "VALUES (?, ?, ?)",
                (key, tokens, now),
            )
            return wait

        result: float = self._transaction(take)
        return result

    def add_revoked(self, task_ids: Iterable[str], ttl: float) -> None:
        now = time.time()
        rows = [(task_id, now, now + ttl) for task_id in task_ids]

        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT OR REPLACE INTO celeriac_revoked VALUES (?, ?, ?)", rows)
            conn.execute("DELETE FROM celeriac_revoked WHERE expires <= ?", (now,))

        self._transaction(insert)

    def revoked(self) -> dict[str, float]:
        query = "SELECT task_id, revoked_at FROM celeriac_revoked WHERE expires > ?"
        rows = retry_locked(
            lambda: self._conn().execute(query, (time.time(),)).fetchall(), self.timeout
        )
        return {task_id: at for task_id, at in rows}

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# KEYS[1] bucket; ARGV rate, capacity. Redis TIME keeps every worker on one clock.
_REDIS_TOKEN_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or capacity
local updated = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity / rate + 1) * 1000))
return tostring(wait)
"""


class RedisClusterStore(ClusterStore):
    """redis-py: a Lua token bucket per key; revoked ids in a sorted set scored by expiry."""

    BUCKET_PREFIX = "celeriac:ratelimit:"
    REVOKED_KEY = "celeriac:revoked"

    def __init__(self, url: str, keyprefix: str = "") -> None:
        import redis  # lazy: redis-py is the optional extra celeriac[redis]

        self.url = url
        self.client = redis.Redis.from_url(url)
        self._bucket = self.client.register_script(_REDIS_TOKEN_BUCKET)
        # The broker's ``global_keyprefix`` namespaces these keys too (apps sharing one DB).
        self.bucket_prefix = keyprefix + self.BUCKET_PREFIX
        self.revoked_key = keyprefix + self.REVOKED_KEY

    def acquire(self, key: str, rate: float, capacity: float = 1.0) -> float:
        wait = self._bucket(keys=[self.bucket_prefix + key], args=[rate, capacity])
        return float(wait)

    def add_revoked(self, task_ids: Iterable[str], ttl: float) -> None:
        now = time.time()
        ids = list(task_ids)
        if not ids:
            return
        pipe = self.client.pipeline()
        pipe.zadd(self.revoked_key, {task_id: now + ttl for task_id in ids})
        pipe.zremrangebyscore(self.revoked_key, "-inf", now)
        pipe.execute()

    def revoked(self) -> dict[str, float]:
        now = time.time()
        rows: list[Any] = list(self.client.zrangebyscore(self.revoked_key, now, "+inf"))
        # Only the expiry is stored; report "now" as the revoke time (used for local expiry).
        return {(k.decode() if isinstance(k, bytes) else str(k)): now for k in rows}

    def close(self) -> None:
        self.client.close()


def store_from_url(url: str, redis_keyprefix: str = "") -> ClusterStore:
    """``redis://...``, ``sqlite:///path`` or ``memory://name`` -> a store."""
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "redis+socket", "unix"):
        return RedisClusterStore(url, redis_keyprefix)
    if scheme in ("sqlite", "sqla+sqlite", "db+sqlite"):
        return SQLiteClusterStore(path_from_url(url.replace("db+", "").replace("sqla+", "")))
    if scheme == "memory":
        return MemoryClusterStore(url.partition("://")[2].strip("/"))
    raise ValueError(
        f"worker_cluster_store: unsupported URL {mask_url(url)!r} (use redis://, sqlite:/// "
        "or memory://)"
    )


def store_for_app(app: Celery) -> ClusterStore | None:
    """``worker_cluster_store`` if set, else a store on the broker itself (None for AMQP)."""
    conf = app.conf
    url = conf.worker_cluster_store
    keyprefix = ""
    if not url:
        broker = conf.broker_url
        if not broker:
            return SQLiteClusterStore(conf.sqlite_broker_path)
        url = str(broker).split(";")[0]
        keyprefix = str((conf.broker_transport_options or {}).get("global_keyprefix") or "")
    try:
        return store_from_url(str(url), keyprefix)
    except ValueError:
        if conf.worker_cluster_store:
            raise
        return None


class ClusterStoreHook(Hook):
    """The app hook that gives workers and clients the store :func:`store_for_app` picks
    (:class:`celeriac.app.cluster.ProvidesClusterStore`); it does nothing around a task run."""

    def cluster_store(self, app: Celery) -> ClusterStore | None:
        return store_for_app(app)


__all__ = [
    "ClusterStore",
    "ClusterStoreHook",
    "MemoryClusterStore",
    "RedisClusterStore",
    "SQLiteClusterStore",
    "store_for_app",
    "store_from_url",
]
