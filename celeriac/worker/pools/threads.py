"""The threads pool: ``concurrency`` threads taking batches of jobs from one queue.

An idle thread takes up to ``BATCH`` jobs at once so their results are stored in one round
trip (:func:`~celeriac.worker.pools.base.run_batch`), as a prefork child does. Each job's
start is reported (its early ack is sent then), so the jobs waiting in a thread's batch are
never acknowledged before they run.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from celeriac.worker.pools.base import (
    Job,
    JobStarted,
    Pool,
    ResultCallback,
    is_fast,
    run_batch,
)

#: Jobs one idle thread takes at once (see the prefork pool's BATCH).
BATCH = 4

if TYPE_CHECKING:
    from celeriac.app.base import Celery


class ThreadsPool(Pool):
    """Threads share the app (and its backend); each job reports through ``on_result``."""

    name = "threads"

    def __init__(
        self, app: Celery, concurrency: int, *, on_result: ResultCallback, hostname: str
    ) -> None:
        super().__init__(app, concurrency, on_result=on_result, hostname=hostname)
        self._jobs: queue.SimpleQueue[Sequence[Job] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        self._holding = threading.Event()  # stopping: start nothing more

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

    def accepts(self) -> int:
        return BATCH * self.free_slots()

    def submit_many(self, jobs: Sequence[Job]) -> None:
        with self._lock:
            idle = max(1, self.concurrency - self._busy)
            share = -(-len(jobs) // idle)  # ceil: spread evenly over idle threads
            chunks = [jobs[i : i + share] for i in range(0, len(jobs), share)]
            self._busy += len(chunks)
        for chunk in chunks:
            self._jobs.put(chunk)

    def _run(self) -> None:
        while (jobs := self._jobs.get()) is not None:
            rest = run_batch(
                self.app,
                jobs,
                self.hostname,
                self.on_result,
                on_start=self._started,
                on_late_start=lambda job: self.on_result(JobStarted(job.key)),
                holding_back=self._holding.is_set,
            )
            with self._lock:
                self._busy -= 1
            for result in rest:
                self.on_result(result)

    def _started(self, job: Job) -> None:
        if not is_fast(job.name):  # a fast job's ack follows its result
            self.on_result(JobStarted(job.key))

    def hold_back(self) -> None:
        self._holding.set()

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
