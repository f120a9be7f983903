"""The solo pool: runs each job inline, in the consumer's thread (one at a time)."""

from __future__ import annotations

from collections.abc import Sequence

from celeriac.worker.pools.base import Job, Pool, run_job


class SoloPool(Pool):
    """No concurrency: ``submit`` returns when the task finished. Good for debugging."""

    name = "solo"
    #: True while a task runs: a cold shutdown must then interrupt the consumer's own thread.
    executing = False

    def start(self) -> None:
        self.concurrency = 1

    def free_slots(self) -> int:
        return 1

    def submit_many(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self.executing = True
            try:
                result = run_job(self.app, job, self.hostname)
            finally:
                self.executing = False
            self.on_result(result)

    def shutdown(self, grace: float | None = None) -> None:
        """Nothing runs in the background."""


__all__ = ["SoloPool"]
