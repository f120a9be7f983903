"""The Pool seam: where jobs run (inline, in threads, in child processes).

Two kinds, one base (:class:`BasePool`: what the worker and remote control see of either):
a :class:`Pool` is fed by the worker's consumer; a :class:`ConsumingPool` has processes that
consume for themselves, and the worker runs it in place of a consumer.

For a fed pool, the consumer owns the broker connection and every ack; the pool only runs
jobs and reports each one with a :class:`JobResult` through ``on_result`` (from any thread:
the consumer queues it and handles it in its own thread), and reports each job's start
with a :class:`JobStarted` first: that is when the consumer acknowledges a message (early
acks), never when the job is handed over, so a job queued in a pool (a thread's batch, a
child's pipe) that dies with the worker was never acknowledged and the broker still has it.
After :meth:`Pool.hold_back` a pool starts nothing more and reports what it holds as not
started (a warm shutdown gives those messages back).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from celeriac import states
from celeriac.backends.capabilities import WriteBatching, write_batching
from celeriac.exceptions import WorkerLostError
from celeriac.execution.execute import execute
from celeriac.execution.hooks import Hook, Outcome
from celeriac.execution.outcomes import lost_summary
from celeriac.execution.pipeline import compose, pipeline_for
from celeriac.protocol import task_v2
from celeriac.protocol.message import Message, TaskCall
from celeriac.protocol.saferepr import saferepr

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.cluster import ClusterStore
    from celeriac.transports.base import Delivery, Transport
    from celeriac.worker.buckets import WorkerBuckets
    from celeriac.worker.liveness import Liveness
    from celeriac.worker.state import WorkerState

logger = logging.getLogger("celeriac.worker.pool")

#: A task that has run this long is "long": prefork queues no more work behind it (the parent
#: sends that child nothing; a child that consumes itself gives back what the broker pushed
#: to it), so other tasks go to idle processes, as with Celery's ``-O fair`` (seconds).
LONG_TASK = 0.25


@dataclass(frozen=True, slots=True)
class Job:
    """One task to run: the raw message (children decode it themselves) and its delivery info."""

    key: str  # the delivery tag: unique per delivery, unlike the task id
    task_id: str
    name: str
    message: Message
    delivery_info: Mapping[str, Any]
    call: TaskCall | None = None  # already decoded; in-process pools reuse it


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a job ended, as the pool reports it to the consumer."""

    key: str
    task_id: str
    state: str
    runtime: float = 0.0
    summary: str = ""  # a short repr of the exception ("" when there is none)
    requeue: bool = False  # the task raised Reject(requeue=True)
    started: bool = True  # False: the pool gives the job back without having run it
    lost: bool = False  # the process running it died (WorkerLostError)
    exitcode: int | None = None
    timeout: float | None = None  # the hard time limit that killed its process


@dataclass(frozen=True, slots=True)
class JobStarted:
    """The job of delivery ``key`` starts now: the consumer sends its early ack (a message is
    acknowledged when its task starts, never before)."""

    key: str


#: What a pool reports to the consumer: a job started, or how it ended.
PoolReport = JobResult | JobStarted
ResultCallback = Callable[[PoolReport], None]


def worker_hooks() -> list[Hook]:
    """The worker's standard pipeline (no app hooks): time limits innermost, around the body.

    A pool runs ``pipeline_for(app, "worker")``: this with the app's hooks inside."""
    return list(compose("worker"))


