"""What the SQLite broker and the SQLite result store share: retrying a locked file."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


def retry_locked(action: Callable[[], _T], timeout: float) -> _T:
    """Run ``action`` again while the file is locked, for up to ``timeout`` seconds.

    SQLite's own busy handler sleeps 1, 2, 5, 10... ms, so a process refused the lock loses
    it again and again to one that is not; and switching to WAL mode does not call the busy
    handler at all. We retry in steps of a tenth of a millisecond, up to 5 ms, with jitter.
    """
    deadline = time.monotonic() + timeout
    delay = 0.0001
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 0.005)


__all__ = ["retry_locked"]
