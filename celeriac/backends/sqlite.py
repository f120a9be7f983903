"""SQLite result backend (``db+sqlite:///path``) with the stdlib ``sqlite3`` module.

The tables, columns and value formats are exactly those of Celery 5.7's SQLAlchemy
database backend (``celery_taskmeta`` with the extended columns, ``celery_tasksetmeta``),
so a real Celery and celeriac can share one file. Each store is a single upsert whose
``WHERE`` clause is the SUCCESS write guard, so no read precedes a write.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from celeriac import states
from celeriac.backends import sqlite_chord
from celeriac.backends.base import ResultBackend
from celeriac.backends.capabilities import ChordParts
from celeriac.backends.database.table_layout import (
    BASE_COLUMNS,
    EXTENDED_COLUMNS,
    meta_from_row,
    row_values,
)
from celeriac.backends.held_writes import HeldWrites
from celeriac.backends.helpers import utcnow
from celeriac.drivers.sqlite import (
    SpaceWait,
    cannot_write_text,
    immediate,
    retry_locked,
    unwritable,
)
from celeriac.drivers.wakeup import wakeup_for
from celeriac.exceptions import ImproperlyConfigured, OperationalError
from celeriac.utils import forksafe

if TYPE_CHECKING:
    from celeriac.app.config import Settings

_T = TypeVar("_T")
logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0

# The DDL SQLAlchemy emits for Celery's TaskExtended and TaskSet models, byte for byte.
_TASK_DDL = (
    "CREATE TABLE IF NOT EXISTS {t} (\n\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
    "\n\ttask_id VARCHAR(155), \n\tstatus VARCHAR(50), \n\tresult BLOB, "
    "\n\tdate_done DATETIME, \n\ttraceback TEXT, \n\tchildren BLOB, "
    "\n\tname VARCHAR(155), \n\targs BLOB, \n\tkwargs BLOB, \n\tworker VARCHAR(155), "
    "\n\tretries INTEGER, \n\tqueue VARCHAR(155), \n\tstamps BLOB, \n\tUNIQUE (task_id)\n)"
)
_GROUP_DDL = (
    "CREATE TABLE IF NOT EXISTS {t} (\n\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
    "\n\ttaskset_id VARCHAR(155), \n\tresult BLOB, \n\tdate_done DATETIME, "
    "\n\tUNIQUE (taskset_id)\n)"
)
_INDEX_DDL = "CREATE INDEX IF NOT EXISTS {i} ON {t} (date_done)"

# Connections inherited across fork() are never used or closed by the child (closing
# could disturb the parent's locks); they are parked here instead.
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_inherited: list[sqlite3.Connection] = []


def _quote(name: str) -> str:
    """An SQL identifier; plain names stay bare so the schema text matches SQLAlchemy's."""
    if _PLAIN_NAME.fullmatch(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def format_date(value: datetime | None) -> str | None:
    """Naive UTC text, the way SQLAlchemy's SQLite DateTime stores it."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def path_from_url(url: str) -> str:
    """``db+sqlite:///rel.db`` -> ``rel.db``; ``db+sqlite:////abs.db`` -> ``/abs.db``."""
    path = urlsplit(url).path
    path = path[1:] if path.startswith("/") else path
    return path or ":memory:"


class SQLiteBackend(ResultBackend):
    """Results in an SQLite file laid out like Celery's database backend."""

    schemes: ClassVar[tuple[str, ...]] = ("db+sqlite",)

    def __init__(self, url: str, conf: Settings) -> None:
        super().__init__(url, conf)
        self.path = path_from_url(url)
        names = conf.database_table_names or {}
        self.task_table: str = names.get("task") or "celery_taskmeta"
        self.group_table: str = names.get("group") or "celery_tasksetmeta"
        self._lock = threading.Lock()
        forksafe.guard(self)
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._columns: tuple[str, ...] = ()
        self._sql: dict[str, str] = {}
        # A store in any process of this user wakes the waiters of every process at once.
        self._notifier = wakeup_for(self.path)
        self._seen = threading.local()
        self._held: HeldWrites[dict[str, Any]] = HeldWrites()  # WriteBatching: rows' values
        # A write waits out a full disk: a task's result is stored before its message is acked.
        self._space = SpaceWait(self.path, logger)

    # -- connection ----------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        """This process's connection (callers hold ``self._lock``)."""
        if self._conn is not None and self._pid == forksafe.pid():
            return self._conn
        if self._conn is not None:
            _inherited.append(self._conn)
        problem = unwritable(self.path)
        if problem is not None:
            raise ImproperlyConfigured(f"Cannot open the SQLite result store: {problem}")
        try:
            # timeout=0: SQLite's own busy handler sleeps 1, 2, 5, 10... ms at a time, and the
            # worker's processes all write here; retry_locked waits a tenth of a millisecond.
            conn = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
            retry_locked(lambda: self._prepare(conn), BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            problem = cannot_write_text(self.path, exc) or str(exc)
            raise ImproperlyConfigured(
                f"Cannot open the SQLite result store {self.path!r} ({self.url}): {problem}"
            ) from exc
        self._conn, self._pid = conn, forksafe.pid()
        return conn

    def open(self) -> None:
        """Open the store now (``OpensAtStart``): a worker whose result file is read-only
        stops at start, naming the file, instead of running tasks whose results it cannot
        store."""
        with self._lock:
            self._connection()

    def _prepare(self, conn: sqlite3.Connection) -> None:
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        task, group = _quote(self.task_table), _quote(self.group_table)
        conn.execute(_TASK_DDL.format(t=task))
        conn.execute(_INDEX_DDL.format(i=_quote(f"ix_{self.task_table}_date_done"), t=task))
        conn.execute(_GROUP_DDL.format(t=group))
        conn.execute(_INDEX_DDL.format(i=_quote(f"ix_{self.group_table}_date_done"), t=group))
        # A table Celery created without result_extended lacks the extended columns.
        existing = {row[1] for row in conn.execute(f"PRAGMA table_info({task})")}
        self._columns = tuple(c for c in EXTENDED_COLUMNS if c in existing)
        self._sql = self._statements(task, group)

    def _statements(self, task: str, group: str) -> dict[str, str]:
        columns = (*BASE_COLUMNS[1:], *self._columns)
        updates = ", ".join(f"{c}=excluded.{c}" for c in columns)
        marks = ", ".join("?" for _ in range(len(columns) + 1))
        return {
            "upsert": (
                f"INSERT INTO {task} (task_id, {', '.join(columns)}) VALUES ({marks}) "
                f"ON CONFLICT(task_id) DO UPDATE SET {updates} "
                f"WHERE {task}.status IS NOT '{states.SUCCESS}'"
            ),
            "select": f"SELECT task_id, {', '.join(columns)} FROM {task} WHERE task_id = ?",
            "delete": f"DELETE FROM {task} WHERE task_id = ?",
            "group_upsert": (
                f"INSERT INTO {group} (taskset_id, result, date_done) VALUES (?, ?, ?) "
                "ON CONFLICT(taskset_id) DO UPDATE SET "
                "result=excluded.result, date_done=excluded.date_done"
            ),
            "group_select": f"SELECT result FROM {group} WHERE taskset_id = ?",
            "group_delete": f"DELETE FROM {group} WHERE taskset_id = ?",
            "cleanup_tasks": f"DELETE FROM {task} WHERE date_done < ?",
            "cleanup_groups": f"DELETE FROM {group} WHERE date_done < ?",
        }

    def _execute(
        self, name: str, params: Sequence[Any] | Callable[[], Sequence[Any]]
    ) -> sqlite3.Cursor:
        """Run one prepared statement; ``params`` may be built once the columns are known.
        While the disk is full it waits, trying again (the error logged once per outage)."""
        return self._space.call(
            lambda: self._execute_once(name, params), f"writing results ({name})"
        )

    def _execute_once(
        self, name: str, params: Sequence[Any] | Callable[[], Sequence[Any]]
    ) -> sqlite3.Cursor:
        with self._lock:
            conn = self._connection()
            values = params() if callable(params) else params
            try:
                return retry_locked(lambda: conn.execute(self._sql[name], values), BUSY_TIMEOUT_S)
            except sqlite3.Error as exc:
                raise OperationalError(
                    f"SQLite result store {self.path!r} failed ({name}): {exc}"
                ) from exc

    def _fetchone(self, name: str, params: Sequence[Any]) -> Any:
        with self._lock:
            conn = self._connection()
            try:
                return retry_locked(
                    lambda: conn.execute(self._sql[name], params).fetchone(), BUSY_TIMEOUT_S
                )
            except sqlite3.Error as exc:
                raise OperationalError(
                    f"SQLite result store {self.path!r} failed ({name}): {exc}"
                ) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == forksafe.pid():
                self._conn.close()
            self._conn = None

    # -- primitives ----------------------------------------------------------------------
    def _values(self, task_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        """Every column's value, encoded outside the lock (encoding is the slow part)."""
        return {"task_id": task_id, **row_values(meta, self.encode, format_date)}

    def _set_meta(self, task_id: str, meta: dict[str, Any], state: str) -> None:
        values = self._values(task_id, meta)
        if self._held.hold(values):
            return
        self._execute("upsert", lambda: self._row(values))
        self._notifier.notify()

    def _row(self, values: dict[str, Any]) -> list[Any]:
        """The upsert's parameters (the columns are known once connected)."""
        return [values[c] for c in (*BASE_COLUMNS, *self._columns)]

    # -- write batches (WriteBatching: the worker's run of results, one transaction) --------
    def open_write_batch(self) -> bool:
        """Start holding this thread's final stores: :meth:`flush_writes` writes them in
        one transaction (one lock taken, one commit, one wake-up for the waiters)."""
        self._held.open()
        return True

    def deferring(self) -> AbstractContextManager[None]:
        return self._held.deferring()

    def pending_writes(self) -> int:
        return self._held.pending()

    def flush_writes(self, close: bool = False) -> None:
        """Write the held stores in order in one transaction, each upsert with the guard it
        has alone (a stored SUCCESS stays; a task written twice sees its earlier write)."""
        writes = self._held.take(close)
        if writes:
            self._space.call(lambda: self._write_many(writes), "writing results (upsert)")
            self._notifier.notify()

    def _write_many(self, writes: list[dict[str, Any]]) -> None:
        with self._lock:
            conn = self._connection()
            rows = [self._row(values) for values in writes]
            upsert = self._sql["upsert"]
            try:
                retry_locked(
                    lambda: immediate(conn, lambda: conn.executemany(upsert, rows)),
                    BUSY_TIMEOUT_S,
                )
            except sqlite3.Error as exc:
                raise OperationalError(
                    f"SQLite result store {self.path!r} failed (upsert of "
                    f"{len(rows)} results): {exc}"
                ) from exc

    def _get_meta(self, task_id: str) -> dict[str, Any] | None:
        row = self._fetchone("select", (task_id,))
        if row is None:
            return None
        return meta_from_row((*BASE_COLUMNS, *self._columns), row, self.decode_stored)

    def _delete_meta(self, task_id: str) -> None:
        self._execute("delete", (task_id,))

    def _get_group(self, group_id: str) -> Any | None:
        row = self._fetchone("group_select", (group_id,))
        if row is None or row[0] is None:
            return None
        return self.decode_stored(row[0])

    def _set_group(self, group_id: str, value: Any) -> None:
        self._execute("group_upsert", (group_id, self.encode(value), format_date(utcnow())))

    def _delete_group(self, group_id: str) -> None:
        self._execute("group_delete", (group_id,))

    def _cleanup(self, older_than: datetime) -> int:
        cutoff = format_date(older_than)
        removed = self._execute("cleanup_tasks", (cutoff,)).rowcount
        removed += self._chord(
            "chord cleanup", lambda c: sqlite_chord.cleanup(c, older_than.timestamp())
        )
        return removed + self._execute("cleanup_groups", (cutoff,)).rowcount

    def claim_unique(self, key: str, task_id: str, ttl: float) -> str:
        # One statement: insert, or take over a claim that has expired; then read the owner.
        # Both run in one IMMEDIATE transaction so no other process interleaves.
        now = time.time()
        with self._lock:
            conn = self._connection()
            try:
                return retry_locked(lambda: _claim(conn, key, task_id, now, ttl), BUSY_TIMEOUT_S)
            except sqlite3.Error as exc:
                raise OperationalError(
                    f"SQLite result store {self.path!r} failed (unique claim): {exc}"
                ) from exc

    # -- chords (JoinsChords: an atomic counter row, see sqlite_chord) ------------------------
    def _chord(self, what: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            conn = self._connection()
            try:
                return retry_locked(lambda: work(conn), BUSY_TIMEOUT_S)
            except sqlite3.Error as exc:
                raise OperationalError(
                    f"SQLite result store {self.path!r} failed ({what}): {exc}"
                ) from exc

    def set_chord_size(self, group_id: str, size: int) -> None:
        self._chord("chord size", lambda conn: sqlite_chord.set_size(conn, group_id, size))

    def chord_part_return(
        self, group_id: str, task_id: str, group_index: int | None, state: str, result: Any
    ) -> ChordParts | None:
        data = self.encode_chord_part(result, state)
        claim = self.chord_claim_seconds()
        rows = self._chord(
            "chord part",
            lambda conn: sqlite_chord.part_return(
                conn, group_id, task_id, group_index, state, data, claim
            ),
        )
        if rows is None:
            return None
        results = [(tid, st, self.decode_chord_part(d, st)) for tid, st, d in rows]
        return ChordParts(group_id, results, group_id)

    def chord_done(self, parts: ChordParts) -> None:
        self._chord("chord done", lambda conn: sqlite_chord.done(conn, parts.group_id))

    def add_to_chord(self, group_id: str) -> None:
        self._chord("add to chord", lambda conn: sqlite_chord.grow(conn, group_id))

    def _before_read(self, task_ids: Sequence[str]) -> None:
        self._seen.generation = self._notifier.generation

    def _wait(self, task_ids: Sequence[str], timeout: float) -> None:
        self._notifier.wait(getattr(self._seen, "generation", -1), timeout)


#: Claims of unique tasks; not a Celery table (Celery ignores it when sharing the file).
UNIQUE_TABLE = "celeriac_unique"
_UNIQUE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {UNIQUE_TABLE} "
    "(key TEXT PRIMARY KEY, task_id TEXT NOT NULL, expires REAL NOT NULL)"
)
_UNIQUE_CLAIM = (
    f"INSERT INTO {UNIQUE_TABLE} (key, task_id, expires) VALUES (?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET task_id=excluded.task_id, expires=excluded.expires "
    f"WHERE {UNIQUE_TABLE}.expires <= ?"
)


def _claim(conn: sqlite3.Connection, key: str, task_id: str, now: float, ttl: float) -> str:
    def work() -> str:
        conn.execute(_UNIQUE_DDL)
        conn.execute(_UNIQUE_CLAIM, (key, task_id, now + ttl, now))
        row = conn.execute(f"SELECT task_id FROM {UNIQUE_TABLE} WHERE key = ?", (key,)).fetchone()
        conn.execute(f"DELETE FROM {UNIQUE_TABLE} WHERE expires <= ?", (now,))
        return str(row[0])

    return immediate(conn, work)


__all__ = ["SQLiteBackend", "format_date", "path_from_url"]
