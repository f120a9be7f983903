"""What one worker knows about its tasks: reserved, active, revoked ids and counters.

Remote control (``inspect active``, ``revoke``) reads and writes this object; the consumer is
the only writer of ``reserved``/``active``. The lock makes reads from other threads safe.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celeriac.worker.request import Request

#: How many revoked ids are remembered (Celery keeps 50,000 by default).
REVOKED_LIMIT = 50_000
#: Seconds a revoked id is remembered (Celery's REVOKE_EXPIRES: three hours).
REVOKE_EXPIRES = 10800.0


@dataclass
class WorkerState:
    """Reserved (received, not started) and active (in the pool) requests by delivery tag."""

    reserved: dict[str, Request] = field(default_factory=dict)
    active: dict[str, Request] = field(default_factory=dict)
    revoked: dict[str, float] = field(default_factory=dict)
    #: task id -> signal number, for running tasks terminated by ``revoke(terminate=True)``.
    terminated: dict[str, int] = field(default_factory=dict)
    total_count: Counter[str] = field(default_factory=Counter)
    #: delivery tag -> when its task started (Unix time), for ``inspect active``.
    time_start: dict[str, float] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reserve(self, request: Request) -> None:
        with self.lock:
            self.reserved[request.key] = request

    def activate(self, request: Request) -> None:
        with self.lock:
            self.reserved.pop(request.key, None)
            self.active[request.key] = request
            self.time_start[request.key] = time.time()

    def forget(self, request: Request) -> None:
        """The request left the worker (done, rejected or given back)."""
        with self.lock:
            self.reserved.pop(request.key, None)
            self.active.pop(request.key, None)
            self.time_start.pop(request.key, None)

    def task_done(self, name: str) -> None:
        with self.lock:
            self.total_count[name] += 1

    def revoke(self, task_id: str) -> None:
        self.revoke_many({task_id: time.time()})

    def revoke_many(self, revoked: dict[str, float]) -> list[str]:
        """Add ids (id -> revoke time); return those that were not known yet."""
        with self.lock:
            new = [task_id for task_id in revoked if task_id not in self.revoked]
            self.revoked.update(revoked)
            self._prune()
            return new

    def _prune(self) -> None:
        cutoff = time.time() - REVOKE_EXPIRES
        while self.revoked:
            oldest = next(iter(self.revoked))
            if len(self.revoked) <= REVOKED_LIMIT and self.revoked[oldest] > cutoff:
                break
            self.revoked.pop(oldest)

    def is_revoked(self, task_id: str) -> bool:
        return task_id in self.revoked

    def active_ids(self) -> list[str]:
        with self.lock:
            return [request.id for request in self.active.values()]

    def snapshot(self) -> tuple[list[Request], list[Request]]:
        """(reserved, active) copies, for inspection from another thread."""
        with self.lock:
            return list(self.reserved.values()), list(self.active.values())


__all__ = ["REVOKED_LIMIT", "REVOKE_EXPIRES", "WorkerState"]
