"""The producer: turns a send into a TaskCall, routes it, encodes it and publishes it."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from celeriac import signals
from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.taskinfo import sent_fields
from celeriac.protocol import task_v2
from celeriac.protocol.message import Message, TaskCall
from celeriac.protocol.options import DEFAULT_OPTIONS, SendOptions
from celeriac.protocol.saferepr import saferepr
from celeriac.protocol.stencil import Stencil
from celeriac.transports.capabilities import PublishesEnvelopes
from celeriac.utils import forksafe
from celeriac.utils.current import get_current_task
from celeriac.utils.forksafe import guard
from celeriac.utils.ids import uuid4

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.app.routing import Route
    from celeriac.app.task import Task
    from celeriac.transports.base import Transport


class ConnectionPool:
    """The producer's broker connections in one process, as Celery's ``broker_pool_limit``:
    at most ``limit`` connections, each used by one thread at a time (a thread waits for a
    free one when all are busy); ``None`` or ``0`` opens a connection for every use and closes
    it after. After ``fork`` the child starts with no connections (the parent's stay open
    in the parent)."""

    def __init__(self, make: Callable[[], Transport], limit: int | None) -> None:
        self._make = make
        self.limit = limit or 0
        self._lock = threading.Lock()  # never held while connecting or closing
        self._cond = threading.Condition(self._lock)
        guard(self)  # a fork never inherits it held by another thread
        self._idle: list[Transport] = []
        self._made = 0
        self._waiting = 0  # threads waiting for a connection
        self._pid = forksafe.pid()
        self._closed = False

    @contextlib.contextmanager
    def acquire(self) -> Iterator[Transport]:
        transport = self.take()
        try:
            yield transport
        finally:
            self.give_back(transport)

    def take(self) -> Transport:
        """A connection of this process, for one thread: give it back with
        :meth:`give_back` (``acquire`` does both; this pair is the hot path's)."""
        with self._cond:
            if self._pid != forksafe.pid():  # forked: the inherited connections are the parent's
                self._pid, self._idle, self._made, self._closed = forksafe.pid(), [], 0, False
            while not self._idle and self.limit and self._made >= self.limit:
                self._waiting += 1
                try:
                    self._cond.wait()
                finally:
                    self._waiting -= 1
            if self._idle:
                return self._idle.pop()
            self._made += 1
        try:
            return self._make()
        except BaseException:
            with self._cond:
                self._made -= 1
                self._cond.notify()
            raise

    def give_back(self, transport: Transport) -> None:
        with self._cond:
            keep = self.limit and not self._closed and self._pid == forksafe.pid()
            if keep:
                self._idle.append(transport)
            else:
                self._made -= 1
            if self._waiting:
                self._cond.notify()
        if not keep:
            transport.close()

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._made - len(self._idle)

    def close(self) -> None:
        """Close the idle connections; one in use closes when given back."""
        with self._cond:
            if self._pid != forksafe.pid():
                return
            idle, self._idle = self._idle, []
            self._made -= len(idle)
            self._closed = bool(self._made)
            self._cond.notify_all()
        for transport in idle:
            transport.close()


@dataclasses.dataclass(slots=True)
class _Settings:
    """The settings every send reads, taken once per revision of the app's settings, and
    what the plain ``delay()`` keeps under them."""

    revision: int
    serializer: str
    compression: str | None
    delivery_mode: int
    priority: int | None
    sent_event: bool
    #: JSON, no compression, no task-sent event: a plain send may use a stencil.
    plain: bool = False
    #: Whether the broker takes envelope text (None: not asked yet).
    envelopes: bool | None = None
    #: (task, origin, reply_to, queue) -> its stencil.
    stencils: dict[tuple[str, str, str, str], Stencil] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class _Held:
    """A send made inside :meth:`Producer.batch`, encoded and waiting to be published."""

    call: TaskCall | None
    message: Message | None
    route: Route
    not_before: float | None
    #: A plain send's (envelope text, queue, priority), instead of call and message.
    envelope: tuple[str, str, int] | None = None


class Producer:
    """Publishes task messages for one app over its pool of broker connections."""

    #: Messages held by :meth:`batch` before they go out in one pipelined publish.
    batch_size = 1000

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._batches = threading.local()  # this thread's held sends (see batch())
        self._pool: ConnectionPool | None = None
        self._declared: set[str] = set()  # broker-side state: shared by every connection
        self._event_clock = itertools.count(1)  # the Lamport clock of task-sent events
        self._origin_pid = 0
        self._origin = ""
        self._settings: _Settings | None = None

    def settings(self) -> _Settings:
        """What a send reads from the settings (read again when they change)."""
        conf = self.app.conf
        cached = self._settings
        if cached is not None and cached.revision == conf.revision:
            return cached
        cached = self._settings = _Settings(
            revision=conf.revision,
            serializer=conf["task_serializer"],
            compression=conf["task_compression"],
            delivery_mode=conf["task_default_delivery_mode"],
            priority=conf["task_default_priority"],
            sent_event=bool(conf["task_send_sent_event"]),
        )
        cached.plain = (
            cached.serializer == "json" and not cached.compression and not cached.sent_event
        )
        return cached

    @property
    def pool(self) -> ConnectionPool:
        pool = self._pool
        if pool is None:
            pool = self._pool = ConnectionPool(self._connection, self.app.conf.broker_pool_limit)
        return pool

    def _connection(self) -> Transport:
        transport = self.app.connection()
        transport.send_only = True  # the pool's connections only publish
        return transport

    @property
    def origin(self) -> str:
        """``gen<pid>@<host>``: the ``origin`` header of the messages this process sends."""
        if self._origin_pid != forksafe.pid():
            self._origin_pid = forksafe.pid()
            self._origin = f"gen{self._origin_pid}@{socket.gethostname()}"
        return self._origin

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def send(
        self,
        name: str,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        opts: SendOptions,
        task: Task[Any, Any] | None = None,
    ) -> str:
        """Publish one task message; return its id."""
        settings = self.settings()
        if kwargs is not None and type(kwargs) is not dict and not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs of {name} must be a mapping, not {type(kwargs).__name__}")
        args_t = tuple(args) if args is not None else ()
        if opts is DEFAULT_OPTIONS and settings.plain and settings.envelopes is not False:
            sent = self._send_plain(name, args, args_t, kwargs, settings, task)
            if sent is not None:
                return sent
        call = self._build_call(name, args_t, dict(kwargs or {}), opts)
        if (
            isinstance(args, list) and call.argsrepr is None
        ):  # Celery shows args as given: apply_async([1, 1]) -> '[1, 1]'
            call = dataclasses.replace(call, argsrepr=saferepr(args, task_v2.REPR_MAXSIZE))
        route = self.app.router.route(
            name,
            args_t,
            kwargs,
            queue=opts.queue,
            exchange=opts.exchange,
            routing_key=opts.routing_key,
            task=task,
        )
        if opts.priority is None and route.priority is not None:  # a router chose it
            opts = dataclasses.replace(opts, priority=route.priority)
        message = task_v2.encode(
            call,
            serializer=opts.serializer or settings.serializer,
            compression=opts.compression or settings.compression,
            properties=self._properties(call, opts, settings),
        )
        self._publish(call, message, route, settings)
        return call.id

    def _send_plain(
        self,
        name: str,
        args: Sequence[Any] | None,
        args_t: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        settings: _Settings,
        task: Task[Any, Any] | None,
    ) -> str | None:
        """A ``delay()`` to a broker that keeps envelopes (:class:`PublishesEnvelopes`):
        its envelope text filled into the task's stencil, the bytes of the general path
        without its objects (:mod:`celeriac.protocol.stencil`). None: not that case (a
        publish signal has a receiver, a router chose an exchange or a priority, a batch is
        open), the general path sends it."""
        if signals.before_task_publish.has_receivers or signals.after_task_publish.has_receivers:
            return None
        route = self.app.router.route(name, args_t, kwargs, task=task)
        if route.exchange or route.priority is not None:
            return None
        pool = self.pool
        if settings.envelopes is None:  # asked once per settings revision
            transport = pool.take()
            settings.envelopes = isinstance(transport, PublishesEnvelopes)
            pool.give_back(transport)
        if not settings.envelopes:
            return None
        task_id = uuid4()
        parent_id = root_id = None
        current = get_current_task()
        if current is not None:
            request = current.request
            parent_id, root_id = request.id, request.root_id
        self.app.backend.on_task_call(task_id)
        reply_to = self.app.thread_oid
        origin = self.origin
        queue = route.routing_key
        key = (name, origin, reply_to, queue)
        stencil = settings.stencils.get(key)
        if stencil is None:
            probe = TaskCall(name=name, id="")
            properties = self._properties(probe, DEFAULT_OPTIONS, settings)
            stencil = settings.stencils[key] = Stencil.cut(name, origin, properties, "", queue)
        raw = stencil.fill(
            task_id,
            root_id or task_id,
            parent_id,
            args if type(args) is list else args_t,  # Celery shows a list as given
            kwargs if type(kwargs) is dict else dict(kwargs or {}),
            uuid4(),
        )
        envelope = (raw, queue, int(settings.priority or 0))
        held: list[_Held] | None = getattr(self._batches, "held", None)
        if held is not None:
            held.append(_Held(None, None, route, None, envelope))
            if len(held) >= self.batch_size:
                self._flush()
            return task_id
        transport = pool.take()
        try:
            self._declare(transport, route)
            cast(PublishesEnvelopes, transport).publish_envelopes([envelope])
        finally:
            pool.give_back(transport)
        return task_id

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold this thread's sends and publish them together: every ``batch_size`` messages
        and at the end, each lot in one pipelined call of the broker (``publish_many``: a
        Redis pipeline, one AMQP batch with its confirms, one transaction on SQLite and
        PostgreSQL). The messages are the bytes a send outside a batch makes, published in
        the same order; ``before_task_publish`` fires when a message is made,
        ``after_task_publish`` once it is out. Batches nest (the outermost publishes). What
        was held is published even when the block raises."""
        if getattr(self._batches, "held", None) is not None:
            yield
            return
        self._batches.held = []
        try:
            yield
        finally:
            try:
                self._flush()
            finally:
                self._batches.held = None

    def _publish(self, call: TaskCall, message: Any, route: Route, settings: _Settings) -> None:
        if signals.before_task_publish.has_receivers:
            _announce(
                signals.before_task_publish,
                call,
                message,
                route,
                declare=[route.queue] if route.queue else [],
                retry_policy=None,
            )
        not_before = call.eta.timestamp() if call.eta is not None else None
        if not call.ignore_result:
            self.app.backend.on_task_call(call.id)
        held: list[_Held] | None = getattr(self._batches, "held", None)
        if held is not None:
            held.append(_Held(call, message, route, not_before))
            if len(held) >= self.batch_size:
                self._flush()
            return
        pool = self.pool
        transport = pool.take()
        try:
            self._declare(transport, route)
            transport.publish(
                message,
                exchange=route.exchange,
                routing_key=route.routing_key,
                not_before=not_before,
            )
            if settings.sent_event:
                self._send_sent_event(transport, call, route)
        finally:
            pool.give_back(transport)
        _announce(signals.after_task_publish, call, message, route)

    def _declare(self, transport: Transport, route: Route) -> None:
        if route.queue is not None and route.queue.name not in self._declared:
            transport.declare_queue(route.queue)
            self._declared.add(route.queue.name)

    def _flush(self) -> None:
        """Publish what this thread's batch holds: consecutive messages with the same ETA
        in one ``publish_many``."""
        held: list[_Held] = self._batches.held
        if not held:
            return
        self._batches.held = []
        with self.pool.acquire() as transport:
            for item in held:
                self._declare(transport, item.route)
            start = 0
            while start < len(held):  # in order: runs of envelopes, runs of one ETA
                first, end = held[start], start + 1
                if first.envelope is not None:
                    while end < len(held) and held[end].envelope is not None:
                        end += 1
                    envelopes = [h.envelope for h in held[start:end] if h.envelope is not None]
                    cast(PublishesEnvelopes, transport).publish_envelopes(envelopes)
                else:
                    while (
                        end < len(held)
                        and held[end].envelope is None
                        and held[end].not_before == first.not_before
                    ):
                        end += 1
                    transport.publish_many(
                        [
                            (h.message, h.route.exchange, h.route.routing_key)
                            for h in held[start:end]
                            if h.message is not None
                        ],
                        not_before=first.not_before,
                    )
                start = end
            if self.settings().sent_event:
                for item in held:
                    if item.call is not None:
                        self._send_sent_event(transport, item.call, item.route)
        for item in held:
            if item.call is not None and item.message is not None:
                _announce(signals.after_task_publish, item.call, item.message, item.route)

    def _send_sent_event(self, transport: Transport, call: TaskCall, route: Route) -> None:
        """``task-sent`` (``task_send_sent_event``), from ``gen<pid>@<host>`` as Celery."""
        conf = self.app.conf
        dispatcher = EventDispatcher(
            transport,
            f"gen{os.getpid()}@{socket.gethostname()}",
            serializer=conf["event_serializer"],
            exchange=conf["event_exchange"],
        )
        dispatcher.clock = self._event_clock
        queue = route.queue.name if route.queue is not None else None
        dispatcher.send(
            "task-sent",
            **sent_fields(
                call, queue=queue, exchange=route.exchange, routing_key=route.routing_key
            ),
        )

    def _build_call(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], opts: SendOptions
    ) -> TaskCall:
        task_id = opts.task_id or uuid4()
        parent_id, root_id = opts.parent_id, opts.root_id
        current = get_current_task()
        if current is not None and parent_id is None:
            request = current.request
            parent_id = request.id
            root_id = root_id or request.root_id
        if opts is DEFAULT_OPTIONS:  # delay(): every other field at its default
            return TaskCall(
                name=name,
                id=task_id,
                args=args,
                kwargs=kwargs,
                root_id=root_id or task_id,
                parent_id=parent_id,
                origin=self.origin,
            )
        now = datetime.now(timezone.utc)
        eta = opts.eta
        if opts.countdown is not None:
            eta = now + timedelta(seconds=opts.countdown)
        if eta is not None:
            eta = self.app.localize(eta)
        expires: datetime | None = None
        if isinstance(opts.expires, datetime):
            expires = self.app.localize(opts.expires)
        elif opts.expires is not None:
            expires = self.app.localize(now + timedelta(seconds=float(opts.expires)))
        return TaskCall(
            name=name,
            id=task_id,
            args=args,
            kwargs=kwargs,
            eta=eta,
            expires=expires,
            retries=opts.retries,
            root_id=root_id or task_id,
            parent_id=parent_id,
            group_id=opts.group_id,
            group_index=opts.group_index,
            shadow=opts.shadow,
            timelimit=(opts.time_limit, opts.soft_time_limit),
            ignore_result=bool(opts.ignore_result),
            origin=opts.origin or self.origin,
            replaced_task_nesting=opts.replaced_task_nesting,
            stamped_headers=opts.stamped_headers,
            stamps=dict(opts.stamps),
            extra_headers=dict(opts.headers),
            callbacks=_signature_list(opts.link),
            errbacks=_signature_list(opts.link_error),
            chain=list(opts.chain) if opts.chain else None,
            chord=dict(opts.chord) if opts.chord else None,
        )

    def _properties(self, call: TaskCall, opts: SendOptions, settings: _Settings) -> dict[str, Any]:
        props: dict[str, Any] = {
            "correlation_id": call.id,
            "reply_to": opts.reply_to or self.app.thread_oid,
        }
        if opts.origin:  # a retry: Celery repeats the first sender's origin here
            props["origin"] = opts.origin
        props["delivery_mode"] = opts.delivery_mode or settings.delivery_mode
        if isinstance(opts.expires, (int, float)) and not isinstance(opts.expires, bool):
            # Seconds as given (Celery: expires=30 -> expiration "30000", no clock drift).
            props["expiration"] = str(max(0, int(opts.expires * 1000)))
        elif call.expires is not None:
            remaining = (call.expires - datetime.now(timezone.utc)).total_seconds()
            props["expiration"] = str(max(0, int(remaining * 1000)))
        priority = opts.priority if opts.priority is not None else settings.priority
        props["priority"] = int(priority or 0)
        return props


def _signature_list(value: Any) -> list[dict[str, Any]] | None:
    """``link=`` / ``link_error=``: one signature or a list of them (None: no callbacks)."""
    if not value:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    return [dict(item) for item in items]


def _announce(
    signal: signals.Signal, call: TaskCall, message: Any, route: Route, **extra: Any
) -> None:
    """``before_task_publish`` / ``after_task_publish`` with Celery's arguments (when a
    receiver is connected: the arguments are not even built otherwise)."""
    if signal.has_receivers:
        signal.send(
            sender=call.name,
            body=message.body,
            exchange=route.exchange,
            routing_key=route.routing_key,
            headers=message.headers,
            properties=message.properties,
            **extra,
        )


__all__ = ["Producer"]
