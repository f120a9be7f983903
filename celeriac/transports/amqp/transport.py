"""RabbitMQ (AMQP 0.9.1) through py-amqp: ``amqp://``, ``pyamqp://``, ``amqps://``.

Two ways of taking messages, chosen by whether the caller announced a prefetch window:

* **consumer mode** (after :meth:`AMQPTransport.qos`, as the worker does): one ``basic.consume``
  per queue with ``basic.qos(prefetch_count, global)``; the broker pushes deliveries into a
  local buffer per queue (:mod:`._amqp_consumers`) and :meth:`get` takes them round robin.
* **pull mode** (no window announced: clients, tools): ``basic.get``, so the transport holds
  exactly what ``get`` returned; a blocking ``get`` waits through a short-lived consumer with a
  prefetch of one.

Every delivery stays unacknowledged on the broker until ``ack``; when the connection dies the
broker gives it back (``redelivered``), which is RabbitMQ's own visibility mechanism.
Declarations and publishing use a second channel, so a failed declaration never costs the
consuming channel its unacknowledged deliveries.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import amqp
import amqp.exceptions

from celeriac.drivers.reconnect import RetryPolicy
from celeriac.exceptions import EncodeError, OperationalError
from celeriac.protocol.entities import Exchange, Queue
from celeriac.protocol.message import Message
from celeriac.transports.amqp import topology
from celeriac.transports.amqp.codec import REQUEUED_HEADER, from_amqp, to_amqp, unsendable
from celeriac.transports.amqp.confirm import Publisher, multiple_ack_tag
from celeriac.transports.amqp.conn import CONNECTION_ERRORS, connect, drop, parse_params
from celeriac.transports.amqp.conn import with_retries as _with_retries
from celeriac.transports.amqp.consumers import Consumers
from celeriac.transports.amqp.fanout import AMQPSubscription
from celeriac.transports.amqp.socket import readable
from celeriac.transports.base import Delivery, FanoutSubscription, Transport, fair_order

logger = logging.getLogger("celeriac.transports.amqp")

_T = TypeVar("_T")
#: Longest single socket wait, so heartbeats are sent and checked while idle.
WAIT_SLICE = 1.0
#: ``basic.qos`` prefetch_count is a 16-bit field.
MAX_PREFETCH = 65535
#: A channel error while consuming or publishing costs that channel its state (consumers,
#: confirm mode): start over on a new connection.
_GET_ERRORS = _PUBLISH_ERRORS = (*CONNECTION_ERRORS, amqp.exceptions.ChannelError)


class AMQPTransport(Transport):
    """A RabbitMQ connection: one consuming channel and one for declarations and publishing."""

    schemes = ("amqp", "amqps", "pyamqp")
    supports_priority = True  # for queues declared with x-max-priority
    priority_higher_first = True
    direct_consume = True
    returns_on_close = True

    def __init__(self, url: str = "amqp://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.params = parse_params(url, self.options)
        self._lock = threading.RLock()
        self._unsettled: set[int] = set()  # this channel's tags not yet acked or rejected
        self._conn: amqp.Connection | None = None
        self._channel: amqp.Channel | None = None  # consuming, acks
        self._ops: amqp.Channel | None = None  # publishing (confirm mode)
        self._admin: amqp.Channel | None = None  # declarations and checks that may fail
        self._publisher: Publisher | None = None  # the _ops channel and its confirm mode
        self._generation = 0  # delivery tags are only valid on the channel that made them
        self._queues: set[str] = set()  # known to exist (declared by this connection)
        self._exchanges_ok: set[str] = set()
        self._consumers = Consumers(self._on_message)  # consumer mode; pull mode's waits
        self._prefetch: int | None = None  # None: pull mode
        self._pull_qos = False

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            self._ensure_open()

    def _ensure_open(self) -> amqp.Channel:
        if self._conn is None or self._channel is None:
            conn = connect(self.params)
            self._conn, self._channel = conn, conn.channel()
            self._ops, self._admin = conn.channel(), conn.channel()
            self._channel.auto_decode = False
            self._publisher = Publisher(
                conn,
                self._ops,
                always=self.params.confirm_publish,
                lazy=self.send_only,
                timeout=self.params.confirm_timeout,
            )
            self._generation += 1
            if self._prefetch is not None:
                self._apply_qos()
            if self._generation > 1:
                logger.info("Reconnected to %s", self.params.display)
        return self._channel

    def close(self) -> None:
        """Close the connection; the broker requeues every unacknowledged delivery."""
        with self._lock:
            conn, self._conn = self._conn, None
            self._forget_connection()
            drop(conn, graceful=True)

    def _lost(self) -> None:
        """The connection broke: drop it; the next operation reconnects."""
        conn, self._conn = self._conn, None
        self._forget_connection()
        drop(conn, graceful=False)

    def _forget_connection(self) -> None:
        self._channel = self._ops = self._admin = None
        self._publisher = None
        self._queues.clear()
        self._exchanges_ok.clear()
        self._consumers.clear()  # the broker gives back what they held
        self._unsettled.clear()
        self._pull_qos = False

    def _admin_channel(self) -> amqp.Channel:
        """The channel for declarations: a broker error there (py-amqp reopens it) never
        touches the consuming channel's deliveries or the publishing channel's confirm mode."""
        self._ensure_open()
        assert self._admin is not None
        return self._admin

    def _retrying(
        self,
        action: Callable[[], _T],
        policy: RetryPolicy,
        what: str,
        errors: tuple[type[BaseException], ...] = CONNECTION_ERRORS,
    ) -> _T:
        with self._lock:
            return _with_retries(
                action,
                self.params,
                policy,
                what=what,
                on_error=self._lost,
                errors=errors,
                stop=self._abandoned,
            )

    # -- topology ------------------------------------------------------------------------
    def declare_exchange(self, exchange: Exchange) -> None:
        super().declare_exchange(exchange)

        def run() -> None:
            topology.declare_exchange(self._admin_channel(), exchange)
            self._exchanges_ok.add(exchange.name)

        self._retrying(run, self._declare_policy(), "Declaring")

    def declare_queue(self, queue: Queue) -> None:
        def run() -> None:
            topology.declare_queue(self._admin_channel(), queue)
            self._queues.add(queue.name)
            if queue.exchange is not None and queue.exchange.name:
                self._exchanges_ok.add(queue.exchange.name)
                self.exchanges[queue.exchange.name] = queue.exchange

        self._retrying(run, self._declare_policy(), "Declaring")

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        def run() -> None:
            admin = self._admin_channel()
            self._ensure_queue(queue)
            admin.queue_bind(queue, exchange, routing_key)

        self._retrying(run, self.params.reconnect_policy, "Binding")

    def _ensure_queue(self, name: str) -> None:
        if name not in self._queues:
            admin = self._admin_channel()
            topology.declare_default_queue(admin, name, self.params.queue_max_priority)
            self._queues.add(name)

    def _ensure_exchange(self, name: str) -> None:
        if name and name not in self._exchanges_ok:
            if not topology.exchange_exists(self._admin_channel(), name):
                raise OperationalError(
                    f"Exchange {name!r} does not exist on {self.params.display}; declare it "
                    "(a Queue bound to it in task_queues, or declare_exchange) before publishing"
                )
            self._exchanges_ok.add(name)

    # -- producing -----------------------------------------------------------------------
    def publish_many(
        self, items: Sequence[tuple[Message, str, str]], *, not_before: float | None = None
    ) -> None:
        pending = deque(items)  # a retry resumes after what was already sent
        self._retrying(
            partial(self._publish_all, pending),
            self.params.task_publish_policy,
            "Publishing",
            _PUBLISH_ERRORS,
        )

    def _declare_policy(self) -> RetryPolicy:
        """A producer's declarations are part of its publish (kombu's ``declare=``): they
        give up as the publish does, not after the worker's reconnect policy."""
        return self.params.task_publish_policy if self.send_only else self.params.reconnect_policy

    def _publish_all(self, pending: deque[tuple[Message, str, str]]) -> None:
        self._ensure_open()
        publisher = self._publisher
        assert publisher is not None
        while pending:
            message, exchange, routing_key = pending[0]
            if exchange:
                self._ensure_exchange(exchange)
            else:  # the default exchange routes to the queue of that name: make sure it exists
                self._ensure_queue(routing_key)
            why = unsendable(message)
            if why is None:
                try:
                    publisher.send(to_amqp(message), exchange, routing_key)
                except struct.error as exc:  # py-amqp could not encode it: nothing written
                    why = f"py-amqp cannot encode it ({exc})"
            if why is not None:
                task = message.headers.get("id") or message.properties.get("correlation_id")
                raise EncodeError(f"Cannot publish message {task} to RabbitMQ: {why}")
            pending.popleft()
        publisher.after_batch()

    def _read_own_writes(self) -> None:
        """Before reading: wait until this connection's publishes are in their queues."""
        if self._publisher is not None:
            self._publisher.read_own_writes()

    def _publishing(self) -> Publisher:
        assert self._publisher is not None
        return self._publisher

    # -- consuming -----------------------------------------------------------------------
    def qos(self, prefetch_count: int) -> None:
        """Consumer mode: let the broker push up to ``prefetch_count`` unacked messages (0: no
        limit) to this connection, as Celery's ``basic.qos(0, n, global=True)``."""
        count = max(0, min(int(prefetch_count), MAX_PREFETCH))
        with self._lock:
            if count == self._prefetch:
                return
            self._prefetch = count
            if self._channel is not None:
                try:
                    self._apply_qos()
                except _GET_ERRORS as exc:  # the next get reconnects and applies it
                    logger.warning("basic.qos failed on %s: %r", self.params.display, exc)
                    self._lost()

    def _apply_qos(self) -> None:
        assert self._channel is not None and self._prefetch is not None
        if self._pull_qos:  # per-consumer limit of pull mode's waits: lift it
            self._channel.basic_qos(0, 0, False)
            self._pull_qos = False
        self._channel.basic_qos(0, self._prefetch, True)

    def get(
        self, queues: Sequence[str], *, max_messages: int = 1, timeout: float | None = None
    ) -> list[Delivery]:
        names = list(dict.fromkeys(queues))
        deadline = time.monotonic() + (timeout or 0.0)
        with self._lock:
            return _with_retries(
                partial(self._get, names, max(1, max_messages), deadline),
                self.params,
                self.params.reconnect_policy,
                what="Consumer",
                on_error=self._lost,
                errors=_GET_ERRORS,
                stop=self._abandoned,
            )

    def _get(self, queues: list[str], limit: int, deadline: float) -> list[Delivery]:
        channel = self._ensure_open()
        self._read_own_writes()
        for name in queues:
            self._ensure_queue(name)
        consumers = self._consumers
        if self._prefetch is not None:
            dropped = consumers.consume(channel, queues)
            if dropped:
                self.restore(dropped)
            if consumers.buffered(queues) or deadline <= time.monotonic():
                self._drain(0.0)
            else:  # its first read takes what has arrived already (no select call first)
                self._wait(queues, deadline)
            return consumers.take(queues, limit)
        taken = consumers.take(queues, limit)  # left from an earlier wait
        if len(taken) < limit:
            taken += self._pull(queues, limit - len(taken))
        if not taken and deadline > time.monotonic():
            self._wait_once(queues, deadline)
            taken = consumers.take(queues, limit)
        return taken

    def _pull(self, queues: list[str], limit: int) -> list[Delivery]:
        """``basic.get`` round robin until ``limit`` messages or every queue is empty."""
        channel = self._channel
        assert channel is not None
        taken: list[Delivery] = []
        empty: set[str] = set()
        while len(taken) < limit and len(empty) < len(queues):
            for name in fair_order(queues, self._consumers.last_served):
                if len(taken) >= limit:
                    break
                if name in empty:
                    continue
                raw = channel.basic_get(name, no_ack=False)
                if raw is None:
                    empty.add(name)
                    continue
                taken.append(self._delivery(raw, name))
                self._consumers.last_served = name
        return taken

    def _wait_once(self, queues: list[str], deadline: float) -> None:
        """Pull mode's blocking wait: consumers with a prefetch of one, cancelled after."""
        channel = self._channel
        assert channel is not None
        if not self._pull_qos:
            channel.basic_qos(0, 1, False)
            self._pull_qos = True
        tags = [channel.basic_consume(q, callback=partial(self._on_message, q)) for q in queues]
        try:
            self._wait(queues, deadline)
        finally:
            for tag in tags:
                channel.basic_cancel(tag)

    def _on_message(self, queue: str, raw: amqp.Message) -> None:
        self._consumers.add(queue, self._delivery(raw, queue))

    def _delivery(self, raw: amqp.Message, queue: str) -> Delivery:
        self._unsettled.add(raw.delivery_tag)
        message, exchange, routing_key, redelivered = from_amqp(raw)
        return Delivery(
            message=message,
            queue=queue,
            exchange=exchange,
            routing_key=routing_key,
            delivery_tag=f"{self._generation}:{raw.delivery_tag}",
            redelivered=redelivered,
            transport=self,
        )

    def _wait(self, queues: list[str], deadline: float) -> None:
        """Read from the socket until a delivery for ``queues`` arrives or ``deadline``."""
        conn = self._conn
        assert conn is not None
        buffered = self._consumers.buffered
        while not buffered(queues):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:  # one frame per call: a delivery's three usually come from the read-ahead
                conn.drain_events(timeout=min(remaining, WAIT_SLICE))
            except TimeoutError:
                conn.heartbeat_tick()  # a quiet slice: send or check heartbeats
        conn.heartbeat_tick()  # once per wait, not once per frame
        if buffered(queues):
            self._drain(0.0)  # whatever else already arrived

    def _drain(self, timeout: float) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while timeout or readable(conn):
                conn.drain_events(timeout=timeout)
        except TimeoutError:
            return

    # -- settling ------------------------------------------------------------------------
    def _tags(self, deliveries: Sequence[Delivery]) -> list[int]:
        """Delivery tags still valid on the current channel (stale ones were requeued)."""
        current, tags = str(self._generation), []
        for delivery in deliveries:
            generation, _, tag = delivery.delivery_tag.partition(":")
            if generation == current and self._channel is not None:
                tags.append(int(tag))
            else:
                logger.warning(
                    "Cannot settle message %s: its connection was lost; the broker "
                    "delivers it again",
                    delivery.message.properties.get("correlation_id"),
                )
        return tags

    def _settle(self, deliveries: Sequence[Delivery], how: Callable[[int], None] | None) -> None:
        with self._lock:
            try:
                tags = self._tags(deliveries)
                top = multiple_ack_tag(tags, self._unsettled) if how is None else 0
                if top:
                    self._chan().basic_ack(top, multiple=True)
                for tag in () if top else tags:
                    (how or self._chan().basic_ack)(tag)
                self._unsettled.difference_update(tags)
            except CONNECTION_ERRORS as exc:
                logger.warning("Lost %s while settling messages: %r", self.params.display, exc)
                self._lost()

    @property
    def lease_period(self) -> float:
        """``ConfirmsLeases``: RabbitMQ closes a connection silent for two heartbeats."""
        return 2 * float(self.params.heartbeat or 0)

    def confirm(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """``ConfirmsLeases`` on RabbitMQ: a delivery is still this consumer's while the
        connection it came on is open; when the broker closed it (missed heartbeats while
        this worker was frozen) it requeued them for others. The socket is read first
        (without waiting) so a close the broker already sent is seen now."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return []
            try:
                self._drain(0.0)
                conn.heartbeat_tick()
            except CONNECTION_ERRORS as exc:
                logger.warning("Lost %s (seen after a stall): %r", self.params.display, exc)
                self._lost()
                return []
            current = f"{self._generation}:"
            return [
                d
                for d in deliveries
                if d.delivery_tag.startswith(current)
                and int(d.delivery_tag.partition(":")[2]) in self._unsettled
            ]

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._settle(deliveries, None)  # None: ack (one frame when the batch allows it)

    def reject(self, deliveries: Sequence[Delivery], *, requeue: bool = False) -> None:
        if not requeue:
            self._settle(deliveries, lambda tag: self._chan().basic_reject(tag, False))
            return
        # RabbitMQ would put a requeued message back at the head; the seam says "at the end",
        # so a copy goes to the end (carrying where it first came from) and the original is
        # acknowledged.
        with self._lock:
            live = [d for d in deliveries if d.delivery_tag.startswith(f"{self._generation}:")]
            for delivery in live:
                marker = {REQUEUED_HEADER: [delivery.exchange, delivery.routing_key]}
                copy = to_amqp(delivery.message, marker)
                self._retrying(
                    partial(self._republish, copy, delivery.queue),
                    self.params.publish_policy,
                    "Requeueing",
                    _PUBLISH_ERRORS,
                )
            self.ack(live)

    def _republish(self, raw: amqp.Message, queue: str) -> None:
        self._ensure_open()
        # The copy must be in its queue before the original is acked.
        self._publishing().send_confirmed(raw, "", queue)

    def release_prefetched(self) -> int | None:
        if not self._lock.acquire(blocking=False):  # the owner is using the connection
            return None
        try:
            channel, conn, consumers = self._channel, self._conn, self._consumers
            if channel is None or conn is None or not consumers.tags:
                return 0
            try:
                with conn.transport.having_timeout(self.params.confirm_timeout):
                    held = consumers.cancel(channel, list(consumers.tags))
            except CONNECTION_ERRORS as exc:
                logger.warning("Lost %s while pausing its consumers: %r", self.params.display, exc)
                self._lost()  # the broker takes back everything this connection held
                return 0
            self.restore(held)
            return len(held)
        finally:
            self._lock.release()

    def restore(self, deliveries: Sequence[Delivery]) -> None:
        """Back to their original place (RabbitMQ's requeue), flagged redelivered."""
        self._settle(deliveries, lambda tag: self._chan().basic_reject(tag, True))

    def _chan(self) -> amqp.Channel:
        assert self._channel is not None
        return self._channel

    # -- queue admin ---------------------------------------------------------------------
    def purge(self, queue: str) -> int:
        def run() -> int:
            admin = self._admin_channel()
            self._read_own_writes()
            return topology.purge_queue(admin, queue)

        return self._retrying(run, self.params.reconnect_policy, "Purging")

    def size(self, queue: str) -> int:
        def run() -> int:
            admin = self._admin_channel()
            self._read_own_writes()
            return topology.queue_size(admin, queue)

        return self._retrying(run, self.params.reconnect_policy, "Counting")

    # -- fanout --------------------------------------------------------------------------
    def fanout_publish(self, exchange: str, message: Message, routing_key: str = "") -> None:
        declaration = topology.celery_exchange(exchange, self.exchanges)

        def run() -> None:
            admin = self._admin_channel()
            if exchange not in self._exchanges_ok:
                topology.declare_exchange_leniently(admin, declaration)
                self._exchanges_ok.add(exchange)
            # A control message is in its queues when this returns.
            self._publishing().send_confirmed(to_amqp(message), exchange, routing_key)

        self._retrying(run, self.params.publish_policy, "Publishing")

    def fanout_subscribe(self, exchange: str, pattern: str = "#") -> FanoutSubscription:
        declaration = topology.celery_exchange(exchange, self.exchanges)
        return AMQPSubscription(self.params, declaration, pattern)


__all__ = ["AMQPTransport"]
