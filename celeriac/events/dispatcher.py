"""``EventDispatcher``: sends events as Celery does, on the transport's fanout.

Each event goes to the ``celeryev`` exchange with routing key ``<group>.<subject>``
(``worker.heartbeat``), headers ``{"hostname": <node>}``, delivery mode 1, serialized with
``event_serializer``. Events of a group in ``buffer_group`` (a worker buffers ``task``) wait
in a buffer and leave as one message whose body is a list, routing key ``task.multi``, on
:meth:`flush` or when ``buffer_limit`` of them wait. Delivery is at most once: an event sent
while no receiver listens, or while the broker is away, is lost (logged once).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from celeriac.events.event import (
    EXCHANGE_NAME,
    MULTI_ROUTING_KEY,
    Event,
    group_from,
    routing_key_for,
    utcoffset,
)
from celeriac.protocol import serialization
from celeriac.protocol.message import Message
from celeriac.transports.capabilities import Fanout
from celeriac.utils.forksafe import guard

if TYPE_CHECKING:
    from celeriac.transports.base import Transport

logger = logging.getLogger("celeriac.events")

#: Celery's default ``buffer_limit``: a buffered group is flushed at this many events.
BUFFER_LIMIT = 24


class EventDispatcher:
    """Send events from one node: ``dispatcher.send("task-started", uuid=task_id)``.

    ``connection`` is a transport (``app.connection()``); the dispatcher opens it and does not
    close it unless :meth:`close` is called. ``enabled=False`` makes :meth:`send` a no-op;
    ``groups`` limits what is sent (``{"worker"}``: no task events).
    """

    def __init__(
        self,
        connection: Transport,
        hostname: str,
        *,
        enabled: bool = True,
        serializer: str = "json",
        exchange: str = EXCHANGE_NAME,
        groups: Collection[str] | None = None,
        buffer_group: Collection[str] | None = None,
        buffer_limit: int = BUFFER_LIMIT,
        pid: int | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.connection = connection
        self.hostname = hostname
        self.enabled = enabled
        self.serializer = serializer
        self.exchange = exchange
        self.groups = set(groups) if groups is not None else None
        self.buffer_group = frozenset(buffer_group or ())
        self.buffer_limit = buffer_limit
        self.pid = os.getpid() if pid is None else pid
        self.clock = itertools.count(1)
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        guard(self)
        self._opened = False
        self._failed = False
        self._on_error = on_error

    # -- switches ------------------------------------------------------------------------
    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    # -- sending -------------------------------------------------------------------------
    def send(self, type: str, blind: bool = False, **fields: Any) -> dict[str, Any] | None:
        """Send one event (or buffer it); return it, or ``None`` when it was not sent.

        ``blind`` leaves out the clock and the UTC offset, as Celery does for heartbeats
        from a monitor."""
        if not self.enabled:
            return None
        group = group_from(type)
        if self.groups is not None and group not in self.groups:
            return None
        with self._lock:
            if blind:
                event = Event(type, hostname=self.hostname, pid=self.pid, **fields)
            else:
                event = Event(
                    type,
                    hostname=self.hostname,
                    utcoffset=utcoffset(),
                    pid=self.pid,
                    clock=next(self.clock),
                    **fields,
                )
            if group in self.buffer_group:
                self._buffer.append(event)
                if len(self._buffer) >= self.buffer_limit:
                    self._flush_locked()
            else:
                self._publish(event, routing_key_for(type))
        return event

    def flush(self) -> None:
        """Send the buffered events as one ``task.multi`` message."""
        if self._buffer:
            with self._lock:
                self._flush_locked()

    def extend_buffer(self, other: EventDispatcher) -> None:
        """Take the events buffered by ``other`` (Celery's name)."""
        with self._lock:
            self._buffer.extend(other._buffer)
            other._buffer.clear()

    def close(self) -> None:
        """Flush, then close the connection."""
        self.flush()
        if self._opened:
            self._opened = False
            try:
                self.connection.close()
            except Exception as exc:  # closing a broken connection: nothing left to do
                logger.debug("Closing the events connection failed: %r", exc)

    def _flush_locked(self) -> None:
        if self._buffer:
            events, self._buffer = self._buffer, []
            self._publish(events, MULTI_ROUTING_KEY)

    def _publish(self, body: Any, routing_key: str) -> None:
        data, content_type, encoding = serialization.dumps(body, self.serializer)
        message = Message(
            body=data,
            content_type=content_type,
            content_encoding=encoding,
            headers={"hostname": self.hostname},
            properties={"delivery_mode": 1, "priority": 0},
        )
        transport = self.connection
        try:
            if not isinstance(transport, Fanout):
                raise TypeError(f"{type(transport).__name__} has no fanout: it cannot send events")
            self._opened = True  # a transport connects on first use
            transport.fanout_publish(self.exchange, message, routing_key)
        except Exception as exc:  # events are at most once: never fail the sender's work
            if self._on_error is not None:
                self._on_error(exc)
            if not self._failed:
                logger.warning("Could not send events (they are dropped until it works): %r", exc)
            self._failed = True
            return
        self._failed = False


__all__ = ["BUFFER_LIMIT", "EventDispatcher"]
