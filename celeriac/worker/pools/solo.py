"""The solo pool: runs each job inline, in the consumer's thread (one at a time).

Each job's start is reported synchronously (the consumer sends its early ack right then),
so the rest of a batch is never acknowledged before it runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from celeriac.worker.pools.base import Job, JobStarted, Pool, run_batch

#: Jobs run one after another per ``submit_many`` (their results stored in one round trip).
BATCH = 64


class SoloPool(Pool):
    """No concurrency: ``submit`` returns when the task finished. Good for debugging."""

    name = "solo"
    inline = True
    #: True while a task runs: a cold shutdown must then interrupt the consumer's own thread.
    executing = False
    #: Called with each job just before it runs (after its start is reported).
    on_job_start: Callable[[Job], None] | None = None
    #: Stopping: the jobs of the batch not started yet are not run.
    holding = False
    #: Seconds after which the rest of a batch is given back unstarted (the consumer sets
    #: it from the broker's lease: those messages may no longer be this worker's).
    stall_after: float | None = None
    _began = 0.0  # when the batch or its latest job began (monotonic)

    def start(self) -> None:
        self.concurrency = 1

    def free_slots(self) -> int:
        return 1

    def accepts(self) -> int:
        return BATCH

    def submit_many(self, jobs: Sequence[Job]) -> None:
        self.executing = True
        self._began = time.monotonic()
        try:
            rest = run_batch(
                self.app,
                jobs,
                self.hostname,
                self.on_result,
                on_start=self._started,
                holding_back=self._holding_back,
            )
        finally:
            self.executing = False
        for result in rest:
            self.on_result(result)

    def _started(self, job: Job) -> None:
        # In this thread: the consumer sends the job's early ack before it runs.
        self._began = time.monotonic()
        self.on_result(JobStarted(job.key))
        if self.on_job_start is not None:
            self.on_job_start(job)

    def _holding_back(self) -> bool:
        if self.holding:
            return True
        stall = self.stall_after
        return stall is not None and time.monotonic() - self._began >= stall

    def hold_back(self) -> None:
        self.holding = True

    def shutdown(self, grace: float | None = None) -> None:
        """Nothing runs in the background."""


__all__ = ["SoloPool"]
