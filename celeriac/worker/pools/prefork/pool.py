"""The prefork pool: ``concurrency`` forked child processes fed through pipes.

The parent sends batches of jobs to idle children, each with the call its consumer already
decoded (the child decodes nothing); each child executes, stores the result with its own
backend connection and reports a ``PipeResult`` back, one per job, in order. Results and
deaths are read by one thread with ``multiprocessing.connection.wait``. Because a child runs
its jobs in the order received, the first unreported job of a dead child is the one it was
running (lost: WorkerLostError); the others never started and go back to the consumer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import resource
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from celeriac import signals, states
from celeriac.execution import timelimits
from celeriac.protocol.message import Message
from celeriac.worker.pools.base import (
    LONG_TASK,
    Job,
    JobResult,
    ResultCallback,
    flush_open_batch,
    lost_result,
    run_batch,
)
from celeriac.worker.pools.prefork.forked import ForkedChild, ForkedPool
from celeriac.worker.pools.prefork.messages import PipeJob, PipeResult, Retire, Started

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger("celeriac.worker.pools.prefork")

#: Jobs sent to a child in one pipe message (their results are stored in one round trip).
BATCH = 2
#: Batches a child may hold: one running and one waiting in its pipe, so a child never idles
#: while its results travel to the parent and the parent fetches and sends the next batch.
#: Few enough that a long task does not hold many others behind it.
DEPTH = 2


@dataclass(eq=False)
class _Child(ForkedChild):
    jobs: Connection  # parent -> child
    results: Connection  # child -> parent
    outstanding: deque[Job] = field(default_factory=deque)
    retiring: bool = False
    deadline: float | None = None  # monotonic time its running job hits its hard limit
    hard_limit: float | None = None
    timed_out: float | None = None  # killed for exceeding this hard limit
    sent: int = 0  # jobs sent over its life (it exits after max_tasks_per_child)
    draining: bool = False  # over worker_max_memory_per_child: finish its jobs, then replace
    released: bool = False  # told to exit after draining
    head_since: float | None = None  # monotonic time the job at the head of outstanding began


class PreforkPool(ForkedPool):
    """Child processes made with ``fork``; the parent supervises and replaces dead ones."""

    _children: list[_Child]

    def __init__(
        self,
        app: Celery,
        concurrency: int,
        *,
        on_result: ResultCallback,
        hostname: str,
        max_tasks_per_child: int | None = None,
    ) -> None:
        super().__init__(app, concurrency, on_result=on_result, hostname=hostname)
        self.max_tasks_per_child = max_tasks_per_child or app.conf.worker_max_tasks_per_child
        self.max_memory_per_child: int | None = app.conf.worker_max_memory_per_child
        self._terminating = False
        self._reader: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            for _ in range(self.concurrency):
                self._children.append(self._spawn())
        self._reader = threading.Thread(target=self._read_loop, name="prefork-results", daemon=True)
        self._reader.start()

    def _spawn(self) -> _Child:
        jobs_r, jobs_w = self._ctx.Pipe(duplex=False)
        results_r, results_w = self._ctx.Pipe(duplex=False)
        # Parent-side ends of every pipe are closed in the child, so only the parent holds them.
        inherited = [c.jobs for c in self._children] + [c.results for c in self._children]
        process = self._ctx.Process(
            target=_child_main,
            args=(
                self.app,
                jobs_r,
                results_w,
                self.hostname,
                self.max_tasks_per_child,
                self.max_memory_per_child,
                [*inherited, jobs_w, results_r],
            ),
            name=f"ForkPoolWorker-{len(self._children) + 1}",
            daemon=True,
        )
        process.start()
        jobs_r.close()
        results_w.close()
        return _Child(process, jobs_w, results_r)

    def shutdown(self, grace: float | None = None) -> None:
        """Ask children to exit after their jobs; kill those still running after ``grace``."""
        with self._lock:
            self._closing = True
            for child in self._children:
                _send(child, None)
        deadline = None if grace is None else time.monotonic() + grace
        if self._reader is not None:
            self._reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._reader is not None and self._reader.is_alive():
            self._terminate_all()
            self._reader.join(5.0)

    def _terminate_all(self) -> None:
        with self._lock:
            self._terminating = True
            children = list(self._children)
        for child in children:
            if child.process.is_alive():
                child.process.terminate()
        for child in children:
            child.process.join(2.0)
            if child.process.is_alive():
                child.process.kill()

    # -- jobs --------------------------------------------------------------------------------
    def free_slots(self) -> int:
        with self._lock:
            if self._closing:
                return 0
            return sum(self._room(c) for c in self._children if not c.retiring)

    def submit_many(self, jobs: Sequence[Job]) -> None:
        with self._lock:
            todo = list(jobs)
            while todo:
                # The least loaded child first, so work spreads evenly.
                open_ = [c for c in self._children if not c.retiring and self._room(c) > 0]
                if not open_:  # a task turned long since free_slots(): the promise stands
                    open_ = [c for c in self._children if not c.retiring and self._room(c, 0) > 0]
                if not open_:
                    # A child may have started draining (memory limit) since free_slots():
                    # it still runs what reaches its pipe before it is told to exit.
                    open_ = [c for c in self._children if c.draining and not c.released]
                if not open_:
                    raise RuntimeError("submit_many() called with no free slot")
                child = min(open_, key=lambda c: len(c.outstanding))
                size = min(BATCH, self._room(child, 0) or BATCH)
                chunk, todo = todo[:size], todo[size:]
                if not child.outstanding:
                    child.head_since = time.monotonic()
                child.outstanding.extend(chunk)
                child.sent += len(chunk)
                _send_jobs(child, chunk)

    def _room(self, child: _Child, long_task: float = LONG_TASK) -> int:
        """Jobs ``child`` may take now: two batches, never past its ``max_tasks_per_child``
        (a child that exits with jobs still in its pipe would lose them), and none while its
        task runs long (they wait for the first free child instead: Celery's ``-O fair``)."""
        if child.draining:
            return 0
        since = child.head_since
        if long_task and since is not None and time.monotonic() - since >= long_task:
            return 0
        room = BATCH * DEPTH - len(child.outstanding)
        if self.max_tasks_per_child:
            room = min(room, int(self.max_tasks_per_child) - child.sent)
        return max(0, room)

    def terminate_job(self, task_id: str, signum: int | None = None) -> bool:
        with self._lock:
            for child in self._children:
                if child.outstanding and child.outstanding[0].task_id == task_id:
                    os.kill(child.pid, signum or signal.SIGTERM)
                    return True
        return False

    def shrink(self, n: int = 1) -> None:
        with self._lock:
            idle = [c for c in self._children if not c.outstanding and not c.retiring]
            for child in idle[: min(n, self.size - 1)]:
                child.retiring = True
                self.concurrency -= 1
                _send(child, None)

    # -- the result reader -------------------------------------------------------------------
    def _read_loop(self) -> None:
        while True:
            with self._lock:
                children = list(self._children)
            if not children:
                return
            waitables: dict[Any, _Child] = {c.results: c for c in children}
            waitables.update({c.process.sentinel: c for c in children})
            for ready in wait(list(waitables), timeout=self._wait_time(children)):
                child = waitables[ready]
                if ready is child.results:
                    self._read_results(child)
                elif child in self._children:
                    self._child_exited(child)
            self._enforce_hard_limits(children)

    @staticmethod
    def _wait_time(children: list[_Child]) -> float:
        deadlines = [c.deadline for c in children if c.deadline is not None]
        if not deadlines:
            return 0.5
        return max(0.0, min(0.5, min(deadlines) - time.monotonic()))

    def _enforce_hard_limits(self, children: list[_Child]) -> None:
        """Kill children whose job ran past its hard limit; ``_child_exited`` reports it."""
        now = time.monotonic()
        for child in children:
            if child.deadline is not None and now >= child.deadline and child.timed_out is None:
                child.timed_out = child.hard_limit
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)

    def _read_results(self, child: _Child) -> None:
        try:
            while child.results.poll():
                message = child.results.recv()
                if isinstance(message, Retire):  # over its memory limit: send it nothing more
                    with self._lock:
                        child.draining = True
                    self._release_if_drained(child)
                    continue
                if isinstance(message, Started):  # the job at the head starts, hard-limited
                    child.hard_limit = message.hard_limit
                    child.deadline = time.monotonic() + message.hard_limit
                    continue
                results: list[PipeResult] = message
                for r in results:
                    with self._lock:
                        child.outstanding.popleft()
                        child.deadline = child.hard_limit = None
                        child.head_since = time.monotonic() if child.outstanding else None
                    self.on_result(
                        JobResult(r.key, r.task_id, r.state, r.runtime, r.summary, r.requeue)
                    )
                self._release_if_drained(child)
        except (EOFError, OSError):
            pass  # the child is gone; its sentinel reports it

    def _release_if_drained(self, child: _Child) -> None:
        """A draining child with nothing left to run is told to exit; it is then replaced."""
        with self._lock:
            if child.draining and not child.outstanding and not child.released:
                child.released = True  # still draining: it gets no new jobs before it exits
                _send(child, None)

    def _child_exited(self, child: _Child) -> None:
        self._read_results(child)  # results written just before dying still count
        child.process.join()
        exitcode = child.process.exitcode
        with self._lock:
            self._children.remove(child)
            child.jobs.close()
            child.results.close()
            jobs = list(child.outstanding)
            respawn = not (self._closing or child.retiring)
            if respawn:
                self._children.append(self._spawn())
        if self._terminating:
            return
        if jobs and child.timed_out is not None:
            self.on_result(_timed_out(jobs[0], child.timed_out, exitcode))
        elif jobs:
            logger.error(
                "Process %s (pid %s) died with exitcode %s while running %s[%s]",
                child.process.name,
                child.pid,
                exitcode,
                jobs[0].name,
                jobs[0].task_id,
            )
            self.on_result(lost_result(jobs[0], exitcode))
        for job in jobs[1:]:
            self.on_result(JobResult(job.key, job.task_id, "PENDING", started=False))


