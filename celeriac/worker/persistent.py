"""``worker --statedb`` / ``worker_state_db``: revoked task ids kept across restarts.

Celery keeps them in a ``shelve`` file; this is a small JSON document written atomically
(temporary file + rename) whenever the revoked set changes and at shutdown, so a crash loses
nothing. Entries older than :data:`~celeriac.worker.state.REVOKE_EXPIRES` are dropped on load.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time

from celeriac.worker.state import REVOKE_EXPIRES, WorkerState

logger = logging.getLogger("celeriac.worker.statedb")


class StateDB:
    """The file behind ``--statedb``; ``%n``, ``%h`` and ``%d`` are expanded by the worker."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self, state: WorkerState) -> int:
        """Merge the stored revoked ids into ``state``; return how many were loaded."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            logger.warning("Ignoring unreadable state db %s: %r", self.path, exc)
            return 0
        cutoff = time.time() - REVOKE_EXPIRES
        revoked = {k: float(v) for k, v in dict(data.get("revoked", {})).items() if v > cutoff}
        state.revoke_many(revoked)
        return len(revoked)

    def save(self, state: WorkerState) -> None:
        """Write the revoked ids (atomically: readers never see half a file)."""
        with state.lock:
            revoked = dict(state.revoked)
        body = json.dumps({"revoked": revoked, "version": 1})
        tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with self._lock:
            try:
                with open(tmp, "w", encoding="utf-8") as handle:
                    handle.write(body)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except OSError as exc:
                logger.error("Could not write the state db %s: %r", self.path, exc)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


__all__ = ["StateDB"]
