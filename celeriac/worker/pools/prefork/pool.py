"""The pipe-fed prefork pool: ``concurrency`` forked children the consumer feeds through pipes.

A :class:`~celeriac.worker.pools.prefork.supervisor.ChildStrategy` under the prefork
supervisor, which forks, replaces, limits and stops the children. The parent sends batches
of jobs to idle children, each with the call its consumer already decoded (the child decodes
nothing); each child executes, stores the result with its own backend connection and
reports a ``PipeResult`` back, one per job, in order. Because a child runs its jobs in the
order received, the first unreported job of a dead child is the one it was running (lost:
WorkerLostError); the others never started and go back to the consumer. A child tells the
parent as each job starts (``Began``): the consumer acknowledges the message then, never
while it waits in a pipe. When the worker stops, one shared byte tells every child to run
nothing more: each reports what its pipe still holds as not started (given back).
"""

from __future__ import annotations

import itertools
import logging
import mmap
import os
import pickle
import struct
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext
from typing import TYPE_CHECKING, Any

from celeriac import signals, states
from celeriac.events.node import for_node
from celeriac.execution import timelimits
from celeriac.protocol.message import Message
from celeriac.worker.commands import set_time_limits
from celeriac.worker.pools.base import (
    LONG_TASK,
    Job,
    JobResult,
    JobStarted,
    Pool,
    ResultCallback,
    flush_open_batch,
    is_fast,
    lost_result,
    run_batch,
)
from celeriac.worker.pools.prefork.messages import (
    Began,
    PipeJob,
    PipeResult,
    Relay,
    Retire,
    Running,
    Started,
)
from celeriac.worker.pools.prefork.supervisor import (
    Child,
    Supervised,
    enter_child,
    resident_kib,
    send,
)

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger("celeriac.worker.pools.prefork")

#: Jobs sent to a child in one pipe message (their results are stored in one round trip).
BATCH = 2
#: ... while every task the children ran lately was quick (under ``QUICK_TASK``): twice as
#: many results per round trip to the result store, and a job waits behind at most some
#: tens of milliseconds of work. The first slower result ends it (``PreforkPool._batch``).
FAST_BATCH = 4
QUICK_TASK = 0.01
#: Quick results in a row that start the large batches again.
FAST_STREAK = 4
#: A child's started-jobs counter (eight bytes shared with it).
STARTS = struct.Struct("=Q")
#: A job at the head of a child's work this long (s) is looked up in that counter.
QUIET_START = 0.05
#: Batches a child may hold: one running and one waiting in its pipe, so a child never idles
#: while its results travel to the parent and the parent fetches and sends the next batch.
#: Few enough that a long task does not hold many others behind it.
DEPTH = 2


@dataclass(eq=False)
class _Child(Child):
    jobs: Connection  # parent -> child
    results: Connection  # child -> parent
    outstanding: deque[Job] = field(default_factory=deque)
    hard_limit: float | None = None  # of the job at the head of outstanding, once it started
    limit_since: float = 0.0  # monotonic time that job announced its hard limit
    sent: int = 0  # jobs sent over its life (it exits after max_tasks_per_child)
    draining: bool = False  # over worker_max_memory_per_child: finish its jobs, then replace
    released: bool = False  # told to exit after draining
    head_since: float | None = None  # monotonic time the job at the head of outstanding began
    #: Eight bytes shared with the child: how many jobs it has started (it writes the count
    #: before each job runs; the parent reads it, see PreforkPool.report_starts).
    starts: mmap.mmap | None = None
    started_done: int = 0  # jobs with a result reported here that had started
    reported: set[str] = field(default_factory=set)  # keys reported started, no result yet