def _timed_out(job: Job, limit: float, exitcode: int | None) -> JobResult:
    summary = f"TimeLimitExceeded({limit!r})"
    return JobResult(
        job.key, job.task_id, states.FAILURE, limit, summary, exitcode=exitcode, timeout=limit
    )


def _send(child: _Child, obj: Any) -> None:
    # A dead child's pipe is broken; the reader sees its sentinel and reports its jobs.
    with contextlib.suppress(OSError):
        child.jobs.send(obj)


def _send_jobs(child: _Child, jobs: Sequence[Job]) -> None:
    try:
        _send(child, [_payload(job) for job in jobs])
    except (pickle.PicklingError, TypeError, AttributeError):
        # A decoded argument that does not pickle: the child decodes the message itself.
        _send(child, [_payload(job, decoded=False) for job in jobs])


def _payload(job: Job, decoded: bool = True) -> PipeJob:
    """The job for the pipe: the consumer's decoded call when there is one (the child then
    decodes nothing), else the message for the child to decode."""
    m = job.message
    if decoded and job.call is not None:
        return PipeJob(
            job.key, job.task_id, job.name, job.call, dict(m.properties), dict(job.delivery_info)
        )
    return PipeJob(
        job.key,
        job.task_id,
        job.name,
        None,
        dict(m.properties),
        dict(job.delivery_info),
        m.body,
        m.content_type,
        m.content_encoding,
        dict(m.headers),
    )


