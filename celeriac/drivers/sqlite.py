"""What the SQLite broker and the SQLite result store share: retrying a locked file and
waiting out a full disk."""

from __future__ import annotations

import errno
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

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


def immediate(conn: sqlite3.Connection, work: Callable[[], _T]) -> _T:
    """``work()`` in one ``BEGIN IMMEDIATE`` transaction (the write lock taken before any
    read), committed; rolled back if anything raises. Wrap it in :func:`retry_locked`: the
    ``BEGIN`` is refused at once while another connection writes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        value = work()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some errors already rolled back
            conn.execute("ROLLBACK")
        raise
    return value


#: What SQLite says when a write cannot grow its file (SQLITE_IOERR, SQLITE_FULL).
_NO_SPACE_TEXT = ("disk I/O error", "database or disk is full")
#: The same from the operating system: no space, over quota, over the file size limit.
_NO_SPACE_ERRNO = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: The longest wait between two attempts to write to a full disk.
SPACE_RETRY_MAX = 2.0


def no_space(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised from) says a file could not grow."""
    return _says(exc, _NO_SPACE_TEXT, _NO_SPACE_ERRNO)


def _says(exc: BaseException | None, texts: tuple[str, ...], errnos: frozenset[int]) -> bool:
    """Whether ``exc`` or an error it was raised from is SQLite's with one of ``texts`` or
    the operating system's with one of ``errnos``."""
    while exc is not None:
        if isinstance(exc, sqlite3.OperationalError) and any(t in str(exc) for t in texts):
            return True
        if isinstance(exc, OSError) and exc.errno in errnos:
            return True
        exc = exc.__cause__
    return False


#: What SQLite says when it may not write at all (SQLITE_READONLY), and the same from the OS.
_READ_ONLY_TEXT = ("readonly database",)
_READ_ONLY_ERRNO = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def read_only(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised from) says a file may not be written."""
    return _says(exc, _READ_ONLY_TEXT, _READ_ONLY_ERRNO)


def cannot_write_text(path: str, exc: BaseException) -> str | None:
    """The sentence naming the file, the problem and the fix when ``exc`` says the file
    cannot be written (a full disk, a read-only file); None for any other error."""
    if no_space(exc):
        return no_space_text(path, exc)
    if read_only(exc):
        return _read_only_text(path, _own_words(exc))
    return None


def unwritable(path: str) -> str | None:
    """Why this process cannot write the SQLite file ``path`` (the file, or the directory
    its ``-wal`` and ``-shm`` files are made in, is read-only for it), or None. SQLite itself
    opens such a file read-only without a word and fails at the first write."""
    if path == ":memory:" or path.startswith("file:") or not path:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            return _read_only_text(path, "the file is read-only for this user")
        if os.path.exists(path + "-wal"):
            return None
    if not os.access(directory, os.W_OK | os.X_OK):
        return _read_only_text(path, f"its directory {directory!r} is read-only for this user")
    return None


def _read_only_text(path: str, why: Any) -> str:
    return (
        f"Cannot write the SQLite file {path!r}: it is read-only ({why}). Make the file and "
        "its directory writable for the worker's user (permissions, owner, a read-only "
        "mount, chattr +i)"
    )


def _own_words(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:  # SQLite's own words, not a wrapper's
        exc = exc.__cause__
    return exc


def no_space_text(path: str, exc: BaseException) -> str:
    """The sentence naming the file, the problem and the fix."""
    return (
        f"Cannot write the SQLite file {path!r}: the disk is full or the file cannot grow "
        f"({_own_words(exc)}). Free disk space (or raise the file size limit or quota)"
    )


class SpaceWait:
    """Waits out a full disk under one file: the error is logged once per outage (naming the
    file), the write is tried again with a growing pause, and its return is logged too."""

    def __init__(self, path: str, logger: logging.Logger) -> None:
        self.path = path
        self.logger = logger
        self._full = False

    def call(self, action: Callable[[], _T], what: str, stop: threading.Event | None = None) -> _T:
        """``action()``, again and again while the disk is full (until ``stop`` is set)."""
        delay = 0.05
        while True:
            try:
                result = action()
            except Exception as exc:
                if not no_space(exc) or (stop is not None and stop.is_set()):
                    raise
                if not self._full:
                    self._full = True
                    self.logger.error(
                        "%s; waiting for space to try %s again.",
                        no_space_text(self.path, exc),
                        what,
                    )
                if stop is None:
                    time.sleep(delay)
                elif stop.wait(delay):
                    raise
                delay = min(delay * 2, SPACE_RETRY_MAX)
                continue
            if self._full:
                self._full = False
                self.logger.warning("SQLite file %r written again: %s goes on", self.path, what)
            return result


__all__ = [
    "SPACE_RETRY_MAX",
    "SpaceWait",
    "cannot_write_text",
    "immediate",
    "no_space",
    "no_space_text",
    "read_only",
    "retry_locked",
    "unwritable",
]
