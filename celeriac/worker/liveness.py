"""The worker's liveness file: proof, for a container probe (``celeriac check``), that it
consumes. Opt-in: written only when the worker is given a path (``worker --liveness-file``,
the ``worker_liveness_file`` setting); removed when the worker stops cleanly.

Whatever consumes (the worker's consumer, or each prefork child that consumes for itself)
rewrites the file every second while its loop turns, or while a task runs in its own thread
(solo, a consuming prefork child). A worker whose loop is stuck (a broker that is gone, a
connection that hangs, a frozen process) stops rewriting it, so the file's age tells a probe
that it does not consume, even when its process lives and its connection stays open. When the
worker holds a pid file, the pid file's modification time is refreshed too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from celeriac.utils.pidfile import PidfileError, alive, read_pid

logger = logging.getLogger("celeriac.worker")

#: How often the file is rewritten while the worker consumes.
EVERY = 1.0
#: A consumer loop that has not turned for this long is stuck (its longest wait is 1 s).
STALLED_AFTER = 5.0
#: What ``celeriac check`` accepts by default: a file younger than this.
MAX_AGE = 30.0


class Liveness:
    """Writes the liveness file (if it has a path) and touches the pid file (if it has one)
    of one worker."""

    def __init__(self, path: str | None, nodename: str, pidfile: str | None = None) -> None:
        self.path = path
        self.nodename = nodename
        self.pidfile = pidfile
        self._failed = False

    def beat(self) -> None:
        """Rewrite the file now (atomically: a reader never sees half of it)."""
        try:
            if self.path:
                record = {"node": self.nodename, "pid": os.getpid(), "time": time.time()}
                temporary = f"{self.path}.{os.getpid()}.tmp"
                with open(temporary, "w") as handle:
                    json.dump(record, handle)
                os.replace(temporary, self.path)
            if self.pidfile:
                os.utime(self.pidfile)
        except OSError as exc:
            if not self._failed:  # once: a probe will say the rest
                self._failed = True
                logger.warning("Cannot write the liveness file %s: %s", exc.filename, exc)

    def watch(self, progressing: Callable[[], bool]) -> Callable[[], None]:
        """Beat every :data:`EVERY` seconds while ``progressing()``; return what stops it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(EVERY):
                if progressing():
                    self.beat()

        self.beat()
        threading.Thread(target=loop, name="liveness", daemon=True).start()
        return stop.set

    def remove(self) -> None:
        """Delete the liveness file (a clean shutdown: a probe then says "not running")."""
        if self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


@dataclass(frozen=True)
class Verdict:
    """What a probe found: consuming or not, and the line that says why."""

    ok: bool
    line: str


def probe_file(path: str, max_age: float = MAX_AGE) -> Verdict:
    """Is the worker whose liveness file is ``path`` consuming?"""
    try:
        with open(path) as handle:
            record = json.load(handle)
        age = time.time() - float(record["time"])
    except FileNotFoundError:
        return Verdict(False, f"not running: no liveness file {path}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Verdict(False, f"unreadable liveness file {path}: {exc}")
    node = record.get("node", "?")
    if age > max_age:
        return Verdict(
            False, f"{node}: not consuming (last seen consuming {age:.1f}s ago, limit {max_age}s)"
        )
    return Verdict(True, f"{node}: OK, consuming (last seen {age:.1f}s ago)")


def probe_pidfile(path: str, max_age: float = MAX_AGE) -> Verdict:
    """Is the worker holding the pid file ``path`` alive and consuming?"""
    try:
        pid = read_pid(path)
    except PidfileError as exc:
        return Verdict(False, str(exc))
    if pid is None:
        return Verdict(False, f"not running: no pid in {path}")
    if not alive(pid):
        return Verdict(False, f"not running: pid {pid} of {path} is gone (a stale pid file)")
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError as exc:
        return Verdict(False, f"unreadable pid file {path}: {exc}")
    if age > max_age:
        return Verdict(
            False,
            f"pid {pid}: not consuming (last seen consuming {age:.1f}s ago, limit {max_age}s)",
        )
    return Verdict(True, f"pid {pid}: OK, consuming (last seen {age:.1f}s ago)")


__all__ = [
    "EVERY",
    "MAX_AGE",
    "STALLED_AFTER",
    "Liveness",
    "Verdict",
    "probe_file",
    "probe_pidfile",
]
