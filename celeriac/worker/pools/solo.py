"""The solo pool: runs each job inline, in the consumer's thread (one at a time)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from celeriac.worker.pools.base import Job, Pool, run_batch

#: Jobs run one after another per ``submit_many`` (their results stored in one round trip).
BATCH = 64


class SoloPool(Pool):
    """No concurrency: ``submit`` returns when the task finished. Good for debugging."""

    name = "solo"
    inline = True
    #: True while a task runs: a cold shutdown must then interrupt the consumer's own thread.
    executing = False
    #: Called with each job just before it runs.
    on_job_start: Callable[[Job], None] | None = None

    def start(self) -> None:
        self.concurrency = 1

    def free_slots(self) -> int:
        return 1

    def accepts(self) -> int:
        return BATCH

    def submit_many(self, jobs: Sequence[Job]) -> None:
        self.executing = True
        try:
            rest = run_batch(self.app, jobs, self.hostname, self.on_result, self.on_job_start)
        finally:
            self.executing = False
        for result in rest:
            self.on_result(result)

    def shutdown(self, grace: float | None = None) -> None:
        """Nothing runs in the background."""


__all__ = ["SoloPool"]
