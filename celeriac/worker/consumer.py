"""The consumer loop: fetch within the prefetch window, hold ETA tasks, feed the pool, ack.

Everything that touches the broker happens in the consumer's thread: pools report results
through a queue. A message is *reserved* from receipt until its ack (or reject/restore); the
prefetch window is ``concurrency * prefetch_multiplier`` plus one per held ETA message, as
in Celery. Early (default) acks are sent when the pool reports that the job *starts*
(:class:`~celeriac.worker.pools.base.JobStarted`), batched only among jobs that have started
and flushed on the loop's next turn (at once for an inline pool, before the job runs; a
pool that runs jobs elsewhere reports no start for a job that ran in milliseconds last time,
which is acked with its result): a job waiting in a pool when the worker dies was never
acknowledged. ``acks_late`` acks follow the
stored result. A stop gives back every message whose job has not started.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac import signals, states
from celeriac.events.taskinfo import received_fields
from celeriac.execution.outcomes import (
    settle_ended,
    store_hard_timeout,
    store_terminated,
    worker_lost,
)
from celeriac.transports.capabilities import AckAndGet, ConfirmsLeases, Defers, Leases
from celeriac.worker.liveness import STALLED_AFTER, Liveness
from celeriac.worker.pools.base import (
    CountsStarts,
    HoldsBackWhenStalled,
    Job,
    JobResult,
    JobStarted,
    Pool,
    PoolReport,
    RecordsHeld,
    RunsInMainThread,
)
from celeriac.worker.ratelimit import RateLimitedRequests, RateLimiter
from celeriac.worker.request import BadMessage, Request, build_request, discard_bad_message
from celeriac.worker.state import WorkerState

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.events.node import NodeEvents
    from celeriac.protocol.entities import Queue
    from celeriac.transports.base import Delivery, Transport

logger = logging.getLogger("celeriac.worker.consumer")

#: How long one ``transport.get`` may block when nothing else is waiting (seconds).
IDLE_WAIT = 1.0
#: ... and when tasks are running, so acks_late acks are not held back for long.
BUSY_WAIT = 0.05
#: Leases are renewed every quarter of their length, and never more often than this (s).
MIN_RENEWAL = 0.05
#: A prefetch multiplier of 0 means "unlimited"; this keeps memory and restores bounded.
UNLIMITED_PREFETCH = 1000
#: How often a worker removes results older than ``result_expires`` (seconds).
RESULT_CLEANUP_EVERY = 3600.0
#: Rate-limited messages held without shrinking the prefetch window (beyond: they count).
RATE_LIMITED_FREE = 1000


class Consumer:
    """Moves messages from ``transport`` to ``pool``; ``run`` until ``stop``."""

    def __init__(
        self,
        app: Celery,
        transport: Transport,
        pool: Pool,
        *,
        queues: Sequence[str],
        prefetch_limit: int,
        state: WorkerState | None = None,
        limiter: RateLimiter | None = None,
        events: NodeEvents | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        self.app = app
        self.events = events  # task-received / task-revoked, when the worker sends events
        self.liveness = liveness  # rewritten while this loop turns (celeriac check)
        #: Hand the pool no more jobs than it has idle slots (no batches queued behind a
        #: running task): set with ``--autoscale``, so slots added later take the rest.
        self.one_job_per_slot = False
        self._turned = time.monotonic()
        self.transport = transport
        # Capabilities, asked once (isinstance against a Protocol is slow on the hot path).
        self._combined = transport if isinstance(transport, AckAndGet) else None
        self._leases = transport if isinstance(transport, Leases) else None
        self._records = pool if isinstance(pool, RecordsHeld) else None
        self._counts_starts = pool if isinstance(pool, CountsStarts) else None
        self.pool = pool
        self.queues = list(queues)
        self.prefetch_limit = prefetch_limit if prefetch_limit > 0 else UNLIMITED_PREFETCH
        self._qos = -1  # the prefetch count last given to transport.qos
        self.state = state or WorkerState()
        self.accept: list[str] | None = app.conf.accept_content
        self.completions: queue.SimpleQueue[PoolReport] = queue.SimpleQueue()
        self.ready: deque[Request] = deque()
        self.eta: list[tuple[float, int, Request]] = []
        self.in_pool: dict[str, Request] = {}
        self.limiter = limiter or RateLimiter(app)
        self.rate_limited = RateLimitedRequests(self.limiter)
        self._sweep = threading.Event()  # remote control revoked something: look now
        self._acks: list[Delivery] = []
        self._acks_since: float | None = None  # when _wait_for_room first held them
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._cold = threading.Event()
        self._confirms = transport if isinstance(transport, ConfirmsLeases) else None
        if self._confirms is not None:
            visibility = self._confirms.lease_period or 3600.0
        else:
            visibility = (self._leases.visibility_timeout if self._leases else 0) or 3600.0
        now = time.monotonic()
        self._visibility = float(visibility)
        self._renewed = now  # when the held leases were last renewed (_extend)
        self._stalled = False  # this turn of the loop started late (see _loop)
        if isinstance(self.transport, ConfirmsLeases) and isinstance(pool, HoldsBackWhenStalled):
            pool.stall_after = self._visibility / 2
        renew = max(MIN_RENEWAL, self._visibility / 4)  # a short lease is renewed in time too
        # [interval, next run, action]: lease renewal, and expired results removed (Celery
        # leaves that to beat's backend_cleanup; the embedded store has no beat to rely on).
        self._periodic: list[list[Any]] = [
            [renew, now + renew, self._extend],
            [RESULT_CLEANUP_EVERY, now, self._cleanup_results],
        ]

    # -- control -----------------------------------------------------------------------------
    def on_result(self, result: PoolReport) -> None:
        """The pool's callback (any thread). An inline pool reports a start in this thread,
        just before the job runs: its early ack is sent at once."""
        if isinstance(result, JobStarted) and self.pool.inline:
            self._started(result)
            self._flush_acks()
            return
        self.completions.put(result)

    def stop(self, warm: bool = True) -> None:
        """Stop fetching; with ``warm=False`` also stop waiting for running tasks. Either way
        the pool starts no job it holds that has not started (they are given back)."""
        if not warm:
            self._cold.set()
        self._stop.set()
        self.pool.hold_back()

    def request_sweep(self) -> None:
        """Any thread: revoked ids changed; discard matching held requests soon."""
        self._sweep.set()

    def add_queue(self, queue: Queue) -> None:
        """Consume from ``queue`` too (any thread; declared on a connection of its own)."""
        with self.app.connection() as conn:
            conn.declare_queue(queue)
        if queue.name not in self.queues:
            self.queues = [*self.queues, queue.name]  # the loop reads it once per fetch

    def cancel_queue(self, name: str) -> bool:
        """Stop consuming from queue ``name`` (any thread); False if not consuming it."""
        if name not in self.queues:
            return False
        self.queues = [q for q in self.queues if q != name]
        return True

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def cold(self) -> bool:
        return self._cold.is_set()

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        stop_watch = self.liveness.watch(self._progressing) if self.liveness else None
        try:
            self._loop()
        finally:
            if stop_watch is not None:
                stop_watch()

    def _progressing(self) -> bool:
        """For the liveness file: the loop turns, or a task runs in its thread (solo)."""
        if time.monotonic() - self._turned < STALLED_AFTER:
            return True
        return isinstance(self.pool, RunsInMainThread) and self.pool.executing

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            # A turn that took half a lease or more: this process may have been stalled
            # (SIGSTOP, swapped out) with messages in hand whose leases ran out meanwhile.
            self._stalled = now - self._turned >= self._visibility / 2
            self._turned = now
            self._handle_completions()
            if self._sweep.is_set():
                self._sweep_revoked()
            self._promote_due_eta()
            self._dispatch(fetch=True)
            if self._stop.is_set():
                break
            free = self._free()
            self._update_qos()
            runnable = self.pool.inline and bool(self.ready)  # runs on the next turn
            if free > 0:
                # Work waiting for a pool slot: the next completion matters more than the
                # broker (whose messages wait in the socket meanwhile), so fetch without
                # blocking and then wait for the pool.
                queued = bool(self.ready) and not runnable
                busy = bool(self.in_pool or self.ready)
                timeout = (
                    0.0 if runnable or queued else self._wait_time(BUSY_WAIT if busy else IDLE_WAIT)
                )
                got = self._fetch(free, timeout)
                for delivery in got:
                    self._receive(delivery)
                if queued and not got:
                    self._wait_completion(self._wait_time(BUSY_WAIT))
            elif not runnable:
                self._wait_for_room()
            if self._combined is None:
                self._flush_acks()
            # else the next turn sends them with its fetch (_dispatch or _fetch) or before it
            # waits: one round trip for both, and no turn blocks before that
            if self.events is not None:
                self.events.flush()
            self._run_periodic()

    def _wait_for_room(self) -> None:
        """The prefetch window is full: wait for a completion. Acks waiting for a claim to
        ride on (AckAndGet) are held through a wait of at most BUSY_WAIT, since a completion
        frees room within milliseconds while tasks are quick; past that they are sent alone
        first, so a long task never holds them back."""
        if self._combined is not None and self._acks:
            now = time.monotonic()
            if self._acks_since is None:
                self._acks_since = now
            if now - self._acks_since < BUSY_WAIT:
                self._wait_completion(self._wait_time(BUSY_WAIT))
                return
        self._flush_acks()
        self._wait_completion(self._wait_time(IDLE_WAIT))

    def _take_acks(self) -> list[Delivery]:
        """The pending acks, to be sent now (by the caller)."""
        acks, self._acks = self._acks, []
        self._acks_since = None
        return acks

    def _fetch(self, free: int, timeout: float) -> list[Delivery]:
        """Up to ``free`` messages, waiting up to ``timeout`` s for one. Pending acks go
        first: with the fetch in one round trip where the broker can (a message waiting is
        taken at once), else before the wait, never held through it."""
        combined = self._combined
        asked = self.queues
        if combined is not None and self._acks:
            acks = self._take_acks()
            got: list[Delivery] = combined.ack_and_get(asked, acks, max_messages=free)
            if got or timeout <= 0:
                return self._still_consumed(asked, self._record(got))
        else:
            self._flush_acks()
        got = self.transport.get(asked, max_messages=free, timeout=timeout)
        return self._still_consumed(asked, self._record(got))

    def _record(self, got: list[Delivery]) -> list[Delivery]:
        """Tell a pool that records what its process holds (RecordsHeld) of a fetch."""
        if got and self._records is not None:
            self._records.fetched(got)
        return got

    def _update_qos(self) -> None:
        # Push brokers (AMQP basic.qos) may send this many unacked messages: the window plus
        # each message held for its ETA or rate limit, as Celery raises the count for them.
        count = self.prefetch_limit + len(self.eta) + len(self.rate_limited)
        if count != self._qos:
            self._qos = count
            self.transport.qos(count)

    def _wait_time(self, cap: float) -> float:
        cap = max(0.0, min(cap, min(entry[1] for entry in self._periodic) - time.monotonic()))
        if self.eta:
            cap = max(0.0, min(cap, self.eta[0][0] - time.time()))
        due = self.rate_limited.next_due()
        if due is not None:
            cap = max(0.0, min(cap, due - time.monotonic()))
        return cap

    def _wait_completion(self, timeout: float) -> None:
        try:
            result = self.completions.get(timeout=timeout)
        except queue.Empty:
            return
        self._complete(result)
        self._handle_completions()  # what came meanwhile: one ack batch for all of it

    # -- receiving ---------------------------------------------------------------------------
    def _receive(self, delivery: Delivery) -> None:
        try:
            request = build_request(self.app, delivery, self.accept)
        except BadMessage as err:
            discard_bad_message(self.app, delivery, err, sender=self)
            return
        logger.info("Task %s[%s] received", request.name, request.id)
        if signals.task_received.has_receivers:
            signals.task_received.send(sender=self, request=request)
        if self.events is not None:
            self.events.task("task-received", flush=False, **received_fields(request.call))
        if self._discard_if_revoked(request, time.time()):
            return
        if request.eta is not None and self._defer_if_far(request):
            return
        self.state.reserve(request)
        if request.eta is not None and request.eta > time.time():
            heapq.heappush(self.eta, (request.eta, next(self._seq), request))
        else:
            self.ready.append(request)

    def _defer_if_far(self, request: Request) -> bool:
        """Park a far-future ETA message in the broker instead of holding it here."""
        after = self.app.conf.worker_eta_defer_after
        eta = request.eta
        transport = self.transport
        if eta is None or after is None or not isinstance(transport, Defers):
            return False
        if eta - time.time() <= float(after):
            return False
        self._flush_acks()
        transport.defer(request.delivery, eta)
        logger.info("Task %s[%s] parked in the broker until its ETA", request.name, request.id)
        return True

    def _promote_due_eta(self) -> None:
        now = time.time()
        while self.eta and self.eta[0][0] <= now:
            self.ready.append(heapq.heappop(self.eta)[2])
        released = self.rate_limited.release_due()
        for request in released:
            request.rate_ok = True
        self.ready.extendleft(reversed(released))  # they were first in line

    def _sweep_revoked(self) -> None:
        """Discard held requests (ETA, rate-limited, ready) whose id was just revoked."""
        self._sweep.clear()
        revoked = {r.id for r in self._waiting() if self.state.is_revoked(r.id)}
        if not revoked:
            return
        now = time.time()
        for request in self._take_waiting(lambda r: r.id in revoked):
            self._discard_if_revoked(request, now)
        self._flush_acks()

    def _take_waiting(self, picked: Callable[[Request], bool]) -> list[Request]:
        """Take the ``picked`` requests out of every waiting line (ready, ETA, rate-limited)."""
        taken = [r for r in self.ready if picked(r)]
        if taken:
            self.ready = deque(r for r in self.ready if not picked(r))
        in_eta = [entry[2] for entry in self.eta if picked(entry[2])]
        if in_eta:
            self.eta = [entry for entry in self.eta if not picked(entry[2])]
            heapq.heapify(self.eta)
        limited = {r.id for r in self.rate_limited.requests() if picked(r)}
        return taken + in_eta + (self.rate_limited.remove(limited) if limited else [])

    def _waiting(self) -> list[Request]:
        return [*self.ready, *(r for _, _, r in self.eta), *self.rate_limited.requests()]

    def _discard_if_revoked(self, request: Request, now: float) -> bool:
        """Revoked or expired requests are stored as REVOKED and acked, never run."""
        expired = request.expired(now)
        if not expired and not self.state.is_revoked(request.id):
            return False
        reason = "expired" if expired else "revoked"
        logger.warning("Skipping %s task: %s[%s]", reason, request.name, request.id)
        try:
            self.app.backend.mark_as_revoked(request.id, reason, request=request)
        except Exception as exc:  # no backend: the discard itself must still happen
            logger.debug("Could not store REVOKED for %s: %r", request.id, exc)
        signals.task_revoked.send(
            sender=request.task, request=request, terminated=False, signum=None, expired=expired
        )
        if self.events is not None:
            self.events.task(
                "task-revoked",
                flush=False,
                uuid=request.id,
                terminated=False,
                signum=None,
                expired=expired,
            )
        self.state.forget(request)
        self._acks.append(request.delivery)
        return True

    # -- dispatching -------------------------------------------------------------------------
    def _dispatch(self, fetch: bool = False) -> None:
        self._drop_lost_leases()
        slots = self.pool.accepts() if self.ready else 0
        if self.one_job_per_slot:  # autoscale: what waits stays here, for new slots to take
            slots = min(slots, self.pool.size - len(self.in_pool))
        if slots <= 0:
            return
        jobs: list[Job] = []
        now = time.time()
        while self.ready and len(jobs) < slots:
            request = self.ready.popleft()
            if self._discard_if_revoked(request, now):
                continue
            if not request.rate_ok and self.rate_limited.hold(request):
                continue
            self.in_pool[request.key] = request
            self.state.activate(request)
            delivery = request.delivery
            jobs.append(
                Job(
                    request.key,
                    request.id,
                    request.name,
                    delivery.message,
                    delivery.delivery_info,
                    request.call,
                )
            )
        if jobs and self.pool.inline:
            self._run_inline(jobs, fetch)
            return
        # Early acks follow each job's start (JobStarted), as Celery acks when a child reports
        # the job started. A broker that can ack and fetch in one round trip does both now
        # (never blocking).
        if jobs and self.one_job_per_slot:
            for job in jobs:  # one at a time: each goes to the least loaded slot
                self.pool.submit_many([job])
        elif jobs:
            self.pool.submit_many(jobs)
        fetched = self._ack_and_fetch() if jobs and fetch else None
        if fetched is None and self._combined is None:
            self._flush_acks()  # (else they ride on this turn's fetch, or _wait_for_room's)
        for delivery in fetched or ():
            self._receive(delivery)

    def _drop_lost_leases(self) -> None:
        """Before running prefetched messages whose lease may have run out (this worker was
        stalled, e.g. frozen by SIGSTOP, past ``visibility_timeout``), ask the broker which
        are still ours; the others went back and may have run elsewhere: forget them."""
        transport = self._confirms
        if not self.ready or transport is None:
            return
        since = time.monotonic() - self._visibility * 0.9
        stalled, self._stalled = self._stalled, False
        if not stalled and self._renewed > since:  # every lease held was renewed since
            return
        stale = [r for r in self.ready if stalled or max(r.received, self._renewed) <= since]
        if not stale:
            return
        checked = [r.delivery for r in stale]
        self._forget_lost(checked, transport.confirm(checked))

    def _forget_lost(self, checked: list[Delivery], kept: list[Delivery]) -> None:
        """Forget the waiting requests of ``checked`` deliveries the broker did not confirm
        (a running one is left to finish: its ack will find nothing to delete)."""
        ours = {id(d) for d in kept}
        lost = {id(d) for d in checked} - ours
        if not lost:
            return
        for request in self._take_waiting(lambda r: id(r.delivery) in lost):
            logger.info(
                "Task %s[%s] dropped unrun: its lease ran out while this worker was stalled, "
                "and the broker may have given it to another worker",
                request.name,
                request.id,
            )
            self.state.forget(request)

    def _run_inline(self, jobs: list[Job], fetch: bool) -> None:
        """Jobs that run in this thread, one after another: each one's early ack is sent as
        it starts (``on_result``), never before; acks_late acks follow the batch in one round
        trip with the next fetch."""
        self._flush_acks()
        self.pool.submit_many(jobs)
        self._handle_completions()
        fetched = self._ack_and_fetch() if fetch else None
        if fetched is None:
            self._flush_acks()
        for delivery in fetched or ():
            self._receive(delivery)

    def _free(self) -> int:
        """Room in the prefetch window. As in Celery, the tasks started are not counted: the
        window holds the messages waiting, here or in the pool. A pool that knows which jobs
        have started (CountsStarts: a prefork child's batch, whose quick tasks report their
        starts with their results) says how many have not; for another, one job per slot
        is taken to run."""
        limited = max(0, len(self.rate_limited) - RATE_LIMITED_FREE)
        counts = self._counts_starts
        if counts is not None:
            waiting_in_pool = counts.unstarted()
        else:
            waiting_in_pool = max(0, len(self.in_pool) - self.pool.concurrency)
        return self.prefetch_limit - len(self.ready) - waiting_in_pool - limited

    def _ack_and_fetch(self) -> list[Delivery] | None:
        """Flush acks and refill the window in one round trip where the broker can; None if
        it cannot."""
        combined = self._combined
        free = self._free()
        if combined is None or free <= 0 or self._stop.is_set():
            return None
        self._update_qos()
        acks = self._take_acks()
        asked = self.queues
        fetched: list[Delivery] = combined.ack_and_get(asked, acks, max_messages=free)
        return self._still_consumed(asked, self._record(fetched))

    def _still_consumed(self, asked: list[str], got: list[Delivery]) -> list[Delivery]:
        """What a fetch brought, less the messages of a queue cancelled while it waited
        (``cancel_consumer`` from another thread): those go back to the broker unprocessed, as
        kombu gives back a message that arrives for a queue no longer consumed. Once the
        ``cancel_consumer`` reply is sent, nothing of that queue runs here."""
        current = self.queues  # replaced, never changed in place: identity says "unchanged"
        if current is asked or not got:
            return got
        gone = [d for d in got if d.queue in asked and d.queue not in current]
        if not gone:
            return got
        self.transport.restore(gone)
        logger.debug("Gave back %d message(s) of cancelled queue(s)", len(gone))
        return [d for d in got if not (d.queue in asked and d.queue not in current)]

    # -- completions -------------------------------------------------------------------------
    def _handle_completions(self) -> None:
        completions = self.completions  # only this thread takes: empty() is exact here
        while not completions.empty():
            self._complete(completions.get())

    def _started(self, started: JobStarted) -> None:
        """A job starts: its early ack joins the batch (sent on this turn of the loop)."""
        request = self.in_pool.get(started.key)
        if request is not None and not request.acks_late and not request.acknowledged:
            self._acks.append(request.delivery)
            request.acknowledged = True

    def _complete(self, result: PoolReport) -> None:
        if isinstance(result, JobStarted):
            self._started(result)
            return
        request = self.in_pool.pop(result.key, None)
        if request is None:
            return
        if not result.started:  # a dead child's queued job, or held back: not acked
            self.ready.appendleft(request)
            self.state.reserve(request)
            return
        if not request.acks_late and not request.acknowledged:  # it started: early ack now
            self._acks.append(request.delivery)  # (a fast job, whose start was not reported)
            request.acknowledged = True
        self.state.forget(request)
        self.state.task_done(request.call.name)
        signum = self.state.terminated.pop(request.id, None)
        if signum is not None and (result.lost or result.timeout is not None):
            store_terminated(self.app, request, signum, self.events)
            self._settle(request)
        elif result.timeout is not None:
            store_hard_timeout(self.app, request, result.timeout, self.events)
            self._settle(request)
        elif result.lost:
            self._worker_lost(request, result)
        elif result.state == states.REJECTED:
            if not request.acknowledged:
                request.delivery.reject(requeue=result.requeue)
        elif not request.acknowledged:  # acks_late
            failed = result.state == states.FAILURE
            if failed and not request.acks_on_failure_or_timeout:
                request.delivery.reject(requeue=False)
            else:
                self._acks.append(request.delivery)
        request.acknowledged = True

    def _settle(self, request: Request) -> None:
        """A task ended by the worker (hard limit, terminate): ack unless policy says reject."""
        settle_ended(request, self._acks.append, _reject)

    def _worker_lost(self, request: Request, result: JobResult) -> None:
        worker_lost(self.app, request, result.summary, self._acks.append, _reject, self.events)

    # -- broker bookkeeping ------------------------------------------------------------------
    def _flush_acks(self) -> None:
        if self._acks:
            acks = self._take_acks()
            self.transport.ack(acks)

    def unsettled(self) -> list[Delivery]:
        """Every delivery the broker still counts as unacknowledged: received and not
        acknowledged (waiting or running), or acknowledged here with the ack not yet sent."""
        return [*self._held(), *self._acks]

    def _held(self) -> list[Delivery]:
        requests = [*self._waiting(), *self.in_pool.values()]
        return [r.delivery for r in requests if not r.acknowledged]

    def _run_periodic(self) -> None:
        now = time.monotonic()
        for entry in self._periodic:
            if now >= entry[1]:
                entry[1] = now + entry[0]
                entry[2]()

    def _extend(self) -> None:
        held = self._held()
        if held and isinstance(self.transport, ConfirmsLeases):
            self._forget_lost(held, self.transport.confirm(held))
        elif held and self._leases is not None:
            self._leases.extend(held)
        self._renewed = time.monotonic()

    def _cleanup_results(self) -> None:
        if not self.app.conf.result_expires:
            return
        try:
            removed = self.app.backend.cleanup()
        except Exception as exc:  # the store may be down; never stop consuming for this
            logger.warning("Removing expired results failed: %r", exc)
            return
        if removed:
            logger.info("Removed %d expired results (result_expires)", removed)

    # -- shutdown ----------------------------------------------------------------------------
    def finish(self) -> int:
        """After :meth:`run`: give back what waits, let the running tasks end (unless cold),
        stop the pool and give back what is still held; the exit code it asks for (0)."""
        restored = self.restore_reserved()
        if restored:
            logger.info("Restored %d reserved message(s) to the broker", restored)
        finished = self.drain()
        self.pool.shutdown(grace=None if finished else 0.0)
        self.restore_unacked()
        return 0

    def restore_reserved(self) -> int:
        """Give back everything received but not started (warm shutdown); return the count."""
        requests = self._waiting()
        self.ready.clear()
        self.eta.clear()
        self.rate_limited.clear()
        deliveries = [r.delivery for r in requests if not r.acknowledged]
        for request in requests:
            self.state.forget(request)
        if deliveries:
            self.transport.restore(deliveries)
        return len(deliveries)

    def drain(self) -> bool:
        """Wait for the pool's running tasks, handling their results; False if cut short.
        Jobs the pool gives back unstarted (held back, or queued to a child that died) were
        never acknowledged: their messages go back to the broker at once."""
        while self.in_pool and not self._cold.is_set():
            self._wait_completion(0.2)
            self._handle_completions()
            self._flush_acks()
            restored = self.restore_reserved()
            if restored:
                logger.info("Restored %d message(s) the pool had not started", restored)
            self._run_periodic()
        return not self.in_pool

    def restore_unacked(self) -> int:
        """After a cold stop: give back what is still held (acks_late tasks cut short), and,
        when the soft shutdown is on (``worker_soft_shutdown_timeout``), publish again the
        tasks cut short whose message was acknowledged when they started, so none is lost;
        return how many went back."""
        self._handle_completions()
        self._flush_acks()
        deliveries = self._held()
        soft = bool(self.app.conf.worker_soft_shutdown_timeout)
        cut_short = [r.delivery for r in self.in_pool.values() if r.acknowledged and soft]
        self.in_pool.clear()
        if deliveries:
            self.transport.restore(deliveries)
        for delivery in cut_short:
            # The default exchange: straight back to the queue it came from.
            self.transport.publish(delivery.message, exchange="", routing_key=delivery.queue)
        if cut_short:
            logger.warning(
                "Sent again %d task(s) cut short by the shutdown (acknowledged when they started)",
                len(cut_short),
            )
        return len(deliveries) + len(cut_short)

    def info(self) -> dict[str, Any]:
        return {
            "prefetch_count": self.prefetch_limit + len(self.eta),
            "reserved": len(self.ready) + len(self.eta) + len(self.rate_limited),
            "active": len(self.in_pool),
        }


def _reject(delivery: Delivery, requeue: bool) -> None:
    delivery.reject(requeue=requeue)


__all__ = ["Consumer"]
