"""Task rate limits: ``rate_limit='10/m'`` delays execution without blocking other tasks.

Per worker (Celery's meaning): one token bucket per task name with capacity 1, filled at the
task's rate; a request that finds no token waits in the consumer (still reserved, its message
unacknowledged) while other tasks keep flowing. With ``rate_limit_scope='cluster'`` (a task
option, or the ``task_rate_limit_scope`` setting) the bucket lives in the
:class:`~celeriac.cluster_store.ClusterStore` and is shared by every worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.cluster_store import ClusterStore
    from celeriac.task import Task
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


class TokenBucket:
    """Celery's ``kombu.utils.limits.TokenBucket``: ``fill_rate`` tokens/s up to ``capacity``."""

    def __init__(self, fill_rate: float, capacity: float = 1.0) -> None:
        self.fill_rate = fill_rate
        self.capacity = capacity
        self._tokens = capacity
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.fill_rate)
        self._stamp = now

    def can_consume(self, tokens: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def expected_time(self, tokens: float = 1.0) -> float:
        """Seconds until ``tokens`` are available."""
        self._refill()
        return max(0.0, (tokens - self._tokens) / self.fill_rate)


class RateLimiter:
    """Buckets by task name, read from the task's ``rate_limit`` (else the default setting)."""

    def __init__(
        self, app: Celery, store: ClusterStore | None = None, *, share: float = 1.0
    ) -> None:
        self.app = app
        self.store = store
        #: This process's part of a per-worker rate (prefork children that consume for
        #: themselves each take 1/concurrency of it).
        self.share = share
        self.disabled = bool(app.conf.worker_disable_rate_limits)
        self._buckets: dict[str, TokenBucket | None] = {}
        self._lock = threading.Lock()
        self.changed = threading.Event()  # a rate changed: waiting requests ask again

    def delay_for(self, task: Task[Any, Any]) -> float:
        """0.0 when ``task`` may run now (a token was taken), else seconds to wait."""
        if self.disabled:
            return 0.0
        with self._lock:
            bucket = self._bucket(task)
            if bucket is None:
                return 0.0
            if not self._cluster(task):
                return 0.0 if bucket.can_consume(1) else max(bucket.expected_time(1), 0.001)
        store = self.store
        if store is None:
            return 0.0
        try:
            return store.acquire(task.name, bucket.fill_rate / self.share, bucket.capacity)
        except Exception as exc:  # the shared store is down: fall back to this worker's bucket
            logger.warning("Cluster rate limit store failed (%r); limiting per worker", exc)
            with self._lock:
                return 0.0 if bucket.can_consume(1) else max(bucket.expected_time(1), 0.001)

    def set_rate(self, task_name: str, rate: Any) -> None:
        """Remote control ``rate_limit``: a new rate for one task (None/0: no limit)."""
        parse_rate(rate)  # validate before changing anything
        task = self.app.tasks[task_name]
        with self._lock:
            task.rate_limit = rate
            self._buckets.pop(task_name, None)
        self.changed.set()

    def _bucket(self, task: Task[Any, Any]) -> TokenBucket | None:
        if task.name not in self._buckets:
            rate = parse_rate(task.rate_limit or self.app.conf.task_default_rate_limit)
            self._buckets[task.name] = TokenBucket(rate * self.share) if rate else None
        return self._buckets[task.name]

    def _cluster(self, task: Task[Any, Any]) -> bool:
        scope = getattr(task, "rate_limit_scope", None) or self.app.conf.task_rate_limit_scope
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


__all__ = ["RateLimitedRequests", "RateLimiter", "TokenBucket", "parse_rate"]
