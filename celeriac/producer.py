"""The producer: turns a send into a TaskCall, routes it, encodes it and publishes it."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac._state import get_current_task
from celeriac.ids import uuid4
from celeriac.options import SendOptions
from celeriac.protocol import task_v2
from celeriac.protocol.message import TaskCall

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.routing import Route
    from celeriac.task import Task
    from celeriac.transports.base import Transport


class Producer:
    """Publishes task messages for one app, with one broker connection per process."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._transport: Transport | None = None
        self._pid = 0
        self._declared: set[str] = set()
        self.origin = f"gen{os.getpid()}@{socket.gethostname()}"

    @property
    def transport(self) -> Transport:
        """This process's publishing connection (re-created after ``fork``)."""
        if self._transport is None or self._pid != os.getpid():
            self._transport = self.app.connection()
            self._pid = os.getpid()
            self._declared = set()
            self.origin = f"gen{self._pid}@{socket.gethostname()}"
        return self._transport

    def close(self) -> None:
        with self._lock:
            if self._transport is not None and self._pid == os.getpid():
                self._transport.close()
            self._transport = None

    def send(
        self,
        name: str,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        opts: SendOptions,
        task: Task[Any, Any] | None = None,
    ) -> str:
        """Publish one task message; return its id."""
        conf = self.app.conf
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs of {name} must be a mapping, not {type(kwargs).__name__}")
        args_t = tuple(args) if args is not None else ()
        call = self._build_call(name, args_t, dict(kwargs or {}), opts)
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
        serializer = opts.serializer or conf.task_serializer
        compression = opts.compression or conf.task_compression
        message = task_v2.encode(
            call,
            serializer=serializer,
            compression=compression,
            properties=self._properties(call, opts),
        )
        self._publish(call, message, route, opts)
        return call.id

    def _publish(self, call: TaskCall, message: Any, route: Route, opts: SendOptions) -> None:
        headers = message.headers
        signals.before_task_publish.send(
            sender=call.name,
            body=message.body,
            exchange=route.exchange,
            routing_key=route.routing_key,
            headers=headers,
            properties=message.properties,
            declare=[route.queue] if route.queue else [],
            retry_policy=None,
        )
        not_before = call.eta.timestamp() if call.eta is not None else None
        if not call.ignore_result:
            self.app.backend.on_task_call(call.id)
        with self._lock:
            transport = self.transport
            if route.queue is not None and route.queue.name not in self._declared:
                transport.declare_queue(route.queue)
                self._declared.add(route.queue.name)
            transport.publish(
                message,
                exchange=route.exchange,
                routing_key=route.routing_key,
                not_before=not_before,
            )
        signals.after_task_publish.send(
            sender=call.name,
            body=message.body,
            exchange=route.exchange,
            routing_key=route.routing_key,
            headers=headers,
            properties=message.properties,
        )

    def _build_call(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], opts: SendOptions
    ) -> TaskCall:
        now = datetime.now(timezone.utc)
        task_id = opts.task_id or uuid4()
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
        parent_id, root_id = opts.parent_id, opts.root_id
        current = get_current_task()
        if current is not None and parent_id is None:
            request = current.request
            parent_id = request.id
            root_id = root_id or request.root_id
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
        )

    def _properties(self, call: TaskCall, opts: SendOptions) -> dict[str, Any]:
        conf = self.app.conf
        props: dict[str, Any] = {
            "correlation_id": call.id,
            "reply_to": opts.reply_to or self.app.thread_oid,
        }
        if opts.origin:  # a retry: Celery repeats the first sender's origin here
            props["origin"] = opts.origin
        props["delivery_mode"] = opts.delivery_mode or conf.task_default_delivery_mode
        if call.expires is not None:
            remaining = (call.expires - datetime.now(timezone.utc)).total_seconds()
            props["expiration"] = str(max(0, int(remaining * 1000)))
        priority = opts.priority if opts.priority is not None else conf.task_default_priority
        props["priority"] = int(priority or 0)
        return props


__all__ = ["Producer"]
