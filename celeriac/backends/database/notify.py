"""Result wake-ups over PostgreSQL ``LISTEN``/``NOTIFY`` for the SQLAlchemy backend.

A store ``NOTIFY``s the task id in its own transaction; a waiter ``LISTEN``s on a psycopg 3
connection of its own, so ``AsyncResult.get()`` returns within milliseconds of the store
instead of at the next poll. Other databases (and PostgreSQL without psycopg 3) poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

CHANNEL = "celeriac_results"


class ResultListener:
    """One LISTEN connection per backend and process, shared by the waiting threads.

    Every received NOTIFY is numbered; a waiter remembers the number at ``mark()`` (before
    it reads the store) and ``wait()`` returns once a later NOTIFY names one of its ids,
    whichever thread happened to read it off the connection.
    """

    def __init__(self, conninfo: str) -> None:
        import psycopg  # lazy: psycopg is the optional extra celeriac[postgres]

        self._conn = psycopg.connect(conninfo, autocommit=True)
        self._conn.execute(f"LISTEN {CHANNEL}")
        self._lock = threading.Lock()
        self._seq = 0
        self._last: dict[str, int] = {}
        self._marks = threading.local()
        #: Tasks this process sent while listening: the NOTIFY count when each was sent.
        self._sent: dict[str, int] = {}

    def _receive(self, timeout: float, stop_after: int | None) -> None:
        """Read NOTIFYs (caller holds the lock)."""
        if len(self._last) > 100_000:
            self._last.clear()  # bounded memory; a waiter then polls once more at worst
        for note in self._conn.notifies(timeout=timeout, stop_after=stop_after):
            self._seq += 1
            self._last[note.payload] = self._seq

    def mark(self) -> None:
        if self._lock.acquire(blocking=False):
            try:
                self._receive(0, None)
            finally:
                self._lock.release()
        self._marks.value = self._seq

    def sent(self, task_id: str) -> None:
        """``task_id`` is about to be published: every store of it will be heard of."""
        if len(self._sent) > 10_000:
            self._sent.clear()  # sent and never waited for; a wait then reads first
        self.mark()
        self._sent[task_id] = self._marks.value

    def resume_from_send(self, task_id: str) -> bool:
        """True, and this thread's mark set back to when ``task_id`` was sent, if this
        listener has listened since: nothing stored of it can have been missed, so a wait
        need not read before it waits."""
        seq = self._sent.pop(task_id, None)
        if seq is None:
            return False
        self._marks.value = seq
        return True

    def _stored_since_mark(self, wanted: set[str]) -> bool:
        seen = getattr(self._marks, "value", 0)
        return any(self._last.get(task_id, -1) > seen for task_id in wanted)

    def wait(self, task_ids: Sequence[str], timeout: float) -> None:
        """Return when one of ``task_ids`` was stored since ``mark()``, or after ``timeout``."""
        wanted = set(task_ids)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stored_since_mark(wanted):
                return
            # Another waiter may be reading: take turns in short slices.
            if not self._lock.acquire(timeout=min(remaining, 0.05)):
                continue
            try:
                if not self._stored_since_mark(wanted):
                    self._receive(max(0.0, min(deadline - time.monotonic(), 0.05)), 1)
            finally:
                self._lock.release()

    def close(self) -> None:
        self._conn.close()


def listener_for(engine: Any) -> ResultListener | None:
    """A listener for a PostgreSQL engine when psycopg 3 is installed, else None (poll)."""
    if engine.dialect.name != "postgresql":
        return None
    try:
        url = engine.url.set(drivername="postgresql")
        return ResultListener(url.render_as_string(hide_password=False))
    except Exception:  # psycopg 3 missing or LISTEN refused: polling still works
        return None


__all__ = ["CHANNEL", "ResultListener", "listener_for"]
