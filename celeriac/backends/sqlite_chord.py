"""The SQLite store's chord join: an atomic counter row per chord (no ``chord_unlock`` polling).

``celeriac_chord`` holds one row per chord: its size, how many header tasks are in, and until
when a worker holds the claim to publish the body. ``celeriac_chord_part`` holds each header
task's result once (keyed by task id and group index, so a retried or redelivered task counts
once). Each step is one ``BEGIN IMMEDIATE`` transaction, so workers in other processes never
interleave; a worker killed after claiming loses the claim when it expires, and the
redelivered header task (``acks_late``) completes the join. These are not Celery tables
(Celery's database backend joins with ``chord_unlock``); Celery ignores them.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from celeriac.drivers.sqlite import immediate

CHORD_TABLE = "celeriac_chord"
PART_TABLE = "celeriac_chord_part"

DDL = (
    f"CREATE TABLE IF NOT EXISTS {CHORD_TABLE} (group_id TEXT PRIMARY KEY, size INTEGER NOT "
    "NULL, done INTEGER NOT NULL DEFAULT 0, claimed_until REAL NOT NULL DEFAULT 0, "
    "finished INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {PART_TABLE} (group_id TEXT NOT NULL, member TEXT NOT NULL, "
    "group_index REAL NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, result BLOB, "
    "PRIMARY KEY (group_id, member))",
)


def _transaction(conn: sqlite3.Connection, work: Any) -> Any:
    def with_tables() -> Any:
        for statement in DDL:
            conn.execute(statement)
        return work()

    return immediate(conn, with_tables)


def set_size(conn: sqlite3.Connection, group_id: str, size: int) -> None:
    """Start (or start over) the chord ``group_id`` with ``size`` header tasks."""

    def work() -> None:
        conn.execute(f"DELETE FROM {PART_TABLE} WHERE group_id = ?", (group_id,))
        conn.execute(
            f"INSERT OR REPLACE INTO {CHORD_TABLE} (group_id, size, done, claimed_until, "
            "finished, created) VALUES (?, ?, 0, 0, 0, ?)",
            (group_id, size, time.time()),
        )

    _transaction(conn, work)


def part_return(
    conn: sqlite3.Connection,
    group_id: str,
    task_id: str,
    group_index: int | None,
    state: str,
    data: bytes,
    claim_seconds: float,
) -> list[tuple[str, str, bytes]] | None:
    """Record one header task; the parts, in order, for the one caller that claims the body."""

    def work() -> list[tuple[str, str, bytes]] | None:
        row = conn.execute(
            f"SELECT size, finished FROM {CHORD_TABLE} WHERE group_id = ?", (group_id,)
        ).fetchone()
        if row is None or row[1]:
            return None  # unknown here, or its body was published already
        index = float("inf") if group_index is None else float(group_index)
        added = conn.execute(
            f"INSERT OR IGNORE INTO {PART_TABLE} (group_id, member, group_index, task_id, "
            "state, result) VALUES (?, ?, ?, ?, ?, ?)",
            (group_id, f"{task_id}:{group_index}", index, task_id, state, data),
        ).rowcount
        if added:
            conn.execute(
                f"UPDATE {CHORD_TABLE} SET done = done + 1 WHERE group_id = ?", (group_id,)
            )
        now = time.time()
        claimed = conn.execute(
            f"UPDATE {CHORD_TABLE} SET claimed_until = ? WHERE group_id = ? AND done >= size "
            "AND claimed_until < ?",
            (now + claim_seconds, group_id, now),
        ).rowcount
        if not claimed:
            return None
        rows = conn.execute(
            f"SELECT task_id, state, result FROM {PART_TABLE} WHERE group_id = ? "
            "ORDER BY group_index",
            (group_id,),
        ).fetchall()
        return [(str(r[0]), str(r[1]), r[2]) for r in rows]

    result: list[tuple[str, str, bytes]] | None = _transaction(conn, work)
    return result


def done(conn: sqlite3.Connection, group_id: str) -> None:
    """The body is out: drop the parts, keep the row as finished (late copies do nothing)."""

    def work() -> None:
        conn.execute(f"DELETE FROM {PART_TABLE} WHERE group_id = ?", (group_id,))
        conn.execute(f"UPDATE {CHORD_TABLE} SET finished = 1 WHERE group_id = ?", (group_id,))

    _transaction(conn, work)


def grow(conn: sqlite3.Connection, group_id: str) -> None:
    """The chord has one header task more."""

    def work() -> None:
        conn.execute(f"UPDATE {CHORD_TABLE} SET size = size + 1 WHERE group_id = ?", (group_id,))

    _transaction(conn, work)


def cleanup(conn: sqlite3.Connection, older_than: float) -> int:
    """Forget chords started before ``older_than`` (a UNIX time)."""

    def work() -> int:
        old = f"SELECT group_id FROM {CHORD_TABLE} WHERE created < ?"
        conn.execute(f"DELETE FROM {PART_TABLE} WHERE group_id IN ({old})", (older_than,))
        return int(
            conn.execute(f"DELETE FROM {CHORD_TABLE} WHERE created < ?", (older_than,)).rowcount
        )

    removed: int = _transaction(conn, work)
    return removed


__all__ = ["CHORD_TABLE", "PART_TABLE", "cleanup", "done", "grow", "part_return", "set_size"]
