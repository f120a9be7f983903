"""The life of a child of :class:`~celeriac.worker.pools.prefork.direct.DirectPreforkPool`: its own
broker connection, a consumer with an inline pool, and a thread that takes the parent's orders.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.events.node import for_node
from celeriac.execution import timelimits
from celeriac.transports.base import Delivery
from celeriac.transports.capabilities import GivesBackPrefetched
from celeriac.worker.buckets import WorkerBuckets
from celeriac.worker.commands import COMMANDS, ControlContext
from celeriac.worker.consumer import Consumer
from celeriac.worker.liveness import Liveness
from celeriac.worker.pools.base import LONG_TASK, Job, flush_open_batch
from celeriac.worker.pools.prefork.messages import (
    Answer,
    HeldMessage,
    LimitStarted,
    Query,
    Relay,
    SlotJob,
    Stop,
)
from celeriac.worker.pools.prefork.slot import Slot
from celeriac.worker.pools.prefork.supervisor import enter_child, resident_kib
from celeriac.worker.pools.solo import SoloPool
from celeriac.worker.ratelimit import RateLimiter

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.cluster import ClusterStore
    from celeriac.worker.request import Request
    from celeriac.worker.state import WorkerState

logger = logging.getLogger("celeriac.worker.pool")

#: A child's exit code when its broker connection failed for good (the worker stops).
EXIT_BROKER = 3
#: How often the child's order thread looks at the running task's age (seconds).
RELEASE_CHECK = 0.1


@dataclass(frozen=True)
class ChildSpec:
    """What every child of one pool is told."""

    queues: list[str]
    prefetch: int  # this child's window (worker_prefetch_multiplier)
    hostname: str
    buckets: WorkerBuckets  # the worker's rate limit buckets, shared by its processes
    max_tasks: int | None
    max_memory_kib: int | None
    liveness: Liveness | None = None  # rewritten while this child consumes


class ChildPool(SoloPool):
    """Runs the consumer's batches in the child's main thread, keeping the slot current."""

    name = "prefork"

    def __init__(self, app: Celery, spec: ChildSpec, slot: Slot, events: Connection) -> None:
        super().__init__(app, 1, on_result=lambda _: None, hostname=spec.hostname)
        self.spec = spec
        self.slot = slot
        self.events = events
        self._events_lock = threading.Lock()  # the main thread and the order thread send
        self.consumer: Consumer | None = None
        self.done = 0
        self.on_job_start = self.on_start
        self._batch: list[Request] = []
        self._index = 0  # jobs of the batch started so far

    def submit_many(self, jobs: Sequence[Job]) -> None:
        consumer = self.consumer
        assert consumer is not None
        self._batch = [consumer.in_pool[job.key] for job in jobs]
        self._index = 0
        if consumer.transport.returns_on_close:
            # The broker takes back what a dead child held; its parent only asks which jobs
            # of this batch are still unacknowledged (those it must not publish again).
            deliveries = [r.delivery for r in self._batch if not r.acknowledged]
        else:
            deliveries = consumer.unsettled()
        self.slot.set_batch([_payload(r) for r in self._batch], _held(deliveries))
        try:
            super().submit_many(jobs)
        finally:
            self.slot.done(self._index)
            self._batch = []
        self.done += len(jobs)
        if self._should_retire():
            consumer.stop(warm=True)

    def fetched(self, deliveries: Sequence[Delivery]) -> None:
        """``RecordsHeld``: the consumer fetched ``deliveries`` (not yet received). Outside
        a batch, what this process holds is written to its slot now, so that a death before
        the next batch gives them back at once (an ETA or rate-limited message may wait here
        long); a broker that takes them back on close needs nothing."""
        consumer = self.consumer
        if consumer is None or self._batch or consumer.transport.returns_on_close:
            return
        self.slot.set_held(_held([*consumer.unsettled(), *deliveries]))

    def on_start(self, job: Job) -> None:
        index = self._index
        self._index += 1
        self.slot.start(index, job.task_id, time.monotonic())

    @property
    def _running(self) -> Request | None:
        return self._batch[self._index - 1] if 0 < self._index <= len(self._batch) else None

    def report_limit(self, hard: float) -> None:
        """A hard-limited task starts: store what ran before it, tell the parent the limit."""
        flush_open_batch()
        request = self._running
        if request is not None and request.acks_late and not request.acknowledged:
            transport = request.delivery.transport
            if transport is not None and transport.returns_on_close:
                # The broker would deliver it again when this process is killed, and again
                # after that: ack now, as Celery acks a task that hit its hard limit.
                transport.ack([request.delivery])
                request.acknowledged = True
        self.slot.set_limit(hard)
        self.tell_parent(LimitStarted())

    def tell_parent(self, message: LimitStarted | Answer) -> None:
        with self._events_lock, contextlib.suppress(OSError):  # the parent is gone: the
            self.events.send(message)  # order thread stops us

    def _should_retire(self) -> bool:
        spec = self.spec
        if spec.max_tasks and self.done >= spec.max_tasks:
            return True
        if spec.max_memory_kib and resident_kib() > spec.max_memory_kib:
            logger.info("Pool process %s is over its memory limit: replacing it", os.getpid())
            return True
        return False


def _payload(request: Request) -> SlotJob:
    d = request.delivery
    m = d.message
    return SlotJob(
        m.body,
        m.content_type,
        m.content_encoding,
        dict(m.headers),
        dict(m.properties),
        d.queue,
        d.exchange,
        d.routing_key,
        d.delivery_tag,
        d.redelivered,
        early_ack=not request.acks_late,
    )


def child_main(
    app: Celery,
    spec: ChildSpec,
    control: Connection,
    events: Connection,
    slot: Slot,
    state: WorkerState,
    store: ClusterStore | None,
    inherited: list[Connection],
) -> None:
    """Consume until the parent says stop (or a per-child limit is reached)."""
    enter_child(inherited)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    state.lock = threading.Lock()  # another thread may have held it at fork time
    transport = app.connection()
    pool = ChildPool(app, spec, slot, events)
    node = for_node(spec.hostname)  # the worker's events: this child sends its own
    consumer = Consumer(
        app,
        transport,
        pool,
        queues=spec.queues,
        prefetch_limit=spec.prefetch,
        state=state,
        limiter=RateLimiter(app, store, buckets=spec.buckets),
        events=node,
        liveness=spec.liveness,
    )
    pool.consumer = consumer
    pool.on_result = consumer.on_result
    ctx = ControlContext(
        app=app,
        hostname=spec.hostname,
        state=state,
        consumer=consumer,
        pool=pool,
        limiter=consumer.limiter,
    )
    threading.Thread(
        target=_take_orders,
        args=(control, consumer, ctx, pool),
        name="celeriac-orders",
        daemon=True,
    ).start()
    timelimits.set_hard_limit_reporter(pool.report_limit)
    signals.worker_process_init.send(sender=None)
    exitcode = 0
    try:
        transport.open()
        consumer.run()
        consumer.finish()
    except Exception as exc:  # the broker went away for good
        logger.critical("Pool process %s: unrecoverable error: %r", os.getpid(), exc)
        exitcode = EXIT_BROKER
    finally:
        if node is not None:
            node.close()
        transport.close()
        signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=exitcode)
    if exitcode:
        os._exit(exitcode)


def _take_orders(
    control: Connection, consumer: Consumer, ctx: ControlContext, pool: ChildPool
) -> None:
    released_for: float | None = None  # the start of the job whose prefetch went back
    gives_back = isinstance(consumer.transport, GivesBackPrefetched)
    check = RELEASE_CHECK if gives_back else None  # None: just wait
    while True:
        try:
            if not control.poll(check):
                released_for = _release_if_long(consumer, pool, released_for)
                continue
            order: Any = control.recv()
        except (EOFError, OSError):  # the parent is gone: finish up and leave
            consumer.stop(warm=True)
            consumer.transport.abandon()  # and never wait for an unreachable broker
            return
        if isinstance(order, Stop):
            consumer.stop(warm=order.warm)
        elif isinstance(order, Relay):
            handler = COMMANDS.get(order.method)
            if handler is None:
                continue
            try:
                handler(ctx, **order.arguments)
            except Exception:
                logger.exception("Relayed remote control command %r failed", order.method)
        elif isinstance(order, Query):
            pool.tell_parent(Answer(order.ticket, _answer(ctx, order)))


def _answer(ctx: ControlContext, query: Query) -> Any:
    """This child's answer to an inspect command (its own reserved, active, counters)."""
    handler = COMMANDS.get(query.method)
    if handler is None:
        return None
    try:
        return handler(ctx, **query.arguments)
    except Exception as exc:
        logger.exception("Remote control query %r failed", query.method)
        return {"error": repr(exc)}


def _release_if_long(
    consumer: Consumer, pool: ChildPool, released_for: float | None
) -> float | None:
    """While one task runs long, the messages the broker pushed to this child behind it go
    back to their queue (once per task; again when the connection was busy)."""
    running = pool.slot.running()  # what the parent sees too; None between jobs
    since = None if running is None else running.started
    if since is None or since == released_for or time.monotonic() - since < LONG_TASK:
        return released_for
    try:
        transport = consumer.transport
        assert isinstance(transport, GivesBackPrefetched)  # else _take_orders never polls
        count = transport.release_prefetched()
    except Exception:  # never let this end the order thread
        logger.exception("Pool process %s: giving back prefetched messages failed", os.getpid())
        return since
    if count is None:
        return released_for
    if count:
        logger.debug(
            "Pool process %s: a task runs long; gave back %d prefetched message(s) for "
            "idle processes",
            os.getpid(),
            count,
        )
    return since


def _held(deliveries: Sequence[Delivery]) -> list[HeldMessage]:
    return [HeldMessage(d.queue, d.exchange, d.routing_key, d.delivery_tag) for d in deliveries]


__all__ = ["EXIT_BROKER", "ChildPool", "ChildSpec", "child_main"]