class PreforkPool(Supervised[_Child], Pool):
    """Child processes made with ``fork``, fed batches through pipes by the consumer."""

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
        # One byte shared with every child (made before they fork): 1 = run nothing more.
        self._hold = mmap.mmap(-1, 1)
        self._fast_streak = 0  # results in a row that ran under QUICK_TASK

    @property
    def _batch(self) -> int:
        """Jobs per pipe message now: FAST_BATCH while the work is quick, else BATCH."""
        return FAST_BATCH if self._fast_streak >= FAST_STREAK else BATCH

    def hold_back(self) -> None:
        self._hold[0] = 1

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.supervisor.start(self.concurrency, in_thread=True)

    def shutdown(self, grace: float | None = None) -> None:
        """Ask children to exit after their jobs; terminate those still running after ``grace``."""
        self.supervisor.shutdown(grace)

    # -- the strategy: children fed through pipes --------------------------------------------
    def spawn_child(self, ctx: ForkContext, name: str, inherited: list[Connection]) -> _Child:
        jobs_r, jobs_w = ctx.Pipe(duplex=False)
        results_r, results_w = ctx.Pipe(duplex=False)
        starts = mmap.mmap(-1, STARTS.size)
        process = ctx.Process(
            target=_child_main,
            args=(
                self.app,
                jobs_r,
                results_w,
                self.hostname,
                self.max_tasks_per_child,
                self.max_memory_per_child,
                self._hold,
                starts,
                [*inherited, jobs_w, results_r],
            ),
            name=name,
            daemon=True,
        )
        process.start()
        jobs_r.close()
        results_w.close()
        return _Child(process, jobs_w, results_r, starts=starts)

    def parent_ends(self, child: _Child) -> list[Connection]:
        return [child.jobs, child.results]

    def listen(self, child: _Child) -> Connection:
        return child.results

    def stop_child(self, child: _Child, warm: bool) -> None:
        send(child.jobs, None)  # it exits after what its pipe holds (cold: it is terminated)

    def may_retire(self, child: _Child) -> bool:
        return not child.outstanding

    def time_limits_changed(self, task_name: str, hard: float | None, soft: float | None) -> None:
        """Every child hears of the new limits before its next job (the same pipe, in order);
        children forked later inherit them from this process."""
        order = Relay("time_limit", {"task_name": task_name, "hard": hard, "soft": soft})
        with self.supervisor.lock:  # the lock submit_many sends under: one writer per pipe
            for child in self.supervisor.children:
                send(child.jobs, order)

    def running_job(self, child: _Child) -> Running | None:
        outstanding = child.outstanding
        if not outstanding:
            return None
        return Running(outstanding[0].task_id, child.limit_since, child.hard_limit)

    def read_child(self, child: _Child) -> None:
        lock = self.supervisor.lock
        try:
            while child.results.poll():
                message = child.results.recv()
                if isinstance(message, Retire):  # over its memory limit: send it nothing more
                    with lock:
                        child.draining = True
                    self._release_if_drained(child)
                    continue
                if isinstance(message, Began):  # its early ack goes now
                    self._report_started(child, message.key)
                    continue
                if isinstance(message, Started):  # the job at the head starts, hard-limited
                    child.limit_since = time.monotonic()
                    child.hard_limit = message.hard_limit
                    continue
                results: list[PipeResult] = message
                for r in results:
                    quick = r.runtime < QUICK_TASK
                    self._fast_streak = self._fast_streak + 1 if quick else 0
                    with lock:
                        child.outstanding.popleft()
                        child.reported.discard(r.key)
                        child.started_done += r.started
                        child.hard_limit = None
                        child.head_since = time.monotonic() if child.outstanding else None
                    self.on_result(
                        JobResult(
                            r.key,
                            r.task_id,
                            r.state,
                            r.runtime,
                            r.summary,
                            r.requeue,
                            started=r.started,
                        )
                    )
                self._release_if_drained(child)
        except (EOFError, OSError):
            pass  # the child is gone; its sentinel reports it

    def watch(self, child: _Child) -> None:
        """A job at the head of a child's work for a while has most likely started without a
        word (a task that was fast before): report its start, so its early ack goes."""
        since = child.head_since
        if since is not None and time.monotonic() - since >= QUIET_START:
            self.report_starts(child)

    def report_starts(self, child: _Child) -> None:
        """Report as started the jobs ``child`` counted as started (its shared counter)
        that have neither a result nor a report yet."""
        if child.starts is None:
            return
        (count,) = STARTS.unpack_from(child.starts, 0)
        with self.supervisor.lock:
            started = itertools.islice(child.outstanding, max(0, count - child.started_done))
            keys = [job.key for job in started]
        for key in keys:
            self._report_started(child, key)

    def unstarted(self) -> int:
        """Jobs in the children's pipes not started yet (``CountsStarts``): each child's
        outstanding jobs less those its shared counter shows started without a result."""
        waiting = 0
        with self.supervisor.lock:
            for child in self.supervisor.children:
                if child.starts is None or not child.outstanding:
                    waiting += len(child.outstanding)
                    continue
                (count,) = STARTS.unpack_from(child.starts, 0)
                waiting += max(0, len(child.outstanding) - (count - child.started_done))
        return waiting

    def _report_started(self, child: _Child, key: str) -> None:
        if key not in child.reported:
            child.reported.add(key)
            self.on_result(JobStarted(key))

    def settle(self, child: _Child, exitcode: int | None) -> None:
        """Report the jobs of a dead child: those it had started are reported started first
        (their early acks go, so none of them is given back to run again); the first was
        running (lost, or killed at its hard limit), the others go back to the consumer."""
        self.report_starts(child)
        if self.supervisor.terminated:
            return
        jobs = list(child.outstanding)
        if jobs and child.killed_for is not None:
            self.on_result(_timed_out(jobs[0], child.killed_for, exitcode))
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

    # -- jobs --------------------------------------------------------------------------------
    def free_slots(self) -> int:
        supervisor = self.supervisor
        with supervisor.lock:
            if supervisor.closing:
                return 0
            return sum(self._room(c) for c in supervisor.children if not c.retiring)

    def submit_many(self, jobs: Sequence[Job]) -> None:
        with self.supervisor.lock:
            children = self.supervisor.children
            todo = list(jobs)
            while todo:
                # The least loaded child first, so work spreads evenly.
                open_ = [c for c in children if not c.retiring and self._room(c) > 0]
                if not open_:  # a task turned long since free_slots(): the promise stands
                    open_ = [c for c in children if not c.retiring and self._room(c, 0) > 0]
                if not open_:
                    # A child may have started draining (memory limit) since free_slots():
                    # it still runs what reaches its pipe before it is told to exit.
                    open_ = [c for c in children if c.draining and not c.released]
                if not open_:
                    raise RuntimeError("submit_many() called with no free slot")
                child = min(open_, key=lambda c: len(c.outstanding))
                batch = self._batch
                size = min(batch, self._room(child, 0) or batch)
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
        room = self._batch * DEPTH - len(child.outstanding)
        if self.max_tasks_per_child:
            room = min(room, int(self.max_tasks_per_child) - child.sent)
        return max(0, room)

    def _release_if_drained(self, child: _Child) -> None:
        """A draining child with nothing left to run is told to exit; it is then replaced."""
        with self.supervisor.lock:
            if child.draining and not child.outstanding and not child.released:
                child.released = True  # still draining: it gets no new jobs before it exits
                send(child.jobs, None)


