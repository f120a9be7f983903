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

from celeriac.web import search

#: Default bound on the stored tasks (``--max-tasks``).
MAX_TASKS = 100_000
#: The most tasks one workflow view shows.
FAMILY_LIMIT = 1000
#: Columns a listing may be sorted by (``sort_by``, ``-`` first for descending).
SORTABLE = ("timestamp", "received", "started", "runtime", "name", "state", "worker")
_CHUNK = 500

#: The file's layout (``PRAGMA user_version``); another number is refused, naming --db.
SCHEMA_VERSION = 1
# Two tables: ``tasks`` is narrow (what lists filter, sort and search on), so scans and index
# walks never read the documents; ``docs`` holds each task's Flower document and history.
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
    kwargs TEXT
);
CREATE TABLE IF NOT EXISTS docs (uuid TEXT PRIMARY KEY, doc TEXT NOT NULL, history TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_timestamp ON tasks (timestamp);
CREATE INDEX IF NOT EXISTS tasks_received ON tasks (received);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, timestamp);
CREATE INDEX IF NOT EXISTS tasks_name ON tasks (name, timestamp);
CREATE INDEX IF NOT EXISTS tasks_worker ON tasks (worker, timestamp);
CREATE INDEX IF NOT EXISTS tasks_parent ON tasks (parent_id);
CREATE INDEX IF NOT EXISTS tasks_root ON tasks (root_id);
CREATE INDEX IF NOT EXISTS docs_grouped ON docs (json_extract(doc, '$.group'))
    WHERE instr(doc, '"group": ') > 0;
