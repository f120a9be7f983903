"""Prefork where each child consumes from the broker itself; the parent supervises.

Each child opens its own broker connection and runs a :class:`~celeriac.worker.consumer.
Consumer` with an inline pool and a prefetch window of ``worker_prefetch_multiplier`` (so the
worker's window stays ``concurrency * multiplier``, as in Celery). No message or result
crosses a pipe. The parent:

* starts, replaces and stops the children (``max_tasks_per_child``, ``max_memory_per_child``:
  the child stops consuming, gives back what it holds and exits; the parent starts another);
* enforces hard time limits and ``revoke(terminate=True)`` from each child's shared
  :class:`~celeriac.worker.pools.slot.Slot`, and when a child dies stores the outcome of the
  task it ran (WorkerLostError, TimeLimitExceeded, REVOKED) and gives back the messages it
  held (on brokers that keep them after the connection closes, such as Redis);
* answers remote control and relays ``revoke``, ``rate_limit`` and ``time_limit`` to them
  (rate limits are the worker's: the children share its token buckets).

Used for brokers whose transports set ``direct_consume`` (Redis, RabbitMQ) unless
``worker_direct_consume`` is off; the others use the pipe-fed :mod:`.prefork` pool.
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
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from celeriac.execution import outcomes, timelimits
from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery
from celeriac.worker.pools.base import Job
from celeriac.worker.pools.prefork.direct_child import EXIT_BROKER, ChildSpec, child_main
from celeriac.worker.pools.prefork.forked import ForkedChild, ForkedPool
from celeriac.worker.pools.prefork.messages import HeldMessage, Relay, SlotJob, Stop
from celeriac.worker.pools.prefork.slot import Remains, Slot
from celeriac.worker.request import BadMessage, Request, build_request

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.cluster import ClusterStore
    from celeriac.transports.base import Transport
    from celeriac.worker.buckets import WorkerBuckets
    from celeriac.worker.state import WorkerState

logger = logging.getLogger("celeriac.worker.pool")

#: How often the parent re-reads the slots when no child has announced a hard limit (s).
POLL = 0.5


@dataclass(eq=False)
class _Child(ForkedChild):
    control: Connection  # parent -> child: ("stop", warm) and relayed control commands
    events: Connection  # child -> parent: ("limit",) when a hard-limited task starts
    slot: Slot
    retiring: bool = False
    killed_for: float | None = None  # the hard limit it was killed for


class DirectPreforkPool(ForkedPool):
    """``concurrency`` forked consumers and their supervisor; ``run`` until ``stop``."""

    _children: list[_Child]

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
    ) -> None:
        super().__init__(app, concurrency, on_result=lambda _: None, hostname=hostname)
        self.state = state
        self.transport = transport  # the parent's own connection: settles a dead child's work
        self.spec = ChildSpec(
            queues=list(queues),
            prefetch=prefetch_multiplier,
            hostname=hostname,
            buckets=buckets,
            max_tasks=app.conf.worker_max_tasks_per_child,
            max_memory_kib=app.conf.worker_max_memory_per_child,
        )
        self.store = store
        self.exitcode = 0
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        self._cold = False
        self._terminated = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._closing:  # stopped before it started
                return
            for _ in range(self.concurrency):
                self._children.append(self._spawn())

    def _spawn(self) -> _Child:
        control_r, control_w = self._ctx.Pipe(duplex=False)
        events_r, events_w = self._ctx.Pipe(duplex=False)
        slot = Slot()
        # Parent-side ends close in the child: its own (so the parent's death is an EOF there)
        # and every sibling's.
        inherited = [self._wake_r, self._wake_w, control_w, events_r]
        for other in self._children:
            inherited += [other.control, other.events]
        process = self._ctx.Process(
            target=child_main,
            args=(
                self.app,
                self.spec,
                control_r,
                events_w,
                slot,
                self.state,
                self.store,
                inherited,
            ),
            name=f"ForkPoolWorker-{len(self._children) + 1}",
            daemon=True,
        )
        process.start()
        control_r.close()
        events_w.close()
        return _Child(process, control_w, events_r, slot)

    def run(self) -> None:
        """Supervise until every child has exited after :meth:`stop`."""
        while True:
            with self._lock:
                children = list(self._children)
            if not children:
                return
            waitables: dict[Any, _Child | None] = {self._wake_r: None}
            for child in children:
                waitables[child.process.sentinel] = child
                waitables[child.events] = child
            for ready in wait(list(waitables), timeout=self._wait_time(children)):
                owner = waitables[ready]
                if owner is None:
                    _drain(self._wake_r)
                elif ready is owner.events:
                    _drain(owner.events)
                elif owner in self._children:
                    self._child_exited(owner)
            if self._cold and not self._terminated:
                self._terminate_all()
            self._enforce_hard_limits()

    def stop(self, warm: bool = True) -> None:
        """Any thread (or a signal handler): warm lets the children finish their tasks."""
        with self._lock:
            self._closing = True
            if not warm:
                self._cold = True
            for child in self._children:
                _send(child.control, Stop(warm))
        _send(self._wake_w, b"")

    @property
    def cold(self) -> bool:
        return self._cold

    def shutdown(self, grace: float | None = None) -> None:
        """Stop the children (after ``grace`` seconds they are terminated) and wait for them."""
        self.stop(warm=grace is None or grace > 0)
        if grace is not None:
            timer = threading.Timer(grace, self.stop, kwargs={"warm": False})
            timer.daemon = True
            timer.start()
        self.run()

    def _terminate_all(self) -> None:
        self._terminated = True
        with self._lock:
            children = list(self._children)
        for child in children:
            if child.process.is_alive():
                child.process.terminate()

    # -- what the worker's control asks ------------------------------------------------------
    def free_slots(self) -> int:
        return 0  # the children fetch their own work

    def submit_many(self, jobs: Sequence[Job]) -> None:
        raise RuntimeError("the children of a direct prefork pool fetch their own work")

    def request_sweep(self) -> None:
        """Revoked ids reach the children through :meth:`relay`."""

    def relay(self, method: str, arguments: dict[str, Any]) -> None:
        """Run a remote-control command in every child too (their state is their own)."""
        with self._lock:
            for child in self._children:
                _send(child.control, Relay(method, arguments))

    def running_ids(self) -> list[str]:
        with self._lock:
            children = list(self._children)
        return [r.task_id for c in children if (r := c.slot.running()) is not None]

    def terminate_job(self, task_id: str, signum: int | None = None) -> bool:
        with self._lock:
            for child in self._children:
                running = child.slot.running()
                if running is not None and running.task_id == task_id:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signum or signal.SIGTERM)
                    return True
        return False

    def shrink(self, n: int = 1) -> None:
        with self._lock:
            for child in [c for c in self._children if not c.retiring][: max(0, self.size - 1)][:n]:
                child.retiring = True
                self.concurrency -= 1
                _send(child.control, Stop(warm=True))

    # -- supervision -------------------------------------------------------------------------
    def _wait_time(self, children: list[_Child]) -> float:
        now = time.monotonic()
        wait_for = POLL
        for child in children:
            running = child.slot.running()
            if running is not None and running.hard_limit is not None:
                wait_for = min(wait_for, running.started + running.hard_limit - now)
        return max(0.0, wait_for)

    def _enforce_hard_limits(self) -> None:
        now = time.monotonic()
        with self._lock:
            children = list(self._children)
        for child in children:
            running = child.slot.running()
            if running is None or running.hard_limit is None or child.killed_for is not None:
                continue
            if now >= running.started + running.hard_limit:
                child.killed_for = running.hard_limit
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)

    def _child_exited(self, child: _Child) -> None:
        child.process.join()
        exitcode = child.process.exitcode
        remains = child.slot.remains()
        with self._lock:
            self._children.remove(child)
            child.control.close()
            child.events.close()
            respawn = not (self._closing or child.retiring) and exitcode != EXIT_BROKER
            if respawn:
                self._children.append(self._spawn())
        if exitcode == EXIT_BROKER and not self._closing:
            logger.critical("A pool process lost its broker connection: stopping the worker")
            self.exitcode = 1
            self.stop(warm=False)
        try:
            self._recover(child, remains, exitcode)
        except Exception:  # the broker or store is down: leases bring the held ones back
            logger.exception("Could not settle the work of pool process %s", child.pid)
        finally:
            child.slot.close()

    def _recover(self, child: _Child, remains: Remains, exitcode: int | None) -> None:
        """Store the running task's outcome, publish again the jobs of its batch that never
        started and were acknowledged (AMQP acks a batch before it runs), give back the
        messages the broker still counts as its (``held``)."""
        unacked = {h.delivery_tag for h in remains.held}
        settled: set[str] = set()
        if remains.running is not None and not self._terminated:
            request = self._request(remains.running, unacked)
            if request is not None:
                settled.add(request.key)
                self._store_outcome(child, request, exitcode)
        elif remains.running_id is not None and not self._terminated:
            outcomes.store_lost_id(self.app, remains.running_id, child.killed_for, exitcode)
        again = [p for p in remains.unstarted if p.delivery_tag not in unacked]
        for job in again:
            # The default exchange: straight back to the queue it came from.
            self.transport.publish(_message(job), exchange="", routing_key=job.queue)
        if again:
            logger.info(
                "Sent again %d task(s) pool process %s had not started", len(again), child.pid
            )
        if self.transport.returns_on_close:
            return  # the broker gave the rest back when the child's connection closed
        back = [self._delivery(h) for h in remains.held if h.delivery_tag not in settled]
        if back:
            self.transport.restore(back)
            logger.info("Gave back %d message(s) held by pool process %s", len(back), child.pid)

    def _store_outcome(self, child: _Child, request: Request, exitcode: int | None) -> None:
        ack, reject = self._ack, self._reject
        if not request.acks_late and not request.acknowledged:  # its early ack was not sent
            ack(request.delivery)
            request.acknowledged = True
        signum = self.state.terminated.pop(request.id, None)
        if signum is not None:
            outcomes.store_terminated(self.app, request, signum)
            outcomes.settle_ended(request, ack, reject)
        elif child.killed_for is not None:
            outcomes.store_hard_timeout(self.app, request, child.killed_for)
            outcomes.settle_ended(request, ack, reject)
        elif not request.acknowledged and self.transport.returns_on_close:
            # Its connection closed unacknowledged: the broker delivers it again.
            logger.error(
                "Process %s (pid %s) died with exitcode %s while running %s[%s] (acks_late: "
                "the broker delivers it again)",
                child.process.name,
                child.pid,
                exitcode,
                request.name,
                request.id,
            )
        else:
            logger.error(
                "Process %s (pid %s) died with exitcode %s while running %s[%s]",
                child.process.name,
                child.pid,
                exitcode,
                request.name,
                request.id,
            )
            summary = outcomes.lost_summary(request.id, exitcode)
            outcomes.worker_lost(self.app, request, summary, ack, reject)

    def _request(self, job: SlotJob, unacked: set[str]) -> Request | None:
        tag = job.delivery_tag
        delivery = Delivery(
            _message(job),
            job.queue,
            job.exchange,
            job.routing_key,
            tag,
            job.redelivered,
            self.transport,
        )
        try:
            request = build_request(self.app, delivery, None)
        except BadMessage:
            return None
        # Its ack was sent unless the child still listed it as unsettled (a task with a hard
        # limit is acked when it starts where the broker would deliver it again: see
        # ChildPool.report_limit).
        request.acknowledged = tag not in unacked or (
            self.transport.returns_on_close and self._hard_limited(request)
        )
        return request

    @staticmethod
    def _hard_limited(request: Request) -> bool:
        return (
            timelimits.limits_for(request.task, request.call, request.task.app.conf)[0] is not None
        )

    def _delivery(self, held: HeldMessage) -> Delivery:
        empty = Message(body=b"", content_type="", content_encoding="")
        return Delivery(
            empty,
            held.queue,
            held.exchange,
            held.routing_key,
            held.delivery_tag,
            transport=self.transport,
        )

    # A dead child's delivery tags mean nothing on another AMQP channel: there, the broker
    # has already put its unacknowledged messages back.
    def _ack(self, delivery: Delivery) -> None:
        if not self.transport.returns_on_close:
            self.transport.ack([delivery])

    def _reject(self, delivery: Delivery, requeue: bool) -> None:
        if not self.transport.returns_on_close:
            self.transport.reject([delivery], requeue=requeue)


def _message(job: SlotJob) -> Message:
    """The message of a job a child copied to its slot."""
    return Message(
        body=job.body,
        content_type=job.content_type,
        content_encoding=job.content_encoding,
        headers=job.headers,
        properties=job.properties,
    )


def _send(conn: Connection, obj: Any) -> None:
    # A dead child's pipe is broken; its sentinel reports it.
    with contextlib.suppress(OSError, ValueError):
        conn.send(obj)


def _drain(conn: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        while conn.poll():
            conn.recv()


__all__ = ["DirectPreforkPool"]
