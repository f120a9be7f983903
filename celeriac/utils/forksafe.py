"""No child inherits a lock, or a library mutex, that another thread held when it forked;
and :func:`pid`, this process's id without a system call.

``sqlite3`` is not fork-safe: a child forked while another thread of its parent is inside
SQLite can block forever in its first ``sqlite3.connect``. Every object whose ``_lock`` guards
all its calls into such a library registers with :func:`guard`; ``os.fork`` (prefork pools,
worker subprocesses) then waits until none of those locks is held, and both sides go on with
them released.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

_guarded: weakref.WeakSet[Any] = weakref.WeakSet()
_taken: list[threading.Lock] = []
_pid = os.getpid()


def pid() -> int:
    """``os.getpid()`` without the system call: connections check it on every use to notice
    that they were inherited by a forked child (refreshed in the child by ``os.fork``)."""
    return _pid


def guard(owner: Any) -> None:
    """Hold ``owner._lock`` across every fork of this process."""
    _guarded.add(owner)


def _before_fork() -> None:
    for owner in list(_guarded):
        lock: threading.Lock = owner._lock
        lock.acquire()
        _taken.append(lock)


def _after_fork() -> None:
    while _taken:
        _taken.pop().release()


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()
    _after_fork()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork_in_child
)

__all__ = ["guard", "pid"]
