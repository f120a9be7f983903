"""Task rate limits: ``rate_limit='10/m'`` delays execution without blocking other tasks.

Per worker (Celery's meaning): one token bucket per task name with capacity 1, filled at the
task's rate and shared by every process of the worker (:mod:`celeriac.worker.buckets`), on
every pool; a request that finds no token waits in the consumer that received it (still
reserved, its message unacknowledged) while other tasks keep flowing. With
``rate_limit_scope='cluster'`` (a task option, or the ``task_rate_limit_scope`` setting) the
bucket lives in the :class:`~celeriac.app.cluster.ClusterStore` and is shared by every
worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from celeriac.worker.buckets import CAPACITY, WorkerBuckets

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.cluster import ClusterStore
    from celeriac.app.task import Task
    from celeriac.worker.request import Request

logger = logging.getLogger(__name__)

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: Any) -> float:
    """Tasks per second: ``'10/m'`` -> 0.1667; a bare number is per second; falsy -> 0 (none)."""
    if not rate:
        return 0.0
    if isinstance(rate, (int, float)):
        return float(rate)
    text = str(rate).strip()
    count, sep, unit = text.partition("/")
    try:
        ops = float(count)
    except ValueError:
        raise ValueError(f"invalid rate limit {rate!r}: use e.g. '10/s', '100/m', '5/h'") from None
    if not sep:
        return ops
    period = _UNITS.get(unit.strip()[:1].lower())
    if period is None:
        raise ValueError(f"invalid rate limit {rate!r}: the unit must be /s, /m or /h")
    return ops / period


class RateLimiter:
    """Rates by task name, read from the task's ``rate_limit`` (else the default setting);
    tokens from the worker's :class:`~celeriac.worker.buckets.WorkerBuckets`, shared by all
    its processes (or from the cluster store for a cluster-wide limit)."""

    def __init__(
        self,
        app: Celery,
        store: ClusterStore | None = None,
        *,
        buckets: WorkerBuckets | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.buckets = buckets or WorkerBuckets()
        self.disabled = bool(app.conf.worker_disable_rate_limits)
        self._rates: dict[str, float] = {}  # tokens/s by task name, as this process knows it
        self.changed = threading.Event()  # a rate changed: waiting requests ask again

    def delay_for(self, task: Task[Any, Any]) -> float:
        """0.0 when ``task`` may run now (a token was taken), else seconds to wait."""
        if self.disabled:
            return 0.0
        rate = self._rates.get(task.name)
        if rate is None:
            rate = parse_rate(task.rate_limit or self.app.conf.task_default_rate_limit)
            self._rates[task.name] = rate
        if not rate:
            return 0.0
        if self.store is not None and self._cluster(task):
            try:
                return self.store.acquire(task.name, rate, CAPACITY)
            except Exception as exc:  # the shared store is down: fall back to the worker's
                logger.warning("Cluster rate limit store failed (%r); limiting per worker", exc)
        return self.buckets.take(task.name, rate)

    def set_rate(self, task_name: str, rate: Any) -> None:
        """Remote control ``rate_limit``: a new rate for one task (None/0: no limit), for every
        process of the worker (each process that gets the command applies it; the first one
        refills the shared bucket)."""
        per_second = parse_rate(rate)  # validate before changing anything
        task = self.app.tasks[task_name]
        task.rate_limit = rate
        self._rates[task_name] = per_second
        self.buckets.set_rate(task_name, per_second)
        self.changed.set()

    def close(self) -> None:
        self.buckets.close()

    def _cluster(self, task: Task[Any, Any]) -> bool:
        scope = task.rate_limit_scope or self.app.conf.task_rate_limit_scope
        return bool(scope == "cluster")


class RateLimitedRequests:
    """Requests waiting for a token, one FIFO per task name; others keep flowing meanwhile."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.queues: dict[str, deque[Request]] = {}
        self.due: dict[str, float] = {}  # monotonic time to ask for the next token

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def hold(self, request: Request) -> bool:
        """True if ``request`` must wait (it is kept here); False: it may run now."""
        name = request.task.name
        waiting = self.queues.get(name)
        if waiting:
            waiting.append(request)
            return True
        wait = self.limiter.delay_for(request.task)
        if wait <= 0:
            return False
        self.queues[name] = deque([request])
        self.due[name] = time.monotonic() + wait
        return True

    def release_due(self) -> list[Request]:
        """Requests that got their token now, oldest first."""
        now = time.monotonic()
        if self.limiter.changed.is_set():
            self.limiter.changed.clear()
            self.due = dict.fromkeys(self.due, now)
        released: list[Request] = []
        for name, due in list(self.due.items()):
            if due > now:
                continue
            waiting = self.queues[name]
            while waiting:
                wait = self.limiter.delay_for(waiting[0].task)
                if wait > 0:
                    self.due[name] = now + wait
                    break
                released.append(waiting.popleft())
            if not waiting:
                del self.queues[name], self.due[name]
        return released

    def next_due(self) -> float | None:
        return min(self.due.values()) if self.due else None

    def requests(self) -> list[Request]:
        return [request for waiting in self.queues.values() for request in waiting]

    def remove(self, task_ids: set[str]) -> list[Request]:
        """Take out the requests for ``task_ids`` (revoked while waiting)."""
        removed: list[Request] = []
        for name in list(self.queues):
            waiting = self.queues[name]
            removed += [r for r in waiting if r.id in task_ids]
            kept = deque(r for r in waiting if r.id not in task_ids)
            if kept:
                self.queues[name] = kept
            else:
                del self.queues[name], self.due[name]
        return removed

    def clear(self) -> list[Request]:
        held = self.requests()
        self.queues.clear()
        self.due.clear()
        return held


__all__ = ["RateLimitedRequests", "RateLimiter", "parse_rate"]
