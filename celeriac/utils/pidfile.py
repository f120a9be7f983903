"""Pid files: claimed for a worker's lifetime, stale ones (their process gone) replaced.

Celery's words: a live owner stops a second worker with "Pidfile (...) already exists. Seems
we're already running? (pid: N)"; a pid file whose process is gone is removed with "Stale
pidfile exists - Removing it.".
"""

from __future__ import annotations

import contextlib
import os
import sys


class AlreadyRunning(Exception):
    """A live process holds the pid file."""

    def __init__(self, path: str, pid: int) -> None:
        super().__init__(
            f"Pidfile ({path}) already exists. Seems we're already running? (pid: {pid})"
        )
        self.path = path
        self.pid = pid


class PidfileError(Exception):
    """The pid file cannot be written (a missing directory, no permission)."""


def read_pid(path: str) -> int | None:
    """The pid written in ``path``; ``None`` when there is no file or no number in it."""
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PidfileError(f"Cannot read pidfile {path}: {exc.strerror}") from None
    return int(text) if text.isdigit() else None


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts as alive; a zombie, dead
    but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:  # no /proc (not Linux), or gone meanwhile
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def remove_if_stale(path: str) -> bool:
    """Remove ``path`` if no live process owns it (True: it is gone now); raise
    :class:`AlreadyRunning` if one does."""
    if not os.path.exists(path):
        return False
    pid = read_pid(path)
    if pid is not None and pid != os.getpid() and alive(pid):
        raise AlreadyRunning(path, pid)
    print("Stale pidfile exists - Removing it.", file=sys.stderr)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def claim(path: str) -> None:
    """Write this process's pid to ``path``, created exclusively; a stale file is replaced."""
    remove_if_stale(path)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:  # another worker won the race
        pid = read_pid(path)
        raise AlreadyRunning(path, pid or 0) from None
    except OSError as exc:
        raise PidfileError(f"Cannot create pidfile {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{os.getpid()}\n")


def release(path: str) -> None:
    """Remove ``path`` if it still holds this process's pid."""
    with contextlib.suppress(OSError):
        if read_pid(path) == os.getpid():
            os.unlink(path)


__all__ = ["AlreadyRunning", "PidfileError", "alive", "claim", "read_pid", "release"]
