"""``rpc://``: results sent back as messages to the client that sent the task (wire §4.3).

The worker publishes the result document (the same fields as a Redis result) to the default
exchange with routing key = the task's ``reply_to`` (the client's oid queue) and
``correlation_id`` = the task id; ``delivery_mode`` 1, or 2 with ``result_persistent``. Tasks
sent without ``reply_to`` get no reply.

The client declares its oid queue as Celery does (durable, auto-deleted, ``x-expires`` =
``result_expires``), consumes it with one consumer per process for every pending result, and
keeps the latest state seen per task id. Only the process that sent a task can read its
result; nothing is stored server side, so ``forget()`` only drops the local copy. Works on any
broker with default-exchange semantics (RabbitMQ, and celeriac's SQLite, memory and Redis
transports).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from celeriac.backends.base import ResultBackend
from celeriac.exceptions import OperationalError
from celeriac.protocol.entities import Exchange, Queue
from celeriac.protocol.message import Message
from celeriac.transports.schemes import transport_from_url
from celeriac.utils import forksafe
from celeriac.utils.current import get_current_app, get_current_task

if TYPE_CHECKING:
    from celeriac.app.config import Settings
    from celeriac.transports.base import Delivery, Transport

logger = logging.getLogger("celeriac.backends.rpc")

#: Results kept per process for tasks nobody asked about yet (oldest dropped first).
MAX_CACHED_RESULTS = 10_000
#: Messages taken from the reply queue per round trip.
BATCH = 100


class RPCBackend(ResultBackend):
    """Results as reply messages over the broker (``result_backend = 'rpc://'``)."""

    schemes: ClassVar[tuple[str, ...]] = ("rpc",)
    persistent: ClassVar[bool] = False

    def __init__(self, url: str, conf: Settings) -> None:
        super().__init__(url, conf)
        self.delivery_mode = 2 if conf.result_persistent else 1
        # Sending (worker threads) and waiting (clients) never hold each other up: a client
        # blocked reading replies must not delay a result being sent from the same process.
        self._send_lock = threading.Lock()
        self._lock = threading.RLock()  # the reply consumer and the received results
        self._pid = forksafe.pid()
        self._producer: Transport | None = None
        self._consumer: Transport | None = None
        self._qos_set = False  # qos(0) given to the consumer
        self._reply_queues: list[str] = []
        self._results: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # -- connections (one pair per process) ----------------------------------------------------
    def _transport(self) -> Transport:
        conf = self.conf  # the broker's settings too (TLS, heartbeat, timeouts), as the app's
        return transport_from_url(
            conf.broker_url, conf.broker_options(), default_path=conf.sqlite_broker_path
        )

    def _check_fork(self) -> None:
        if self._pid != forksafe.pid():  # connections are never shared with a parent
            self._pid = forksafe.pid()
            self._producer = self._consumer = None
            self._qos_set = False
            self._reply_queues = []
            self._results.clear()

    def binding(self, oid: str) -> Queue:
        """The reply queue exactly as Celery's client declares it (§3.2)."""
        expires = self.expires if self.expires else None
        return Queue(oid, Exchange(""), oid, durable=True, auto_delete=True, expires=expires)

    def close(self) -> None:
        with self._send_lock, self._lock:
            for transport in (self._producer, self._consumer):
                if transport is not None and self._pid == forksafe.pid():
                    transport.close()
            self._producer = self._consumer = None
            self._qos_set = False
            self._reply_queues = []

    # -- the worker side: send ------------------------------------------------------------------
    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        *,
        traceback: str | None = None,
        request: Any = None,
    ) -> None:
        """Publish the result to the sender's reply queue (nothing if it gave none)."""
        if request is None:  # old call sites: the request of the task running here
            task = get_current_task()
            request = getattr(task, "request", None)
        reply_to = getattr(request, "reply_to", None)
        if not reply_to:
            return
        correlation_id = getattr(request, "correlation_id", None) or task_id
        prepared = self.encode_result(result, state)
        meta = self.build_meta(task_id, prepared, state, traceback, request)
        message = Message(
            self.encode_document(meta),
            self.content_type,
            self.content_encoding,
            {},
            {"correlation_id": correlation_id, "delivery_mode": self.delivery_mode, "priority": 0},
        )
        with self._send_lock:
            if self._pid != forksafe.pid():
                self._producer = None
            if self._producer is None:
                self._producer = self._transport()
                self._producer.send_only = True
            self._declare(self._producer, reply_to)
            self._producer.publish(message, exchange="", routing_key=reply_to)

    def _declare(self, transport: Transport, oid: str) -> None:
        try:
            transport.declare_queue(self.binding(oid))
        except OperationalError as exc:  # declared by the client with other arguments
            logger.debug("Reply queue %s exists with another declaration: %s", oid, exc)

    def _set_meta(self, task_id: str, meta: dict[str, Any], state: str) -> None:
        self.store_result(task_id, meta.get("result"), state, traceback=meta.get("traceback"))

    # -- the client side: receive ---------------------------------------------------------------
    def _oid(self) -> str:
        return (self.app or get_current_app()).thread_oid

    def _consuming(self) -> Transport:
        """The reply consumer, listening on this thread's oid queue."""
        self._check_fork()
        if self._consumer is None:
            self._consumer = self._transport()
        if not self._qos_set:
            self._consumer.qos(0)  # everything on our queues is ours: no prefetch limit
            self._qos_set = True
        oid = self._oid()
        if oid not in self._reply_queues:
            self._consumer.declare_queue(self.binding(oid))
            self._reply_queues.append(oid)
        return self._consumer

    def on_task_call(self, task_id: str) -> None:
        """Celery's send-time hook: declare this thread's reply queue before the task goes
        out, so a fast worker that does not declare it (Celery's) cannot reply into nothing.

        The declaration is part of the send: with the broker unreachable it gives up as the
        publish does (``task_publish_retry_policy``), not after the reconnect policy."""
        with self._lock:
            self._check_fork()
            if self._consumer is not None and self._oid() in self._reply_queues:
                return
            consumer = self._consumer or self._transport()
            self._consumer = consumer
            consumer.send_only = True  # a producer's declaration: the publish's retry policy
            try:
                self._consuming()
            finally:
                consumer.send_only = False

    def _drain(self, timeout: float | None) -> None:
        with self._lock:
            consumer = self._consuming()
            deliveries = consumer.get(self._reply_queues, max_messages=BATCH, timeout=timeout)
            for delivery in deliveries:
                self._on_reply(delivery)
            if deliveries:
                consumer.ack(deliveries)

    def _on_reply(self, delivery: Delivery) -> None:
        message = delivery.message
        try:
            meta = self.load_document(message.body, message.content_type, message.content_encoding)
        except Exception as exc:  # a stray message on our queue must not break waiting
            logger.warning("Ignoring an undecodable reply on %s: %r", delivery.queue, exc)
            return
        task_id = meta.get("task_id") or message.properties.get("correlation_id")
        if not isinstance(task_id, str):
            return
        current = self._results.get(task_id)
        if current is not None and current.get("status") in self.READY_STATES:
            return  # a late STARTED never hides the final state
        self._results[task_id] = meta
        self._results.move_to_end(task_id)
        while len(self._results) > MAX_CACHED_RESULTS:
            self._results.popitem(last=False)

    def _get_meta(self, task_id: str) -> dict[str, Any] | None:
        self._drain(None)
        with self._lock:
            return self._results.get(task_id)

    def _wait(self, task_ids: Sequence[str], timeout: float) -> None:
        self._drain(timeout)

    def _delete_meta(self, task_id: str) -> None:
        with self._lock:
            self._results.pop(task_id, None)

    def forget(self, task_id: str) -> None:
        """Nothing is stored server side: only this process's copy is dropped."""
        self._delete_meta(task_id)

    # -- groups: not kept by this backend (as in Celery) ------------------------------------------
    def _get_group(self, group_id: str) -> Any | None:
        raise NotImplementedError("The rpc:// result backend cannot store or restore groups")

    def _set_group(self, group_id: str, value: Any) -> None:
        raise NotImplementedError("The rpc:// result backend cannot store or restore groups")

    def _delete_group(self, group_id: str) -> None:
        return None

    def _cleanup(self, older_than: datetime) -> int:
        return 0  # the broker expires unread replies (x-expires on the reply queue)

    def as_uri(self, include_password: bool = False) -> str:
        return "rpc://"


__all__ = ["RPCBackend"]