CREATE TABLE IF NOT EXISTS state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS task_text USING fts5(
    args, kwargs, content='tasks', content_rowid='rowid', tokenize='trigram'
);
CREATE TRIGGER IF NOT EXISTS tasks_added AFTER INSERT ON tasks BEGIN
    INSERT INTO task_text (rowid, args, kwargs) VALUES (new.rowid, new.args, new.kwargs);
    INSERT INTO state_counts VALUES (coalesce(new.state, ''), 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS tasks_removed AFTER DELETE ON tasks BEGIN
    INSERT INTO task_text (task_text, rowid, args, kwargs)
        VALUES ('delete', old.rowid, old.args, old.kwargs);
    UPDATE state_counts SET n = n - 1 WHERE state = coalesce(old.state, '');
END;
CREATE TRIGGER IF NOT EXISTS tasks_text_changed AFTER UPDATE OF args, kwargs ON tasks
WHEN old.args IS NOT new.args OR old.kwargs IS NOT new.kwargs BEGIN
    INSERT INTO task_text (task_text, rowid, args, kwargs)
        VALUES ('delete', old.rowid, old.args, old.kwargs);
    INSERT INTO task_text (rowid, args, kwargs) VALUES (new.rowid, new.args, new.kwargs);
END;
CREATE TRIGGER IF NOT EXISTS tasks_state_changed AFTER UPDATE OF state ON tasks
WHEN old.state IS NOT new.state BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = coalesce(old.state, '');
    INSERT INTO state_counts VALUES (coalesce(new.state, ''), 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
"""
# Only group members' documents (celeriac's ``group`` field) enter the group index: a cheap
# text test on every write instead of parsing each document; a query names it to use it.
_GROUPED = "instr(d.doc, '\"group\": ') > 0"


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Which tasks a listing shows: filters (all optional), order and one page."""

    state: str | None = None
    name: str | None = None
    worker: str | None = None
    #: Received (else sent, else the last event) at or after / at or before, epoch seconds.
    since: float | None = None
    until: float | None = None
    #: Flower's query language (:mod:`celeriac.web.search`): an id (or its start), text in
    #: the args or kwargs, or qualified terms joined by AND / OR.
    search: str | None = None
    sort_by: str = "-timestamp"
    limit: int | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if self.search:
            search.parse(self.search)  # a QueryError (a ValueError) says what is wrong
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

    def __init__(
        self, path: str = ":memory:", max_tasks: int = MAX_TASKS, *, rebuild_after: int = 0
    ) -> None:
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be at least 1, not {max_tasks}")
        self.path = path
        self.max_tasks = max_tasks
        #: Trimmed tasks after which the search index is merged again (0: half of
        #: ``max_tasks``, at least 1,000); see :meth:`_compact_search`.
        self.rebuild_after = rebuild_after or max(1000, max_tasks // 2)
        self._trimmed = 0
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.create_function("kwargs_pair", 2, search.kwargs_pair, deterministic=True)
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"layout version {version}, not {SCHEMA_VERSION}")
            if path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise ValueError(
                f"cannot use {path!r} as the monitor's task history: {exc} (give another "
                "file with --db)"
            ) from None
        self._count = int(self._db.execute("SELECT count(*) FROM tasks").fetchone()[0])

    # -- writing ---------------------------------------------------------------------------
    def put(self, tasks: Iterable[StoredTask]) -> None:
        """Insert or replace these tasks in one transaction, then trim to ``max_tasks``."""
        latest = {task.doc["uuid"]: task for task in tasks}
        if not latest:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                existing = 0
                for chunk in _chunks(list(latest)):
                    marks = ",".join("?" * len(chunk))
                    found = db.execute(
                        f"SELECT count(*) FROM tasks WHERE uuid IN ({marks})", chunk
                    ).fetchone()[0]
                    existing += int(found)
                db.executemany(
                    "INSERT INTO tasks (uuid, name, state, worker, timestamp, received, "
                    "started, runtime, parent_id, root_id, args, kwargs) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (uuid) DO UPDATE SET "
                    "name = excluded.name, state = excluded.state, worker = excluded.worker, "
                    "timestamp = excluded.timestamp, received = excluded.received, "
                    "started = excluded.started, runtime = excluded.runtime, "
                    "parent_id = excluded.parent_id, root_id = excluded.root_id, "
                    "args = excluded.args, kwargs = excluded.kwargs",
                    [_row(task) for task in latest.values()],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO docs (uuid, doc, history) VALUES (?,?,?)",
                    [
                        (uuid, json.dumps(t.doc, default=repr), json.dumps(t.history))
                        for uuid, t in latest.items()
                    ],
                )
                self._count += len(latest) - existing
                excess = self._count - self.max_tasks
                if excess > 0:
                    oldest = "SELECT uuid FROM tasks ORDER BY timestamp LIMIT ?"
                    db.execute(f"DELETE FROM docs WHERE uuid IN ({oldest})", (excess,))
                    db.execute(f"DELETE FROM tasks WHERE uuid IN ({oldest})", (excess,))
                    self._count -= excess
                    self._trimmed += excess
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._count = int(db.execute("SELECT count(*) FROM tasks").fetchone()[0])
                raise
            if self._trimmed >= self.rebuild_after:
                self._compact_search()

    def _compact_search(self) -> None:
        """Merge the search index into one segment (lock held). Each trimmed task leaves a
        delete marker in the trigram index that every search then reads past: with the
        history full, searching in the arguments slowed from 2 ms to 25 ms after 100,000
        tasks trimmed. Merging drops them (about 0.3 s for 100,000 tasks, once every half
        ``max_tasks`` trimmed)."""
        self._db.execute("INSERT INTO task_text (task_text) VALUES ('optimize')")
        self._trimmed = 0

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM tasks")
            self._db.execute("DELETE FROM docs")
            self._db.execute("DELETE FROM state_counts")
            self._count = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def get(self, uuid: str) -> StoredTask | None:
        with self._lock:
            found = self._documents([uuid])
        return found[0] if found else None

    def query(self, query: TaskQuery) -> tuple[int, list[StoredTask]]:
        """``(how many match, the page of them)``; children filled in.

        The page is chosen on the narrow table (an index walk for the common orders, even
        far down the list), then only its documents are read."""
        where, params = _where(query)
        column = query.sort_by.lstrip("-")
        order = "DESC" if query.sort_by.startswith("-") else "ASC"
        limit = -1 if query.limit is None else query.limit
        with self._lock:
            if where:
                total = int(
                    self._db.execute(f"SELECT count(*) FROM tasks{where}", params).fetchone()[0]
                )
            else:
                total = self._count
            uuids = [
                str(row[0])
                for row in self._db.execute(
                    f"SELECT uuid FROM tasks{where} ORDER BY {column} {order}, rowid {order} "
                    "LIMIT ? OFFSET ?",
                    [*params, limit, query.offset],
                )
            ]
            return total, self._documents(uuids)

    def family(self, root_id: str) -> list[StoredTask]:
        """Every task of one workflow, oldest first: the tasks of this root, and of every
        group one of them belongs to (a group sent from a client has a root per member, a
        chord's body the root of the header task that completed it), and so on."""
        with self._lock:
            roots, groups, uuids = {root_id}, set[str](), set[str]()
            new_roots, new_groups = [root_id], list[str]()
            while (new_roots or new_groups) and len(uuids) < FAMILY_LIMIT:
                found: list[tuple[Any, ...]] = []
                for root in new_roots:
                    found += self._db.execute(
                        "SELECT t.uuid, t.root_id, json_extract(d.doc, '$.group') "
                        "FROM tasks t JOIN docs d ON d.uuid = t.uuid "
                        "WHERE t.root_id = ? OR t.uuid = ? LIMIT ?",
                        (root, root, FAMILY_LIMIT),
                    ).fetchall()
                for group_id in new_groups:
                    found += self._db.execute(
                        "SELECT t.uuid, t.root_id, json_extract(d.doc, '$.group') "
                        "FROM docs d JOIN tasks t ON t.uuid = d.uuid "
                        f"WHERE {_GROUPED} AND json_extract(d.doc, '$.group') = ? LIMIT ?",
                        (group_id, FAMILY_LIMIT),
                    ).fetchall()
                new_roots, new_groups = [], []
                for uuid, root, group_id in found:
                    uuids.add(str(uuid))
                    if root and root not in roots:
                        roots.add(str(root))
                        new_roots.append(str(root))
                    if group_id and group_id not in groups:
                        groups.add(str(group_id))
                        new_groups.append(str(group_id))
            tasks = self._documents(list(uuids)[:FAMILY_LIMIT])
        return sorted(tasks, key=lambda t: t.doc.get("timestamp") or 0.0)

    def group(self, group_id: str) -> list[StoredTask]:
        """The tasks carrying celeriac's ``group`` field ``group_id``: a group's or chord's
        header tasks (by ``group_index``), then a chord's body (the group's id, no index)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT d.uuid FROM docs d WHERE {_GROUPED} "
                "AND json_extract(d.doc, '$.group') = ? LIMIT ?",
                (group_id, FAMILY_LIMIT),
            ).fetchall()
            tasks = self._documents([str(row[0]) for row in rows])

        def order(task: StoredTask) -> tuple[int, int, float]:
            index = task.doc.get("group_index")
            at = task.doc.get("timestamp") or 0.0
            return (1, 0, at) if index is None else (0, int(index), at)

        return sorted(tasks, key=order)

    def names(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT name FROM tasks WHERE name IS NOT NULL ORDER BY name"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def counts_by_state(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, n FROM state_counts WHERE n > 0").fetchall()
        return {str(state): int(n) for state, n in rows}

    def _documents(self, uuids: Sequence[str]) -> list[StoredTask]:
        """The stored tasks of ``uuids``, in that order, children filled in (lock held)."""
        found: dict[str, StoredTask] = {}
        for chunk in _chunks(list(uuids)):
            marks = ",".join("?" * len(chunk))
            for uuid, doc, history in self._db.execute(
                f"SELECT uuid, doc, history FROM docs WHERE uuid IN ({marks})", chunk
            ):
                steps = [(str(state), at) for state, at in json.loads(history)]
                found[str(uuid)] = StoredTask(json.loads(doc), steps)
        children: dict[str, list[str]] = {}
        for chunk in _chunks(list(found)):
            marks = ",".join("?" * len(chunk))
            for parent, child in self._db.execute(
                f"SELECT parent_id, uuid FROM tasks WHERE parent_id IN ({marks}) "
                "ORDER BY timestamp",
                chunk,
            ):
                children.setdefault(str(parent), []).append(str(child))
        for uuid, task in found.items():
            task.doc["children"] = children.get(uuid, [])
        return [found[uuid] for uuid in uuids if uuid in found]


def _where(query: TaskQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("state", query.state), ("name", query.name), ("worker", query.worker)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        clauses.append("received >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("received <= ?")  # as Flower: the end is included
        params.append(query.until)
    node = search.parse(query.search) if query.search else None
    if node is not None:
        text, values = search.sql(node)
        clauses.append(text)
        params.extend(values)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _row(task: StoredTask) -> tuple[Any, ...]:
    doc = task.doc
    received = next(
        (doc[k] for k in ("received", "sent", "timestamp") if doc.get(k) is not None), None
    )
    return (
        doc["uuid"],
        doc.get("name"),
        doc.get("state"),
        doc.get("worker"),
        doc.get("timestamp"),
        received,
        doc.get("started"),
        doc.get("runtime"),
        doc.get("parent_id"),
        doc.get("root_id"),
        doc.get("args"),
        doc.get("kwargs"),
    )


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


__all__ = ["FAMILY_LIMIT", "MAX_TASKS", "SORTABLE", "StoredTask", "TaskQuery", "TaskStore"]