class BasePool(ABC):
    """What the worker and remote control see of any pool, whoever feeds it: its name and
    size, its processes, the tasks it runs, and how to end one of them."""

    name: ClassVar[str] = ""

    def __init__(self, app: Celery, concurrency: int, *, hostname: str) -> None:
        self.app = app
        self.concurrency = max(1, int(concurrency))
        self.hostname = hostname

    @abstractmethod
    def start(self) -> None:
        """Start threads or processes."""

    @abstractmethod
    def shutdown(self, grace: float | None = None) -> None:
        """Stop: wait up to ``grace`` seconds (None: forever) for running jobs, then terminate."""

    @property
    def size(self) -> int:
        """Number of slots (threads or processes)."""
        return self.concurrency

    def grow(self, n: int = 1) -> None:
        """Add ``n`` slots."""
        raise NotImplementedError(f"the {self.name} pool cannot grow")

    def shrink(self, n: int = 1) -> None:
        """Remove ``n`` slots (idle ones first)."""
        raise NotImplementedError(f"the {self.name} pool cannot shrink")

    def terminate_job(self, task_id: str, signum: int | None = None) -> bool:
        """Stop the job running ``task_id`` (kill its process); False if not possible."""
        return False

    def pids(self) -> list[int]:
        """Process ids of the pool's children (empty for in-process pools)."""
        return []

    def running_ids(self) -> list[str]:
        """Ids of tasks running where the worker's own state does not see them (children
        that consume for themselves)."""
        return []

    def time_limits_changed(self, task_name: str, hard: float | None, soft: float | None) -> None:
        """The ``time_limit`` command changed a task's limits in this process; processes with
        their own copy of the task (pipe-fed prefork children) must hear of it. In-process
        pools share the task: nothing to do."""
        return None


class Pool(BasePool):
    """Runs the jobs the consumer hands it with ``concurrency`` slots and reports results
    through ``on_result``."""

    #: ``submit_many`` runs the jobs in the caller's thread and returns when they are done
    #: (the consumer then settles their acks first: a job runs only after its early ack).
    inline: ClassVar[bool] = False

    def __init__(
        self, app: Celery, concurrency: int, *, on_result: ResultCallback, hostname: str
    ) -> None:
        super().__init__(app, concurrency, hostname=hostname)
        self.on_result = on_result

    @abstractmethod
    def free_slots(self) -> int:
        """How many more jobs the pool would start now."""

    def accepts(self) -> int:
        """How many jobs ``submit_many`` takes now: ``free_slots()``, or more for a pool
        whose idle slot takes a batch (they start one after another in that slot)."""
        return self.free_slots()

    @abstractmethod
    def submit_many(self, jobs: Sequence[Job]) -> None:
        """Start ``jobs`` (never more than ``accepts()``)."""

    def hold_back(self) -> None:
        """Any thread: start no job not yet started; report each such job with
        ``JobResult(started=False)`` (the worker is stopping and gives them back)."""

    def submit(self, job: Job) -> None:
        self.submit_many([job])


