"""Prefork where each child consumes from the broker itself; the parent supervises.

Each child opens its own broker connection and runs a :class:`~celeriac.worker.consumer.
Consumer` with an inline pool and a prefetch window of ``worker_prefetch_multiplier`` (so the
worker's window stays ``concurrency * multiplier``, as in Celery). No message or result
crosses a pipe. A :class:`~celeriac.worker.pools.prefork.supervisor.ChildStrategy` under the
prefork supervisor, which starts, replaces and stops the children (``max_tasks_per_child``,
``max_memory_per_child``: the child stops consuming, gives back what it holds and exits; the
parent starts another) and enforces hard time limits and ``revoke(terminate=True)`` from each
child's shared :class:`~celeriac.worker.pools.prefork.slot.Slot`. This pool:

* when a child dies, stores the outcome of the task it ran (WorkerLostError,
  TimeLimitExceeded, REVOKED) and gives back the messages it held (on brokers that keep them
  after the connection closes, such as Redis);
* answers remote control and relays ``revoke``, ``rate_limit``, ``time_limit`` and
  ``add_consumer`` to them (rate limits are the worker's: the children share its token
  buckets); ``cancel_consumer`` waits until every child has let the queue go, and
  ``time_limit`` until every child applied it.

Used for brokers whose transports set ``direct_consume`` (Redis, RabbitMQ) unless
``worker_direct_consume`` is off (the worker runs it in place of a consumer); the others use
the pipe-fed :mod:`.pool`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext
from typing import Any

from celeriac.events.node import for_node
from celeriac.execution import outcomes, timelimits
from celeriac.protocol.entities import Queue
from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery
from celeriac.worker.pools.base import ConsumingPool
from celeriac.worker.pools.prefork.direct_child import EXIT_BROKER, ChildSpec, child_main
from celeriac.worker.pools.prefork.messages import (
    Answer,
    HeldMessage,
    Query,
    Relay,
    Running,
    SlotJob,
    Stop,
)
from celeriac.worker.pools.prefork.slot import Remains, Slot
from celeriac.worker.pools.prefork.supervisor import Child, Supervised, send
from celeriac.worker.request import BadMessage, Request, build_request

logger = logging.getLogger("celeriac.worker.pool")

#: Relayed commands whose reply waits until every child applied them (see ``relay``).
AWAITED = frozenset({"time_limit", "rate_limit"})
#: How long ``cancel_consumer`` waits for every child to let the queue go (seconds).
CANCEL_WAIT = 5.0


@dataclass(eq=False)
class _Child(Child):
    control: Connection  # parent -> child: Stop and Relay orders
    events: Connection  # child -> parent: LimitStarted when a hard-limited task starts
    slot: Slot


class DirectPreforkPool(Supervised[_Child], ConsumingPool):
    """``concurrency`` forked consumers and their supervisor; ``run`` until ``stop``."""

    exitcode = 0  # 1 once a child lost the broker for good

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answered = threading.Condition()  # children's answers to queries
        self._answers: dict[int, list[Any]] = {}
        self._tickets = itertools.count(1)

    @cached_property
    def spec(self) -> ChildSpec:
        """What every child is told."""
        conf = self.app.conf
        return ChildSpec(
            queues=self.queues,
            prefetch=self.prefetch_multiplier,
            hostname=self.hostname,
            buckets=self.buckets,
            max_tasks=conf.worker_max_tasks_per_child,
            max_memory_kib=conf.worker_max_memory_per_child,
            liveness=self.liveness,
        )

    # -- lifecycle: the worker runs this pool instead of a consumer ---------------------------
    def start(self) -> None:
        self.supervisor.start(self.concurrency)

    def run(self) -> None:
        """Supervise until every child has exited after :meth:`stop`."""
        self.supervisor.run()

    def stop(self, warm: bool = True) -> None:
        """Any thread (or a signal handler): warm lets the children finish their tasks."""
        self.supervisor.stop(warm)

    @property
    def cold(self) -> bool:
        return self.supervisor.cold

    def finish(self) -> int:
        self.supervisor.wait()
        return self.exitcode

    def shutdown(self, grace: float | None = None) -> None:
        """Stop the children (after ``grace`` seconds they are terminated) and wait for them."""
        self.supervisor.shutdown(grace)

    # -- what the worker's control asks ------------------------------------------------------
    def request_sweep(self) -> None:
        """Revoked ids reach the children through :meth:`relay`."""

    def relay(self, method: str, arguments: dict[str, Any]) -> None:
        """Run a remote-control command in every child too (their state is their own).
        ``time_limit`` and ``rate_limit`` are asked, not only relayed: the command's reply
        waits until every child applied it, so a task sent after the reply (or held for a
        token) runs under the new limits."""
        if method in AWAITED:
            self.query(method, arguments, timeout=CANCEL_WAIT)
            return
        with self.supervisor.lock:
            for child in self.supervisor.children:
                send(child.control, Relay(method, arguments))

    def add_queue(self, queue: Queue) -> None:
        """Every child consumes from ``queue`` too (and children started later)."""
        with self.app.connection() as conn:
            conn.declare_queue(queue)
        if queue.name not in self.queues:
            self.queues.append(queue.name)  # the spec's list: children forked later see it
        exchange = queue.exchange
        self.relay(
            "add_consumer",
            {
                "queue": queue.name,
                "exchange": exchange.name if exchange is not None and exchange.name else None,
                "exchange_type": exchange.type if exchange is not None else "direct",
                "routing_key": queue.routing_key,
            },
        )

    def cancel_queue(self, name: str) -> bool:
        if name not in self.queues:
            return False
        self.queues.remove(name)
        # Asked, not only relayed: each child answers once its consumer has let the queue go,
        # so after the command's reply no child takes a message of it.
        self.query("cancel_consumer", {"queue": name}, timeout=CANCEL_WAIT)
        return True

    def running_ids(self) -> list[str]:
        return [r.task_id for r in self.supervisor.running()]

    # -- the strategy: children that consume -------------------------------------------------
    def spawn_child(self, ctx: ForkContext, name: str, inherited: list[Connection]) -> _Child:
        control_r, control_w = ctx.Pipe(duplex=False)
        events_r, events_w = ctx.Pipe(duplex=False)
        slot = Slot()
        process = ctx.Process(
            target=child_main,
            args=(
                self.app,
                self.spec,
                control_r,
                events_w,
                slot,
                self.state,
                self.store,
                [*inherited, control_w, events_r],
            ),
            name=name,
            daemon=True,
        )
        process.start()
        control_r.close()
        events_w.close()
        return _Child(process, control_w, events_r, slot)

    def parent_ends(self, child: _Child) -> list[Connection]:
        return [child.control, child.events]

    def listen(self, child: _Child) -> Connection:
        return child.events

    def read_child(self, child: _Child) -> None:
        # LimitStarted: a hard limit started (the loop reads it from the slot); Answer: a
        # child's reply to a query.
        with contextlib.suppress(EOFError, OSError):
            while child.events.poll():
                message = child.events.recv()
                if isinstance(message, Answer):
                    with self._answered:
                        self._answers.setdefault(message.ticket, []).append(message.result)
                        self._answered.notify_all()

    def query(self, method: str, arguments: dict[str, Any], timeout: float = 1.0) -> list[Any]:
        """Ask every child to answer ``method`` from its own state; their answers (those
        that came within ``timeout`` seconds)."""
        with self._answered:
            ticket = next(self._tickets)
        with self.supervisor.lock:
            children = list(self.supervisor.children)
        for child in children:
            with contextlib.suppress(OSError):
                send(child.control, Query(ticket, method, arguments))
        deadline = time.monotonic() + timeout
        with self._answered:
            while len(self._answers.get(ticket, ())) < len(children):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._answered.wait(remaining)
            return self._answers.pop(ticket, [])

    def stop_child(self, child: _Child, warm: bool) -> None:
        send(child.control, Stop(warm))

    def running_job(self, child: _Child) -> Running | None:
        return child.slot.running()

    def replaces(self, exitcode: int | None) -> bool:
        return exitcode != EXIT_BROKER  # the broker is gone for good: the worker stops

    def settle(self, child: _Child, exitcode: int | None) -> None:
        if exitcode == EXIT_BROKER and not self.supervisor.closing:
            logger.critical("A pool process lost its broker connection: stopping the worker")
            self.exitcode = 1
            self.stop(warm=False)
        try:
            self._recover(child, child.slot.remains(), exitcode)
        except Exception:  # the broker or store is down: leases bring the held ones back
            logger.exception("Could not settle the work of pool process %s", child.pid)
        finally:
            child.slot.close()

    def _recover(self, child: _Child, remains: Remains, exitcode: int | None) -> None:
        """Store the running task's outcome and give back the messages the broker still
        counts as the child's (``held``, less the jobs that started: their early ack was
        sent as they started, so a finished task never runs again)."""
        acked = {j.delivery_tag for j in remains.started if j.early_ack}
        unacked = {h.delivery_tag for h in remains.held} - acked
        settled: set[str] = set()
        if remains.running is not None and not self.supervisor.terminated:
            request = self._request(remains.running, unacked)
            if request is not None:
                settled.add(request.key)
                self._store_outcome(child, request, exitcode)
        elif remains.running_id is not None and not self.supervisor.terminated:
            outcomes.store_lost_id(self.app, remains.running_id, child.killed_for, exitcode)
        again = [p for p in remains.unstarted if p.delivery_tag not in unacked]
        running = remains.running
        # Cut short by a shutdown with the soft shutdown on, acknowledged when it started
        # (so no broker gives it back): run it again.
        soft = bool(self.app.conf.worker_soft_shutdown_timeout)
        if soft and running is not None and self.supervisor.terminated:
            again.extend([running] if running.delivery_tag not in unacked else [])
        for job in again:
            # The default exchange: straight back to the queue it came from.
            self.transport.publish(_message(job), exchange="", routing_key=job.queue)
        if again:
            logger.info(
                "Sent again %d task(s) pool process %s had not started", len(again), child.pid
            )
        if self.transport.returns_on_close:
            return  # the broker gave the rest back when the child's connection closed
        back = [self._delivery(h) for h in remains.held if h.delivery_tag in unacked - settled]
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
            outcomes.store_terminated(self.app, request, signum, for_node(self.hostname))
            outcomes.settle_ended(request, ack, reject)
        elif child.killed_for is not None:
            outcomes.store_hard_timeout(
                self.app, request, child.killed_for, for_node(self.hostname)
            )
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
            outcomes.worker_lost(self.app, request, summary, ack, reject, for_node(self.hostname))

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


__all__ = ["DirectPreforkPool"]
