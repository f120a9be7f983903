"""The asyncio pool (``-P asyncio``): one event loop, ``-c`` tasks in flight.

``async def`` tasks run as ``asyncio`` tasks on one loop in a thread of the worker process,
so a thousand tasks awaiting network I/O cost a thousand coroutines, not a thousand
threads or processes. Plain ``def`` tasks are run in a small thread pool so they cannot
block the loop. Each task's ``self.request`` is its own (the request stack is a contextvar).
What it cannot do: kill a task stuck in a blocking call (no hard time limit for blocking
code); ``terminate_job`` cancels the task's coroutine at its next ``await``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.execution.aio import is_async_task
from celeriac.execution.execute import execute_async
from celeriac.protocol import task_v2
from celeriac.worker.pools.base import (
    Job,
    JobResult,
    JobStarted,
    Pool,
    ResultCallback,
    result_from_outcome,
    run_job,
)

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger(__name__)

#: Threads for plain ``def`` tasks sent to an asyncio worker.
SYNC_THREADS = 4


class AsyncioPool(Pool):
    """Runs up to ``concurrency`` tasks at once on one event loop."""

    name = "asyncio"

    def __init__(
        self, app: Celery, concurrency: int, *, on_result: ResultCallback, hostname: str
    ) -> None:
        super().__init__(app, concurrency, on_result=on_result, hostname=hostname)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._closing = False
        self._running: dict[str, asyncio.Task[Any]] = {}  # task id -> its asyncio task
        self._sync = concurrent.futures.ThreadPoolExecutor(
            min(SYNC_THREADS, self.concurrency), thread_name_prefix="asyncio-pool-sync"
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_loop, name="asyncio-pool", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def free_slots(self) -> int:
        with self._lock:
            return 0 if self._closing else max(0, self.concurrency - self._busy)

    def submit_many(self, jobs: Sequence[Job]) -> None:
        with self._lock:
            self._busy += len(jobs)
        self._loop.call_soon_threadsafe(self._start_jobs, list(jobs))

    def _start_jobs(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.on_result(JobStarted(job.key))  # each runs now: its early ack goes
            task = self._loop.create_task(self._run(job))
            self._running[job.task_id] = task

    async def _run(self, job: Job) -> None:
        try:
            result = await self._execute(job)
        except asyncio.CancelledError:
            result = self._cancelled(job)
        except Exception as exc:  # e.g. the result store is down: report, keep the loop alive
            logger.exception("Internal error running task %s[%s]", job.name, job.task_id)
            result = JobResult(job.key, job.task_id, states.FAILURE, summary=repr(exc))
        finally:
            self._running.pop(job.task_id, None)
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()
        self.on_result(result)

    async def _execute(self, job: Job) -> JobResult:
        app = self.app
        call = job.call or task_v2.decode(job.message, accept=app.conf.accept_content)
        task = app.tasks.get(call.name)
        if task is None or not is_async_task(task):
            # Plain tasks (and unknown names, reported by run_job) must not block the loop.
            return await self._loop.run_in_executor(self._sync, run_job, app, job, self.hostname)
        outcome = await execute_async(
            app,
            task,
            call,
            hostname=self.hostname,
            delivery_info=job.delivery_info,
            properties=job.message.properties,
        )
        return result_from_outcome(job, outcome)

    def _cancelled(self, job: Job) -> JobResult:
        try:
            self.app.backend.mark_as_revoked(job.task_id, "terminated")
        except Exception as exc:
            logger.debug("Could not store REVOKED for %s: %r", job.task_id, exc)
        return JobResult(job.key, job.task_id, states.REVOKED, summary="terminated")

    def terminate_job(self, task_id: str, signum: int | None = None) -> bool:
        task = self._running.get(task_id)
        if task is None:
            return False
        self._loop.call_soon_threadsafe(task.cancel)
        return True

    def grow(self, n: int = 1) -> None:
        with self._lock:
            self.concurrency += n

    def shrink(self, n: int = 1) -> None:
        with self._lock:
            self.concurrency = max(1, self.concurrency - n)

    def shutdown(self, grace: float | None = None) -> None:
        """Wait up to ``grace`` seconds for running tasks, cancel the rest, stop the loop."""
        with self._lock:
            self._closing = True
            self._idle.wait_for(lambda: self._busy == 0, timeout=grace)
        if self._thread is None:  # never started
            self._loop.close()
            return
        if self._busy:
            future = asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop)
            future.result(timeout=5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._sync.shutdown(wait=False, cancel_futures=True)

    async def _cancel_all(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["AsyncioPool"]
