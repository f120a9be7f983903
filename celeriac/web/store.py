"""The task history: an SQLite file of Flower task documents, bounded by ``max_tasks``.

It outlives the monitor process (a restart shows the tasks seen before) and keeps memory
flat however many tasks pass: the cluster model holds the recent ones, this file the rest,
the oldest (by last event) deleted beyond ``max_tasks``. Pages and the API query it with
indexes on time, state, name, worker and parent, so a page answers quickly at 100,000 tasks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: Default bound on the stored tasks (``--max-tasks``).
MAX_TASKS = 100_000
#: Columns a listing may be sorted by (``sort_by``, ``-`` first for descending).
SORTABLE = ("timestamp", "received", "started", "runtime", "name", "state", "worker")
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    uuid TEXT PRIMARY KEY,
    name TEXT,
    state TEXT,
    worker TEXT,
    timestamp REAL,
    received REAL,
    started REAL,
    runtime REAL,
    parent_id TEXT,
    root_id TEXT,
    args TEXT,
    kwargs TEXT,
    doc TEXT NOT NULL,
    history TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_timestamp ON tasks (timestamp);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, timestamp);
CREATE INDEX IF NOT EXISTS tasks_name ON tasks (name, timestamp);
CREATE INDEX IF NOT EXISTS tasks_worker ON tasks (worker, timestamp);
CREATE INDEX IF NOT EXISTS tasks_parent ON tasks (parent_id);
CREATE INDEX IF NOT EXISTS tasks_root ON tasks (root_id);
"""


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Which tasks a listing shows: filters (all optional), order and one page."""

    state: str | None = None
    name: str | None = None
    worker: str | None = None
    #: ``received`` (else the last event's time) at or after / before, epoch seconds.
    since: float | None = None
    until: float | None = None
    #: An id (or its start), or text found in the args or kwargs.
    search: str | None = None
    sort_by: str = "-timestamp"
    limit: int | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        column = self.sort_by.lstrip("-")
        if column not in SORTABLE:
            raise ValueError(
                f"cannot sort tasks by {self.sort_by!r}: use one of {', '.join(SORTABLE)} "
                "(with a leading '-' for newest or largest first)"
            )
        if self.offset < 0 or (self.limit is not None and self.limit < 0):
            raise ValueError("limit and offset must not be negative")


@dataclass(frozen=True, slots=True)
class StoredTask:
    """One stored task: its Flower document and its ``(state, timestamp)`` history."""

    doc: dict[str, Any]
    history: list[tuple[str, float | None]]


class TaskStore:
    """``TaskStore(path, max_tasks)``: ``path`` ``":memory:"`` keeps nothing after close."""

    def __init__(self, path: str = ":memory:", max_tasks: int = MAX_TASKS) -> None:
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be at least 1, not {max_tasks}")
        self.path = path
        self.max_tasks = max_tasks
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise ValueError(f"cannot open the task history {path!r}: {exc} (see --db)") from None
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._count = int(self._db.execute("SELECT count(*) FROM tasks").fetchone()[0])

    # -- writing ---------------------------------------------------------------------------
    def put(self, tasks: Iterable[StoredTask]) -> None:
        """Insert or replace these tasks in one transaction, then trim to ``max_tasks``."""
        rows = [_row(task) for task in tasks]
        if not rows:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                existing = 0
                for chunk in _chunks([r[0] for r in rows]):
                    marks = ",".join("?" * len(chunk))
                    found = db.execute(
                        f"SELECT count(*) FROM tasks WHERE uuid IN ({marks})", chunk
                    ).fetchone()[0]
                    existing += int(found)
                db.executemany(
                    "INSERT OR REPLACE INTO tasks (uuid, name, state, worker, timestamp, "
                    "received, started, runtime, parent_id, root_id, args, kwargs, doc, "
                    "history) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
                self._count += len({r[0] for r in rows}) - existing
                excess = self._count - self.max_tasks
                if excess > 0:
                    db.execute(
                        "DELETE FROM tasks WHERE uuid IN "
                        "(SELECT uuid FROM tasks ORDER BY timestamp LIMIT ?)",
                        (excess,),
                    )
                    self._count -= excess
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._count = int(db.execute("SELECT count(*) FROM tasks").fetchone()[0])
                raise

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM tasks")
            self._count = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def get(self, uuid: str) -> StoredTask | None:
        with self._lock:
            row = self._db.execute(
                "SELECT doc, history FROM tasks WHERE uuid = ?", (uuid,)
            ).fetchone()
            if row is None:
                return None
            task = _stored(row)
            task.doc["children"] = self._children([uuid]).get(uuid, [])
            return task

    def query(self, query: TaskQuery) -> tuple[int, list[StoredTask]]:
        """``(how many match, the page of them)``; children filled in."""
        where, params = _where(query)
        column = query.sort_by.lstrip("-")
        order = "DESC" if query.sort_by.startswith("-") else "ASC"
        limit = -1 if query.limit is None else query.limit
        with self._lock:
            total = int(
                self._db.execute(f"SELECT count(*) FROM tasks{where}", params).fetchone()[0]
            )
            rows = self._db.execute(
                f"SELECT doc, history FROM tasks{where} ORDER BY {column} {order}, uuid "
                "LIMIT ? OFFSET ?",
                [*params, limit, query.offset],
            ).fetchall()
            found = [_stored(row) for row in rows]
            children = self._children([t.doc["uuid"] for t in found])
        for task in found:
            task.doc["children"] = children.get(task.doc["uuid"], [])
        return total, found

    def family(self, root_id: str) -> list[StoredTask]:
        """Every task of one workflow (the same root id), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT doc, history FROM tasks WHERE root_id = ? OR uuid = ? "
                "ORDER BY timestamp LIMIT ?",
                (root_id, root_id, 1000),
            ).fetchall()
            found = [_stored(row) for row in rows]
            children = self._children([t.doc["uuid"] for t in found])
        for task in found:
            task.doc["children"] = children.get(task.doc["uuid"], [])
        return found

    def names(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT name FROM tasks WHERE name IS NOT NULL ORDER BY name"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def counts_by_state(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall()
        return {str(state): int(n) for state, n in rows}

    def _children(self, uuids: Sequence[str]) -> dict[str, list[str]]:
        children: dict[str, list[str]] = {}
        for chunk in _chunks(list(uuids)):
            marks = ",".join("?" * len(chunk))
            for parent, child in self._db.execute(
                f"SELECT parent_id, uuid FROM tasks WHERE parent_id IN ({marks}) "
                "ORDER BY timestamp",
                chunk,
            ):
                children.setdefault(str(parent), []).append(str(child))
        return children


def _where(query: TaskQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("state", query.state), ("name", query.name), ("worker", query.worker)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        clauses.append("coalesce(received, timestamp) >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("coalesce(received, timestamp) < ?")
        params.append(query.until)
    if query.search:
        text = query.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(
            "(uuid LIKE ? ESCAPE '\\' OR args LIKE ? ESCAPE '\\' OR kwargs LIKE ? ESCAPE '\\')"
        )
        params.extend([text + "%", f"%{text}%", f"%{text}%"])
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _row(task: StoredTask) -> tuple[Any, ...]:
    doc = task.doc
    return (
        doc["uuid"],
        doc.get("name"),
        doc.get("state"),
        doc.get("worker"),
        doc.get("timestamp"),
        doc.get("received"),
        doc.get("started"),
        doc.get("runtime"),
        doc.get("parent_id"),
        doc.get("root_id"),
        doc.get("args"),
        doc.get("kwargs"),
        json.dumps(doc, default=repr),
        json.dumps(task.history),
    )


def _stored(row: tuple[str, str]) -> StoredTask:
    history = [(str(state), ts) for state, ts in json.loads(row[1])]
    return StoredTask(json.loads(row[0]), history)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


__all__ = ["MAX_TASKS", "SORTABLE", "StoredTask", "TaskQuery", "TaskStore"]