class ConsumingPool(BasePool):
    """A pool whose processes fetch their own work from the broker: the worker runs it in
    place of a consumer (``run`` until ``stop``, then ``finish``), and remote control reaches
    the processes through ``relay``."""

    def __init__(
        self,
        app: Celery,
        concurrency: int,
        *,
        hostname: str,
        state: WorkerState,
        transport: Transport,
        queues: Sequence[str],
        prefetch_multiplier: int,
        buckets: WorkerBuckets,
        store: ClusterStore | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        super().__init__(app, concurrency, hostname=hostname)
        self.liveness = liveness  # each consuming process rewrites it while it consumes
        self.state = state
        self.transport = transport  # the parent's own connection (settles a dead child's work)
        self.queues = list(queues)
        self.prefetch_multiplier = prefetch_multiplier
        self.buckets = buckets
        self.store = store

    @abstractmethod
    def run(self) -> None:
        """Supervise the processes until every one has exited after :meth:`stop`."""

    @abstractmethod
    def stop(self, warm: bool = True) -> None:
        """Any thread (or a signal handler): warm lets the running tasks finish."""

    @property
    @abstractmethod
    def cold(self) -> bool:
        """A cold stop was asked for."""

    @abstractmethod
    def finish(self) -> int:
        """After :meth:`run` returned: wait for what is left; the exit code the pool asks
        for (0, or 1 when a process lost the broker for good)."""

    @abstractmethod
    def request_sweep(self) -> None:
        """Revoked ids changed (they reach the processes through :meth:`relay`)."""

    @abstractmethod
    def relay(self, method: str, arguments: dict[str, Any]) -> None:
        """Run remote-control command ``method`` in every process too."""


@runtime_checkable
class RunsInMainThread(Protocol):
    """A pool that runs tasks in the thread that feeds it (the worker's main thread): a cold
    shutdown interrupts the task running there (``executing``)."""

    @property
    def executing(self) -> bool: ...


@runtime_checkable
class RecordsHeld(Protocol):
    """A pool whose process can die with messages its consumer fetched and holds (a prefork
    child that consumes): it is told of every fetch, before the messages are received, so
    that its parent can give back what it held the moment it dies, not a lease later."""

    def fetched(self, deliveries: Sequence[Delivery]) -> None: ...


@runtime_checkable
class CountsStarts(Protocol):
    """A pool that knows which of the jobs handed to it have started, though a start is not
    always reported at once (a fast task's start waits for its result). The consumer's
    prefetch window counts the others only: as in Celery, a task that has started no longer
    waits, and its message is no longer part of the window."""

    def unstarted(self) -> int:
        """How many jobs handed to the pool have not started yet."""
        ...


@runtime_checkable
class HoldsBackWhenStalled(Protocol):
    """A pool that runs a batch of jobs one after another where the consumer cannot look
    between two of them: once ``stall_after`` seconds passed since the batch or its previous
    job began (a long job, or the process was stopped), it starts no more of the batch and
    gives the rest back unstarted, for the consumer to check their leases first."""

    stall_after: float | None


#: A task whose last run here took less than this is "fast": its result may wait in a write
#: batch while the next job runs. Before any other job the batch is flushed and reported, so
#: a slow (or never seen) task never holds back the results of the ones before it.
FAST_TASK = 0.002
_last_runtime: dict[str, float] = {}
_open = threading.local()  # this thread's open batch: its flush function


def run_batch(
    app: Celery,
    jobs: Sequence[Job],
    hostname: str,
    report: ResultCallback | None = None,
    on_start: Callable[[Job], None] | None = None,
    holding_back: Callable[[], bool] | None = None,
    on_late_start: Callable[[Job], None] | None = None,
) -> list[JobResult]:
    """Run ``jobs`` in order, their results written to the backend in as few round trips as
    possible; return the results not yet handed to ``report`` (the caller reports them).

    Results reach ``report`` only after they are stored (acks_late acks follow the report).
    ``on_start`` is called with each job just before it runs. Once ``holding_back()`` is
    true, the jobs not started are not run: each ends as ``JobResult(started=False)``.
    ``on_late_start`` reports the start of a job whose task was to be fast (so ``on_start``
    did not report it) and was not: at once, before its result is stored.
    """
    batch: WriteBatching | None = None  # the store, when it holds this run's writes
    try:
        store = write_batching(app.backend)
        if store is not None and store.open_write_batch():
            batch = store
    except Exception:  # a broken backend: run_job reports it per job, as without batches
        batch = None
    done: list[JobResult] = []

    def flush() -> list[JobResult]:
        if batch is not None:
            try:
                batch.flush_writes()
            except Exception:  # as a failed store in the hook: logged, the job's state stays
                logger.exception("Storing the results of %d task(s) failed", len(done))
        out = list(done)
        done.clear()
        return out

    def flush_and_report() -> None:
        results = flush()
        if results and report is not None:
            for result in results:
                report(result)

    _open.flush = flush_and_report if report is not None else None
    try:
        for job in jobs:
            if holding_back is not None and holding_back():
                done.append(not_started(job))
                continue
            if done and report is not None and not _is_fast(job.name):
                flush_and_report()
            expected_fast = _is_fast(job.name)
            if on_start is not None:
                on_start(job)
            result = run_job(app, job, hostname)
            _last_runtime[job.name] = result.runtime
            done.append(result)
            if expected_fast and not _is_fast(job.name):
                # It was to be fast, so its start was not reported (its ack was to follow
                # its result): report the start now, before its result is stored, and the
                # result too, not at the end of the batch; else a cold stop in between
                # gives back the message of a task that has finished, and it runs again.
                if on_late_start is not None:
                    on_late_start(job)
                if report is not None:
                    flush_and_report()
        return flush()
    finally:
        _open.flush = None
        if batch is not None:
            try:
                batch.flush_writes(close=True)  # empty unless a job raised through
            except Exception:
                logger.exception("Storing task results failed")


def _is_fast(name: str) -> bool:
    runtime = _last_runtime.get(name)
    return runtime is not None and runtime < FAST_TASK


def is_fast(name: str) -> bool:
    """Task ``name`` ran in under ``FAST_TASK`` last time here. A pool that feeds another
    thread or process reports no start for such a job: its result follows within
    milliseconds, and the consumer acks it then (still never before it started)."""
    return _is_fast(name)


def flush_open_batch() -> None:
    """Store and report what this thread's batch holds (before a job the parent may kill)."""
    flush = getattr(_open, "flush", None)
    if flush is not None:
        flush()


def run_job(app: Celery, job: Job, hostname: str) -> JobResult:
    """Decode (if needed), execute and store the result of ``job``; used by every pool.

    Never raises for an ordinary exception: a pool's thread or child must survive any job.
    """
    try:
        return _run_job(app, job, hostname)
    except Exception as exc:  # e.g. the result backend is down: report, keep the pool alive
        logger.exception("Internal error running task %s[%s]", job.name, job.task_id)
        return JobResult(job.key, job.task_id, states.FAILURE, summary=repr(exc))


def _run_job(app: Celery, job: Job, hostname: str) -> JobResult:
    try:
        call = job.call or task_v2.decode(job.message, accept=app.conf.accept_content)
        task = app.tasks[call.name]
    except Exception as exc:  # the consumer validated it; this is a last line of defence
        app.backend.mark_as_failure(job.task_id, exc)
        return JobResult(job.key, job.task_id, states.FAILURE, summary=repr(exc))
    outcome = execute(
        app,
        task,
        call,
        hostname=hostname,
        delivery_info=job.delivery_info,
        properties=job.message.properties,
        hooks=pipeline_for(app, "worker"),
    )
    return result_from_outcome(job, outcome)


def result_from_outcome(job: Job, outcome: Outcome) -> JobResult:
    exc = outcome.exception
    return JobResult(
        job.key,
        job.task_id,
        outcome.state,
        outcome.runtime,
        # What went wrong, for the log of whoever reads the report; a return value is not
        # needed there (the result store and the worker's log line already have it).
        "" if exc is None else saferepr(exc, 200),
        requeue=bool(getattr(exc, "requeue", False)),
    )


def not_started(job: Job) -> JobResult:
    """The report for a job the pool gives back without having run it."""
    return JobResult(job.key, job.task_id, states.PENDING, started=False)


def lost_result(job: Job, exitcode: int | None) -> JobResult:
    """The report for a job whose process died under it (``summary``: the error message)."""
    exc = WorkerLostError(lost_summary(job.task_id, exitcode))
    return JobResult(
        job.key, job.task_id, states.FAILURE, summary=str(exc), lost=True, exitcode=exitcode
    )


__all__ = [
    "LONG_TASK",
    "BasePool",
    "ConsumingPool",
    "CountsStarts",
    "Job",
    "JobResult",
    "JobStarted",
    "Pool",
    "PoolReport",
    "RecordsHeld",
    "ResultCallback",
    "RunsInMainThread",
    "flush_open_batch",
    "is_fast",
    "lost_result",
    "not_started",
    "run_batch",
    "run_job",
    "worker_hooks",
]
