"""The events of one worker node, reachable from every process and thread that runs its tasks.

A worker registers one :class:`NodeEvents` under its node name before its pool starts; the
task-event hook of :mod:`celeriac.execution.hooks` finds it by the run's hostname, in the
worker's process or in a forked child. Each process opens its own connection (a child never
uses its parent's). Whether task events are sent is one shared flag, so ``enable_events`` /
``disable_events`` received by the parent reach the children it forked.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac.events.dispatcher import EventDispatcher
from celeriac.utils import forksafe

if TYPE_CHECKING:
    from celeriac.transports.base import Transport

#: The node events of this process's workers, by node name.
_nodes: dict[str, NodeEvents] = {}
_nodes_lock = threading.Lock()


class NodeEvents:
    """One worker's dispatchers (one per process) and its task-events switch."""

    def __init__(
        self,
        hostname: str,
        connect: Callable[[], Transport],
        *,
        task_events: bool,
        serializer: str = "json",
        exchange: str = "celeryev",
    ) -> None:
        self.hostname = hostname
        self._connect = connect
        self.serializer = serializer
        self.exchange = exchange
        self.pid = os.getpid()  # Celery's events carry the worker's main pid
        # One byte in memory shared with every child forked after this.
        self._task_events = multiprocessing.RawValue("b", 1 if task_events else 0)
        self._lock = threading.Lock()
        forksafe.guard(self)
        self._dispatcher: EventDispatcher | None = None
        self._owner = 0

    @property
    def task_events(self) -> bool:
        return bool(self._task_events.value)

    @task_events.setter
    def task_events(self, on: bool) -> None:
        self._task_events.value = 1 if on else 0

    def dispatcher(self) -> EventDispatcher:
        """This process's dispatcher (made on first use, again after a fork)."""
        with self._lock:
            here = forksafe.pid()
            if self._dispatcher is None or self._owner != here:
                self._dispatcher = EventDispatcher(
                    self._connect(),
                    self.hostname,
                    serializer=self.serializer,
                    exchange=self.exchange,
                    buffer_group={"task"},
                    pid=self.pid,
                )
                self._owner = here
            return self._dispatcher

    def task(self, type: str, *, flush: bool = True, **fields: Any) -> None:
        """Send a task event if task events are on; ``flush=False`` leaves it in the buffer
        (the caller flushes at the end of its turn)."""
        if not self._task_events.value:
            return
        dispatcher = self.dispatcher()
        dispatcher.send(type, **fields)
        if flush:
            dispatcher.flush()

    def flush(self) -> None:
        dispatcher = self._dispatcher
        if dispatcher is not None and self._owner == forksafe.pid():
            dispatcher.flush()

    def close(self) -> None:
        """Flush and close this process's connection."""
        with self._lock:
            dispatcher, self._dispatcher = self._dispatcher, None
            owned = self._owner == forksafe.pid()
        if dispatcher is not None and owned:
            dispatcher.close()


def register(node: NodeEvents) -> None:
    with _nodes_lock:
        _nodes[node.hostname] = node


def unregister(node: NodeEvents) -> None:
    with _nodes_lock:
        if _nodes.get(node.hostname) is node:
            del _nodes[node.hostname]


def for_node(hostname: str) -> NodeEvents | None:
    """The events of worker ``hostname`` in this process, if it sends any."""
    return _nodes.get(hostname)


__all__ = ["NodeEvents", "for_node", "register", "unregister"]
