"""Wake-ups for one SQLite file, across threads and processes, without polling.

SQLite cannot tell a reader that another process committed. Every process that waits on a file
binds one Unix datagram socket in a folder of its own for that file (under the temporary
directory, named by a hash of the file's real path); a process that commits sends one byte to
each of them. A listener thread per waiting process turns datagrams into a new generation and
wakes the waiting threads, so a wait ends within a millisecond of a commit in any process of
the same user, and an idle waiter costs no CPU.

A waiter takes ``generation`` before it reads the file and calls ``wait(seen, timeout)``
after: a commit in between has moved the generation on, so the wait returns at once.
Without Unix sockets (Windows) only the waiters of the committing process are woken; the
others find the change at their next poll, as before.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import itertools
import os
import socket
import tempfile
import threading
from pathlib import Path

from celeriac.utils import forksafe

_HAS_UNIX = hasattr(socket, "AF_UNIX")
_names = itertools.count()


def channel_dir(path: str) -> Path:
    """The folder of the sockets of the processes waiting on the file ``path``."""
    real = os.path.realpath(path)
    digest = hashlib.sha1(real.encode(), usedforsecurity=False).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"celeriac-wake-{uid}" / digest


class FileWakeup:
    """The wake-ups of one file in this process (one instance per file and process)."""

    def __init__(self, path: str) -> None:
        self.directory = channel_dir(path)
        self._lock = threading.Lock()  # guards the generation and the socket; held at fork
        self._cond = threading.Condition(self._lock)
        self._generation = 0
        self._pid = 0  # the process whose socket and listener thread this object holds
        self._sock: socket.socket | None = None
        self._own = ""
        self._targets: tuple[str, ...] = ()
        self._scanned = -1
        self._sender: tuple[int, socket.socket] | None = None
        forksafe.guard(self)

    @property
    def generation(self) -> int:
        """Moves on at every commit seen; read it before reading the file."""
        self._listen()
        return self._generation

    def notify(self) -> None:
        """A commit: wake the waiters of this process, then those of every other process."""
        self._bump()
        if _HAS_UNIX:
            self._send()

    def wait(self, seen: int, timeout: float) -> None:
        """Return when the generation is no longer ``seen``, or after ``timeout`` seconds."""
        with self._cond:
            if self._generation == seen:
                self._cond.wait(timeout)

    def close(self) -> None:
        """Stop listening (the socket file is removed) and close the sending socket; waiting
        or notifying later opens them again."""
        with self._lock:
            sock, self._sock, self._pid = self._sock, None, 0
            sender, self._sender = self._sender, None
            if sock is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._own)
                sock.close()
            if sender is not None:
                sender[1].close()

    # -- inside --------------------------------------------------------------------------
    def _bump(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def _listen(self) -> None:
        """Bind this process's socket and start its listener thread (once per process)."""
        if not _HAS_UNIX or self._pid == forksafe.pid():
            return
        with self._lock:
            if self._pid == forksafe.pid():
                return
            if self._sock is not None:  # the parent's: its listener thread is not ours
                self._sock.close()
                self._sock, self._own = None, ""
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            own = str(self.directory / f"{os.getpid()}-{next(_names)}")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(own)
            try:
                sock.bind(own)
            except OSError:  # a path too long for AF_UNIX, a read-only folder: poll instead
                sock.close()
                self._pid = forksafe.pid()
                return
            self._sock, self._own, self._pid = sock, own, forksafe.pid()
            threading.Thread(
                target=self._receive, args=(sock,), name="celeriac-wakeup", daemon=True
            ).start()

    def _receive(self, sock: socket.socket) -> None:
        try:
            while True:
                sock.recv(64)
                # What else arrived is drained: one wake-up for all of it.
                while _pending(sock):
                    sock.recv(64)
                self._bump()
        except OSError:  # closed
            return

    def _send(self) -> None:
        try:
            mtime = self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            return  # nobody has ever waited on this file
        if mtime != self._scanned:
            with contextlib.suppress(FileNotFoundError):
                self._targets = tuple(entry.path for entry in os.scandir(self.directory))
            self._scanned = mtime
        entry = self._sender
        if entry is None or entry[0] != forksafe.pid():
            with self._lock:  # one sender per process, even when threads commit at once
                old = self._sender
                if old is None or old[0] != forksafe.pid():
                    made = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    made.setblocking(False)
                    self._sender = (forksafe.pid(), made)
                    if old is not None:  # the parent's, inherited through fork
                        old[1].close()
                    old = self._sender
                entry = old
        sender = entry[1]
        for target in self._targets:
            if target == self._own:
                continue
            try:
                sender.sendto(b"!", target)
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):  # its process is gone
                    os.unlink(target)
            except OSError:  # a full buffer: that process is awake already
                pass


def _pending(sock: socket.socket) -> bool:
    """Whether a datagram waits on ``sock`` (without blocking)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


_WAKEUPS: dict[str, FileWakeup] = {}
_WAKEUPS_LOCK = threading.Lock()


def close_all() -> None:
    """Close every wake-up socket of this process (at exit: no socket is left unclosed and
    no socket file is left behind)."""
    with _WAKEUPS_LOCK:
        wakeups = list(_WAKEUPS.values())
    for wakeup in wakeups:
        wakeup.close()


atexit.register(close_all)


def wakeup_for(path: str) -> FileWakeup:
    """The one ``FileWakeup`` of this process for the file ``path``."""
    key = os.path.realpath(path)
    with _WAKEUPS_LOCK:
        found = _WAKEUPS.get(key)
        if found is None:
            found = _WAKEUPS[key] = FileWakeup(path)
        return found


__all__ = ["FileWakeup", "channel_dir", "close_all", "wakeup_for"]
