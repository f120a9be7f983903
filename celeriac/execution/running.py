"""The tasks this process runs now, by worker node: recorded around each run by the pipeline
(:class:`Running`), read by ``inspect active`` (a request handed to a pool is not running
until its turn comes: pools take batches)."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from celeriac.execution.hooks import Hook

if TYPE_CHECKING:
    from celeriac.execution.hooks import Outcome, TaskRun

_lock = threading.Lock()
#: node name -> task id -> (started, Unix time; pid)
_running: dict[str, dict[str, tuple[float, int]]] = {}


class Running(Hook):
    """Record the run for its node while the body runs."""

    def before(self, run: TaskRun) -> None:
        with _lock:
            _running.setdefault(run.hostname, {})[run.call.id] = (time.time(), os.getpid())

    def after(self, run: TaskRun, outcome: Outcome) -> None:
        with _lock:
            _running.get(run.hostname, {}).pop(run.call.id, None)


def running(hostname: str) -> dict[str, tuple[float, int]]:
    """Task id -> (start time, pid) of what worker ``hostname`` runs in this process."""
    with _lock:
        return dict(_running.get(hostname, {}))


__all__ = ["Running", "running"]