def _timed_out(job: Job, limit: float, exitcode: int | None) -> JobResult:
    summary = f"TimeLimitExceeded({limit!r})"
    return JobResult(
        job.key, job.task_id, states.FAILURE, limit, summary, exitcode=exitcode, timeout=limit
    )


def _send_jobs(child: _Child, jobs: Sequence[Job]) -> None:
    try:
        send(child.jobs, [_payload(job) for job in jobs])
    except (pickle.PicklingError, TypeError, AttributeError):
        # A decoded argument that does not pickle: the child decodes the message itself.
        send(child.jobs, [_payload(job, decoded=False) for job in jobs])


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
    hold: mmap.mmap,
    starts: mmap.mmap,
    inherited: list[Connection],
) -> None:
    """A child's life: run batches until told to stop (None) or ``max_tasks`` is reached.

    Past ``max_memory_kib`` of resident memory it asks to retire (Celery's
    ``worker_max_memory_per_child``); the parent sends it nothing more, lets it finish what
    its pipe holds, then stops and replaces it."""
    enter_child(inherited)

    def send_results(reports: list[JobResult]) -> None:
        results.send(
            [
                PipeResult(r.key, r.task_id, r.state, r.runtime, r.summary, r.requeue, r.started)
                for r in reports
            ]
        )

    started = 0

    def began(job: Job) -> None:
        # Every start is counted where the parent reads it, a fast task's too: a cold stop
        # kills this process at any point, and a task whose start the parent knows is never
        # given back to run again. Only a task not known to be fast also says so through
        # the pipe (its early ack goes at once); the parent reads the count of the others
        # when it wakes, and at the latest when this process dies.
        nonlocal started
        started += 1
        STARTS.pack_into(starts, 0, started)
        if not is_fast(job.name):
            results.send(Began(job.key))

    def holding_back() -> bool:
        return bool(hold[0])

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
            if isinstance(batch, Relay):  # new time limits, before the jobs sent after them
                set_time_limits(app, **batch.arguments)
                continue
            # One pipe message per flushed batch of results, not one per job.
            rest = run_batch(
                app,
                [_job(p) for p in batch],
                hostname,
                lambda r: send_results([r]) if isinstance(r, JobResult) else None,
                on_start=began,
                holding_back=holding_back,
            )
            if rest:
                send_results(rest)
            done += len(batch)
            if max_tasks and done >= max_tasks:
                break
            if max_memory_kib and not retiring and resident_kib() > max_memory_kib:
                retiring = True
                results.send(Retire())
    finally:
        node = for_node(hostname)
        if node is not None:
            node.close()  # this child's events connection
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)


def _recv(conn: Connection) -> Any:
    try:
        return conn.recv()
    except EOFError:
        return None


__all__ = ["BATCH", "DEPTH", "FAST_BATCH", "QUICK_TASK", "PreforkPool"]
