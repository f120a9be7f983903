"""``app.events``: the app's event dispatcher, receiver and cluster model (Celery's names).

``app.events.Receiver(app.connection(), handlers={"*": state.event})``,
``app.events.Dispatcher(connection, hostname=...)`` and ``app.events.State()``, with the
app's ``event_serializer``, ``event_exchange`` and ``accept_content``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.receiver import EventReceiver, Handler
from celeriac.events.state import State

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.transports.base import Transport


class Events:
    """What ``app.events`` holds."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def Receiver(
        self,
        channel: Transport | None = None,
        handlers: Mapping[str, Handler] | None = None,
        routing_key: str = "#",
        node_id: str | None = None,
        **kwargs: Any,
    ) -> EventReceiver:
        """A receiver on ``channel`` (a transport; default: a new ``app.connection()``)."""
        conf = self.app.conf
        kwargs.pop("queue_ttl", None)  # AMQP queue arguments of Celery's event queue: the
        kwargs.pop("queue_expires", None)  # subscription's queue is exclusive here anyway
        return EventReceiver(
            channel if channel is not None else self.app.connection(),
            handlers=handlers,
            routing_key=routing_key,
            node_id=node_id,
            app=self.app,
            # Celery's receiver: the event serializer and json, whatever accept_content says
            # (a signing cluster accepts only 'auth' tasks, but events stay json by default).
            accept=kwargs.pop("accept", None) or sorted({conf.event_serializer, "json"}),
            exchange=conf.event_exchange,
            **kwargs,
        )

    def Dispatcher(
        self,
        connection: Transport | None = None,
        hostname: str | None = None,
        enabled: bool = True,
        **kwargs: Any,
    ) -> EventDispatcher:
        """A dispatcher sending as ``hostname`` (default: ``gen<pid>@<host>``, as Celery)."""
        conf = self.app.conf
        return EventDispatcher(
            connection if connection is not None else self.app.connection(),
            hostname or f"gen{os.getpid()}@{socket.gethostname()}",
            enabled=enabled,
            serializer=kwargs.pop("serializer", None) or conf.event_serializer,
            exchange=conf.event_exchange,
            **kwargs,
        )

    def State(self, **kwargs: Any) -> State:
        """An empty cluster model (``max_workers_in_memory``, ``max_tasks_in_memory``)."""
        return State(**kwargs)


__all__ = ["Events"]
