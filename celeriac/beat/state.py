"""Beat's state file (``-s``, ``beat_schedule_filename``): each entry's last run and run
count, so a restarted beat neither repeats nor skips a run.

Celery keeps a Python ``shelve`` here; celeriac keeps a small SQLite file instead (only the
messages are shared with Celery). One beat holds the file at a time: a second beat on the same
file is refused with the path and what to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from datetime import datetime

from celeriac.exceptions import ImproperlyConfigured

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS beat_entries ("
    " name TEXT PRIMARY KEY, last_run_at TEXT NOT NULL, total_run_count INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS beat_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class StateFile:
    """``load()`` the entries' runs, ``save()`` one after each send; ``close()`` at exit."""

    def __init__(self, path: str | os.PathLike[str], tz: str) -> None:
        self.path = os.fspath(path)
        self._lock_fd = self._lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._check_zone(tz)
        except sqlite3.DatabaseError as exc:
            self._release()
            raise ImproperlyConfigured(
                f"beat schedule file {self.path!r} cannot be used ({exc}): it is not a "
                "celeriac schedule file (a Celery shelve file?) or its directory is not "
                "writable. Delete it, or pass another path with -s"
            ) from None

    def _lock(self) -> int:
        try:
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ImproperlyConfigured(
                f"beat schedule file {self.path!r} cannot be opened ({exc.strerror}); make its "
                "directory writable, or pass another path with -s"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ImproperlyConfigured(
                f"beat schedule file {self.path!r} is locked by another beat on this machine; "
                "stop that beat, or give this one its own file with -s"
            ) from None
        return fd

    def _release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = -1

    def _check_zone(self, tz: str) -> None:
        """As Celery does: runs recorded under another time zone are forgotten."""
        row = self._db.execute("SELECT value FROM beat_meta WHERE key = 'tz'").fetchone()
        if row is not None and row[0] != tz:
            self._db.execute("DELETE FROM beat_entries")
        self._db.execute("INSERT OR REPLACE INTO beat_meta VALUES ('tz', ?)", (tz,))

    def load(self) -> dict[str, tuple[datetime, int]]:
        rows = self._db.execute("SELECT name, last_run_at, total_run_count FROM beat_entries")
        return {name: (datetime.fromisoformat(at), count) for name, at, count in rows}

    def save(self, name: str, last_run_at: datetime, total_run_count: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO beat_entries VALUES (?, ?, ?)",
            (name, last_run_at.isoformat(), total_run_count),
        )

    def forget(self, keep: set[str]) -> None:
        """Drop the runs of entries no longer in the schedule."""
        for (name,) in self._db.execute("SELECT name FROM beat_entries").fetchall():
            if name not in keep:
                self._db.execute("DELETE FROM beat_entries WHERE name = ?", (name,))

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._release()


__all__ = ["StateFile"]