def _job(p: PipeJob) -> Job:
    message = Message(
        body=p.body,
        content_type=p.content_type,
        content_encoding=p.content_encoding,
        headers=p.headers or {},
        properties=p.properties,
    )
    return Job(p.key, p.task_id, p.name, message, p.delivery_info, p.call)


def _child_main(
    app: Celery,
    jobs: Connection,
    results: Connection,
    hostname: str,
    max_tasks: int | None,
    max_memory_kib: int | None,
    inherited: list[Connection],
) -> None:
    """A child's life: run batches until told to stop (None) or ``max_tasks`` is reached.

    Past ``max_memory_kib`` of resident memory it asks to retire (Celery's
    ``worker_max_memory_per_child``); the parent sends it nothing more, lets it finish what
    its pipe holds, then stops and replaces it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about shutdown
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # drop the parent's Python handler
    for conn in inherited:
        conn.close()
    timelimits.install_alarm_default()

    def send(reports: list[JobResult]) -> None:
        results.send(
            [
                PipeResult(r.key, r.task_id, r.state, r.runtime, r.summary, r.requeue)
                for r in reports
            ]
        )

    def report_start(limit: float) -> None:
        # Everything before this job is stored and reported first: the parent takes its
        # first unreported job for the running one when it kills this process.
        flush_open_batch()
        results.send(Started(limit))

    timelimits.set_hard_limit_reporter(report_start)
    signals.worker_process_init.send(sender=None)
    done = 0
    retiring = False
    try:
        while (batch := _recv(jobs)) is not None:
            # One pipe message per flushed batch of results, not one per job.
            rest = run_batch(app, [_job(p) for p in batch], hostname, lambda r: send([r]))
            if rest:
                send(rest)
            done += len(batch)
            if max_tasks and done >= max_tasks:
                break
            if max_memory_kib and not retiring and resident_kib() > max_memory_kib:
                retiring = True
                results.send(Retire())
    finally:
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)


def resident_kib() -> int:
    """Peak resident memory of this process in KiB (Linux reports ru_maxrss in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _recv(conn: Connection) -> Any:
    try:
        return conn.recv()
    except EOFError:
        return None


__all__ = ["BATCH", "DEPTH", "PreforkPool"]
