"""The threads pool: ``concurrency`` threads taking jobs from one queue."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from celeriac.worker.pools.base import Job, Pool, ResultCallback, run_job

if TYPE_CHECKING:
    from celeriac.app import Celery


class ThreadsPool(Pool):
    """Threads share the app (and its backend); each job reports through ``on_result``."""

    name = "threads"

    def __init__(
        self, app: Celery, concurrency: int, *, on_result: ResultCallback, hostname: str
    ) -> None:
        super().__init__(app, concurrency, on_result=on_result, hostname=hostname)
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        self._spawn(self.concurrency)

    def _spawn(self, n: int) -> None:
        for _ in range(n):
            index = len(self._threads) + 1
            thread = threading.Thread(
                target=self._run, name=f"{self.name}-worker-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def free_slots(self) -> int:
        with self._lock:
            return max(0, self.concurrency - self._busy)

    def submit_many(self, jobs: Sequence[Job]) -> None:
        with self._lock:
            self._busy += len(jobs)
        for job in jobs:
            self._jobs.put(job)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            result = run_job(self.app, job, self.hostname)
            with self._lock:
                self._busy -= 1
            self.on_result(result)

    def grow(self, n: int = 1) -> None:
        self.concurrency += n
        self._spawn(n)

    def shrink(self, n: int = 1) -> None:
        n = min(n, self.concurrency - 1)
        self.concurrency -= n
        for _ in range(n):
            self._jobs.put(None)
        self._threads = [t for t in self._threads if t.is_alive()]

    def shutdown(self, grace: float | None = None) -> None:
        """Let running jobs finish (threads cannot be killed; a cold stop abandons them)."""
        for _ in self._threads:
            self._jobs.put(None)
        deadline = None if grace is None else time.monotonic() + grace
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]


__all__ = ["ThreadsPool"]
